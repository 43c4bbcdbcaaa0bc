package gnmi

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// SRLGroupPrefix starts the name of every next-hop-group returnpath creates on SR Linux
// ("returnpath-10.10.10.101"). Only groups with this prefix are ever removed.
const SRLGroupPrefix = "returnpath-"

// srl is the SR Linux native encoding: a route references a next-hop-group by name, so
// returnpath keeps one group per next hop and network-instance, created in the same
// SetRequest as the first route that uses it and removed with the last. A group may be shared
// by routes, so returnpath never edits one to change a route: it points the route at the
// group of its final next hops instead (a route left with several next hops gets a group named
// after all of them, "returnpath-10.0.0.1+10.0.0.2"). Groups whose names lack SRLGroupPrefix
// are the operator's and are never changed or removed, even when no route uses them any more.
type srl struct {
	defaultNI string
}

func newSRL(c drivers.GNMIConfig) (*srl, error) {
	e := &srl{defaultNI: cmp.Or(c.NetworkInstance, "default")}
	if err := route.ValidateVRF(e.defaultNI); err != nil {
		return nil, fmt.Errorf("gnmi network_instance: %w", err)
	}
	return e, nil
}

func (e *srl) networkInstance(vrf string) string { return niFor(vrf, e.defaultNI) }
func (e *srl) vrf(ni string) (string, bool)      { return vrfFor(ni, e.defaultNI) }

