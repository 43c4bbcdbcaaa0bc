package gnmi

import (
	"cmp"
	"fmt"
	"net/netip"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/fabric"
)

// Preset holds the names a vendor gives the default network-instance and the static routing
// protocol instance in the OpenConfig model.
type Preset struct {
	NetworkInstance string
	Protocol        string
}

// Presets are the OpenConfig naming conventions of known vendors; "" is the specification's
// default.
var Presets = map[string]Preset{
	"":            {NetworkInstance: "DEFAULT", Protocol: "DEFAULT"},
	"arista":      {NetworkInstance: "default", Protocol: "STATIC"},
	"cisco_iosxr": {NetworkInstance: "DEFAULT", Protocol: "DEFAULT"},
	"juniper":     {NetworkInstance: "DEFAULT", Protocol: "DEFAULT"},
	"nokia":       {NetworkInstance: "DEFAULT", Protocol: "static"},
}

// ocStaticIdentity is the protocol identity of static routes, qualified as RFC 7951 wants
// identityref values.
const ocStaticIdentity = "openconfig-policy-types:STATIC"

// ocNextHopIndex is the index of the one next hop returnpath gives a route.
const ocNextHopIndex = "0"

type openConfig struct {
	defaultNI string
	protocol  string
}

func newOpenConfig(c drivers.GNMIConfig) (*openConfig, error) {
	p, ok := Presets[c.Preset]
	if !ok {
		return nil, fmt.Errorf("unknown gnmi preset %q (want arista, cisco_iosxr, juniper, nokia or empty)", c.Preset)
	}
	e := &openConfig{defaultNI: cmp.Or(c.NetworkInstance, p.NetworkInstance), protocol: cmp.Or(c.Protocol, p.Protocol)}
	if err := fabric.ValidateVRF(e.defaultNI); err != nil {
		return nil, fmt.Errorf("gnmi network_instance: %w", err)
	}
	if err := fabric.ValidateVRF(e.protocol); err != nil {
		return nil, fmt.Errorf("gnmi protocol: %w", err)
	}
	return e, nil
}

func (e *openConfig) networkInstance(vrf string) string { return niFor(vrf, e.defaultNI) }
func (e *openConfig) vrf(ni string) (string, bool)      { return vrfFor(ni, e.defaultNI) }

func niFor(vrf, defaultNI string) string {
	if vrf == fabric.DefaultVRF {
		return defaultNI
	}
	return vrf
}

func vrfFor(ni, defaultNI string) (string, bool) {
	switch {
	case ni == defaultNI:
		return fabric.DefaultVRF, true
	case ni == fabric.DefaultVRF || fabric.ValidateVRF(ni) != nil:
		return "", false // "default" is not the default instance here: no VRF can name it
	}
	return ni, true
}

func (e *openConfig) protocolPath(ni string) []*gpb.PathElem {
	return []*gpb.PathElem{
		elem("network-instances"),
		elem("network-instance", "name", ni),
		elem("protocols"),
		elem("protocol", "identifier", "STATIC", "name", e.protocol),
	}
}

func (e *openConfig) readPaths(nis []string) []*gpb.Path {
	if nis == nil {
		nis = []string{"*"}
	}
	out := make([]*gpb.Path, len(nis))
	for i, ni := range nis {
		out[i] = &gpb.Path{Elem: append(e.protocolPath(ni), elem("static-routes"))}
	}
	return out
}

func ocSlot(list string) (int, string, bool) {
	switch list {
	case "network-instance":
		return 0, "name", true
	case "static":
		return 1, "prefix", true
	case "next-hop":
		return 2, "index", true
	}
	return 0, "", false
}

