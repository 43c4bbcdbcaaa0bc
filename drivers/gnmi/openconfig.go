package gnmi

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
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
	if err := route.ValidateVRF(e.defaultNI); err != nil {
		return nil, fmt.Errorf("gnmi network_instance: %w", err)
	}
	if err := route.ValidateVRF(e.protocol); err != nil {
		return nil, fmt.Errorf("gnmi protocol: %w", err)
	}
	return e, nil
}

func (e *openConfig) networkInstance(vrf string) string { return niFor(vrf, e.defaultNI) }
func (e *openConfig) vrf(ni string) (string, bool)      { return vrfFor(ni, e.defaultNI) }

func niFor(vrf, defaultNI string) string {
	if vrf == route.DefaultVRF {
		return defaultNI
	}
	return vrf
}

func vrfFor(ni, defaultNI string) (string, bool) {
	switch {
	case ni == defaultNI:
		return route.DefaultVRF, true
	case ni == route.DefaultVRF || route.ValidateVRF(ni) != nil:
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
		if k[0] == "" || k[1] == "" || k[2] == "" {
			return
		}
		p, err := netip.ParsePrefix(k[1])
		if err != nil {
			return
		}
		rk := rkey{ni: k[0], prefix: p.Masked()}
		if m := snap.entries[rk]; m != nil {
			m[k[2]] = true
		} else {
			snap.entries[rk] = map[string]bool{k[2]: true}
		}
		if name != "next-hop" || parent != "config" {
			return
		}
		nh, err := netip.ParseAddr(scalar(v))
		if err != nil {
			return // not an address next hop (DROP, LOCAL_LINK, ...): not returnpath's
		}
		set(snap.hops, rk, k[2], nh)
	})
}

// needsSnapshot is always true: the device names next-hop entries its own way, so every
// change is planned against the indexes it holds.
func (e *openConfig) needsSnapshot([]op) bool { return true }

func (e *openConfig) assume(snap *snapshot, o op) {
	hm := snap.hops[o.key()]
	if slices.Contains(nextHops(hm), o.nextHop) {
		return
	}
	taken := map[string]bool{}
	for i := range hm {
		taken[i] = true
	}
	set(snap.hops, o.key(), freeIndex(taken), o.nextHop)
}

// ocStaticJSON renders a static route with one next hop at index. It is written by hand
// because it runs once per route; prefix and nextHop come from netip values, whose text holds
// only hex digits, '.', ':' and '/', and index is a number, so nothing needs escaping.
func ocStaticJSON(prefix, index, nextHop string) []byte {
	b := make([]byte, 0, 128+2*len(prefix)+2*len(index)+len(nextHop))
	b = append(b, `{"prefix":"`...)
	b = append(b, prefix...)
	b = append(b, `","config":{"prefix":"`...)
	b = append(b, prefix...)
	b = append(b, `"},"next-hops":{"next-hop":[{"index":"`...)
	b = append(b, index...)
	b = append(b, `","config":{"index":"`...)
	b = append(b, index...)
	b = append(b, `","next-hop":"`...)
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

func (sp *staticPaths) nextHop(k rkey, index string) *gpb.Path {
	p := sp.path(k)
	p.Elem = append(p.Elem, elem("next-hops"), elem("next-hop", "index", index))
	return p
}

// plan turns each touched route's next hops into their final set. A next hop that goes is
// deleted by the index the device holds it under, and the route entry as a whole only when no
// next-hop entry at all is left. A next hop that comes is merged in at the lowest free numeric
// index. Deletes precede updates in a SetRequest, so a change of next hop never leaves both
// behind, as a merge of the new next hop alone would when the old one sits under another
// index.
func (e *openConfig) plan(snap *snapshot, ops []op) *gpb.SetRequest {
	if snap == nil {
		snap = newSnapshot()
	}
	order, final := simulate(snap, ops)
	paths := &staticPaths{e: e, above: map[string][]*gpb.PathElem{}}
	req := &gpb.SetRequest{}
	var protoNIs []string
	var updates []*gpb.Update
	for _, k := range order {
		cur, fin := current(snap, k), final[k]
		if sameHops(cur, fin) {
			continue
		}
		hm := snap.hops[k]
		other := map[string]bool{}
		for i := range snap.entries[k] {
			if _, isAddr := hm[i]; !isAddr {
				other[i] = true // DROP, an interface: not returnpath's to remove
			}
		}
		if len(fin) == 0 && len(other) == 0 {
			req.Delete = append(req.Delete, paths.path(k))
			continue
		}
		drop, add := diffHops(hm, fin, other)
		for _, i := range drop {
			req.Delete = append(req.Delete, paths.nextHop(k, i))
		}
		if len(add) > 0 && !slices.Contains(protoNIs, k.ni) {
			protoNIs = append(protoNIs, k.ni)
		}
		for _, a := range add {
			updates = append(updates, &gpb.Update{Path: paths.path(k), Val: &gpb.TypedValue{
				Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: ocStaticJSON(k.prefix.String(), a.index, a.addr.String())},
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

func (e *openConfig) routes(snap *snapshot, managed []netip.Prefix) []route.Route {
	return managedRoutes(snap, managed, e.vrf)
}