// srlGroupName names returnpath's group for a route via nhs.
func srlGroupName(nhs []netip.Addr) string {
	nhs = slices.Clone(nhs)
	slices.SortFunc(nhs, netip.Addr.Compare)
	var b strings.Builder
	b.WriteString(SRLGroupPrefix)
	for i, a := range nhs {
		if i > 0 {
			b.WriteByte('+')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

func (e *srl) readPaths(nis []string) []*gpb.Path {
	if nis == nil {
		nis = []string{"*"}
	}
	out := make([]*gpb.Path, 0, 2*len(nis))
	for _, ni := range nis {
		out = append(out,
			&gpb.Path{Elem: []*gpb.PathElem{elem("network-instance", "name", ni), elem("static-routes")}},
			&gpb.Path{Elem: []*gpb.PathElem{elem("network-instance", "name", ni), elem("next-hop-groups")}},
		)
	}
	return out
}

func srlSlot(list string) (int, string, bool) {
	switch list {
	case "network-instance":
		return 0, "name", true
	case "route":
		return 1, "prefix", true
	case "group":
		return 1, "name", true
	case "nexthop":
		return 2, "index", true
	}
	return 0, "", false
}

func (e *srl) decode(snap *snapshot, ns []*gpb.Notification) error {
	return walkUpdates(ns, srlSlot, func(k keys, parent, name string, v any) {
		switch {
		case name == "next-hop-group" && parent == "route" && k[0] != "" && k[1] != "":
			p, err := netip.ParsePrefix(k[1])
			if err != nil {
				return
			}
			snap.groupOf[rkey{ni: k[0], prefix: p.Masked()}] = scalar(v)
		case name == "ip-address" && parent == "nexthop" && k[0] != "" && k[1] != "" && k[2] != "":
			nh, err := netip.ParseAddr(scalar(v))
			if err != nil {
				return
			}
			set(snap.groups, gkey{ni: k[0], name: k[1]}, k[2], nh)
		case name == "name" && parent == "group" && k[0] != "" && k[1] != "":
			// A group without next hops still exists (and may be ours to remove).
			if _, ok := snap.groups[gkey{ni: k[0], name: k[1]}]; !ok {
				snap.groups[gkey{ni: k[0], name: k[1]}] = map[string]netip.Addr{}
			}
		}
	})
}

// resolve fills snap.hops from the routes' groups. It is idempotent.
func (e *srl) resolve(snap *snapshot) {
	for k, g := range snap.groupOf {
		if hm, ok := snap.groups[gkey{ni: k.ni, name: g}]; ok && len(hm) > 0 {
			snap.hops[k] = hm
		}
	}
}

func (e *srl) needsSnapshot([]op) bool { return true }

func (e *srl) assume(snap *snapshot, o op) {
	g := srlGroupName([]netip.Addr{o.nextHop})
	snap.groupOf[o.key()] = g
	set(snap.groups, gkey{ni: o.ni, name: g}, "0", o.nextHop)
	set(snap.hops, o.key(), "0", o.nextHop)
}

// srlRouteJSON renders a route; like ocStaticJSON it runs once per route and its inputs
// (netip text and a group name built from it) need no escaping.
func srlRouteJSON(prefix, group string) []byte {
	b := make([]byte, 0, 64+len(prefix)+len(group))
	b = append(b, `{"prefix":"`...)
	b = append(b, prefix...)
	b = append(b, `","admin-state":"enable","next-hop-group":"`...)
	b = append(b, group...)
	b = append(b, `"}`...)
	return b
}

type srlNextHop struct {
	Index     uint16 `json:"index"`
	IPAddress string `json:"ip-address"`
	Resolve   bool   `json:"resolve"`
}

type srlGroup struct {
	Name       string       `json:"name"`
	AdminState string       `json:"admin-state"`
	Nexthop    []srlNextHop `json:"nexthop"`
}

// srlRoutePaths builds route paths, sharing the elements above the route per
// network-instance.
type srlRoutePaths map[string][2]*gpb.PathElem

func (sp srlRoutePaths) path(k rkey) *gpb.Path {
	above, ok := sp[k.ni]
	if !ok {
		above = [2]*gpb.PathElem{elem("network-instance", "name", k.ni), elem("static-routes")}
		sp[k.ni] = above
	}
	return &gpb.Path{Elem: []*gpb.PathElem{
		above[0], above[1], {Name: "route", Key: map[string]string{"prefix": k.prefix.String()}},
	}}
}

func srlGroupPath(g gkey) *gpb.Path {
	return &gpb.Path{Elem: []*gpb.PathElem{
		elem("network-instance", "name", g.ni), elem("next-hop-groups"), elem("group", "name", g.name),
	}}
}

func (e *srl) plan(snap *snapshot, ops []op) *gpb.SetRequest {
	if snap == nil {
		snap = newSnapshot()
	}
	e.resolve(snap)
	order, final := simulate(snap, ops)

	// users counts the routes that reference each group once the request is applied.
	users := make(map[gkey]int, len(snap.groups))
	for g := range snap.groups {
		users[g] = 0
	}
	for k, g := range snap.groupOf {
		users[gkey{ni: k.ni, name: g}]++
	}

	req := &gpb.SetRequest{}
	paths := srlRoutePaths{}
	var groups []gkey
	need := map[gkey][]netip.Addr{}
	var routes []*gpb.Update
	for _, k := range order {
		cur, fin := current(snap, k), final[k]
		old, hadGroup := snap.groupOf[k]
		switch {
		case sameHops(cur, fin):
			continue
		case len(fin) == 0:
			req.Delete = append(req.Delete, paths.path(k))
		default:
			g := gkey{ni: k.ni, name: srlGroupName(fin)}
			users[g]++
			if _, ok := need[g]; !ok {
				need[g] = fin
				groups = append(groups, g)
			}
			routes = append(routes, &gpb.Update{Path: paths.path(k), Val: &gpb.TypedValue{
				Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: srlRouteJSON(k.prefix.String(), g.name)},
			}})
		}
		if hadGroup {
			users[gkey{ni: k.ni, name: old}]--
		}
	}
	// Groups first, so that a reader of the request sees each group before its routes; the
	// device validates the request as a whole either way.
	for _, g := range groups {
		drop, add := diffHops(snap.groups[g], need[g], nil)
		for _, i := range drop {
			// Someone edited a group of ours: it must end with exactly its name's next hops.
			p := srlGroupPath(g)
			p.Elem = append(p.Elem, elem("nexthop", "index", i))
			req.Delete = append(req.Delete, p)
		}
		if len(add) == 0 {
			continue // already there as we would write it
		}
		nhs := make([]srlNextHop, len(add))
		for i, a := range add {
			n, _ := strconv.ParseUint(a.index, 10, 16) // freeIndex returns small numbers
			nhs[i] = srlNextHop{Index: uint16(n), IPAddress: a.addr.String(), Resolve: true}
		}
		req.Update = append(req.Update, &gpb.Update{Path: srlGroupPath(g), Val: jsonVal(srlGroup{
			Name: g.name, AdminState: "enable", Nexthop: nhs,
		})})
	}
	req.Update = append(req.Update, routes...)
	var unused []gkey
	for g, n := range users {
		if _, exists := snap.groups[g]; n <= 0 && exists && strings.HasPrefix(g.name, SRLGroupPrefix) {
			unused = append(unused, g)
		}
	}
	slices.SortFunc(unused, func(a, b gkey) int { return cmp.Or(strings.Compare(a.ni, b.ni), strings.Compare(a.name, b.name)) })
	for _, g := range unused {
		req.Delete = append(req.Delete, srlGroupPath(g))
	}
	return req
}

func (e *srl) routes(snap *snapshot, managed []netip.Prefix) []route.Route {
	e.resolve(snap)
	return managedRoutes(snap, managed, e.vrf)
}