func (e *openConfig) decode(snap *snapshot, ns []*gpb.Notification) error {
	return walkUpdates(ns, ocSlot, func(k keys, parent, name string, v any) {
		if name != "next-hop" || parent != "config" || k[0] == "" || k[1] == "" || k[2] == "" {
			return
		}
		p, err1 := netip.ParsePrefix(k[1])
		nh, err2 := netip.ParseAddr(scalar(v))
		if err1 != nil || err2 != nil {
			return // not an address next hop (DROP, LOCAL_LINK, ...): not returnpath's
		}
		set(snap.hops, rkey{ni: k[0], prefix: p.Masked()}, k[2], nh)
	})
}

func (e *openConfig) needsSnapshot(ops []op) bool {
	for _, o := range ops {
		if o.action == fabric.ActionDelete {
			return true
		}
	}
	return false
}

func (e *openConfig) assume(snap *snapshot, o op) {
	set(snap.hops, o.key(), ocNextHopIndex, o.nextHop)
}

type ocConfigPrefix struct {
	Prefix string `json:"prefix"`
}

type ocNextHopConfig struct {
	Index   string `json:"index"`
	NextHop string `json:"next-hop"`
}

type ocNextHop struct {
	Index  string          `json:"index"`
	Config ocNextHopConfig `json:"config"`
}

type ocNextHops struct {
	NextHop []ocNextHop `json:"next-hop"`
}

type ocStatic struct {
	Prefix   string         `json:"prefix"`
	Config   ocConfigPrefix `json:"config"`
	NextHops ocNextHops     `json:"next-hops"`
}

type ocProtocolConfig struct {
	Identifier string `json:"identifier"`
	Name       string `json:"name"`
}

type ocProtocol struct {
	Identifier string           `json:"identifier"`
	Name       string           `json:"name"`
	Config     ocProtocolConfig `json:"config"`
}

func (e *openConfig) staticPath(k rkey) *gpb.Path {
	return &gpb.Path{Elem: append(e.protocolPath(k.ni), elem("static-routes"), elem("static", "prefix", k.prefix.String()))}
}

func (e *openConfig) plan(snap *snapshot, ops []op) *gpb.SetRequest {
	order, final := simulate(snap, ops)
	req := &gpb.SetRequest{}
	var protoNIs []string
	var updates []*gpb.Update
	for _, k := range order {
		cur := single(snap, k)
		fin := final[k]
		switch {
		case !fin.IsValid() && cur.IsValid():
			req.Delete = append(req.Delete, e.staticPath(k))
		case fin.IsValid() && fin != cur:
			if !containsString(protoNIs, k.ni) {
				protoNIs = append(protoNIs, k.ni)
			}
			p := k.prefix.String()
			updates = append(updates, &gpb.Update{Path: e.staticPath(k), Val: jsonVal(ocStatic{
				Prefix: p,
				Config: ocConfigPrefix{Prefix: p},
				NextHops: ocNextHops{NextHop: []ocNextHop{{
					Index:  ocNextHopIndex,
					Config: ocNextHopConfig{Index: ocNextHopIndex, NextHop: fin.String()},
				}}},
			})})
		}
	}
	// The static protocol instance is created (or merged unchanged) ahead of its routes.
	for _, ni := range protoNIs {
		req.Update = append(req.Update, &gpb.Update{
			Path: &gpb.Path{Elem: e.protocolPath(ni)},
			Val: jsonVal(ocProtocol{Identifier: ocStaticIdentity, Name: e.protocol,
				Config: ocProtocolConfig{Identifier: ocStaticIdentity, Name: e.protocol}}),
		})
	}
	req.Update = append(req.Update, updates...)
	return req
}

func (e *openConfig) routes(snap *snapshot, managed []netip.Prefix) []fabric.Route {
	return managedRoutes(snap, managed, e.vrf)
}

// single returns the route's next hop when the snapshot holds it with exactly one.
func single(snap *snapshot, k rkey) netip.Addr {
	if snap == nil {
		return netip.Addr{}
	}
	if hm := snap.hops[k]; len(hm) == 1 {
		for _, a := range hm {
			return a
		}
	}
	return netip.Addr{}
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
