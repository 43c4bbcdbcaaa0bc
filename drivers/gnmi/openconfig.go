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

// ocStaticJSON renders a static route with its one next hop. It is written by hand because
// it runs once per route; prefix and nextHop come from netip values, whose text holds only hex
// digits, '.', ':' and '/', so nothing needs escaping.
func ocStaticJSON(prefix, nextHop string) []byte {
	b := make([]byte, 0, 128+2*len(prefix)+len(nextHop))
	b = append(b, `{"prefix":"`...)
	b = append(b, prefix...)
	b = append(b, `","config":{"prefix":"`...)
	b = append(b, prefix...)
	b = append(b, `"},"next-hops":{"next-hop":[{"index":"`+ocNextHopIndex+`","config":{"index":"`+ocNextHopIndex+`","next-hop":"`...)
	b = append(b, nextHop...)
	b = append(b, `"}}]}}`...)
	return b
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

// staticPaths builds static route paths; the elements above the route are shared by every
// route of a network-instance (the SetRequest is only read after it is built).
type staticPaths struct {
	e     *openConfig
	above map[string][]*gpb.PathElem
}

func (sp *staticPaths) path(k rkey) *gpb.Path {
	above, ok := sp.above[k.ni]
	if !ok {
		above = append(sp.e.protocolPath(k.ni), elem("static-routes"))
		sp.above[k.ni] = above
	}
	elems := make([]*gpb.PathElem, len(above), len(above)+1)
	copy(elems, above)
	return &gpb.Path{Elem: append(elems, &gpb.PathElem{Name: "static", Key: map[string]string{"prefix": k.prefix.String()}})}
}

func (e *openConfig) plan(snap *snapshot, ops []op) *gpb.SetRequest {
	order, final := simulate(snap, ops)
	paths := &staticPaths{e: e, above: map[string][]*gpb.PathElem{}}
	req := &gpb.SetRequest{}
	var protoNIs []string
	var updates []*gpb.Update
	for _, k := range order {
		cur := single(snap, k)
		fin := final[k]
		switch {
		case !fin.IsValid() && cur.IsValid():
			req.Delete = append(req.Delete, paths.path(k))
		case fin.IsValid() && fin != cur:
			if !containsString(protoNIs, k.ni) {
				protoNIs = append(protoNIs, k.ni)
			}
			updates = append(updates, &gpb.Update{Path: paths.path(k), Val: &gpb.TypedValue{
				Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: ocStaticJSON(k.prefix.String(), fin.String())},
			}})
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
