package gnmi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// encoding is one YANG model's way of reading and writing static routes.
type encoding interface {
	// networkInstance maps a validated VRF to the device's network-instance name.
	networkInstance(vrf string) string
	// vrf maps a network-instance name back to a VRF; false for names no VRF can carry.
	vrf(ni string) (string, bool)
	// readPaths are the Get paths holding the routes of nis (every instance when nil).
	readPaths(nis []string) []*gpb.Path
	// decode adds the routes in ns to snap.
	decode(snap *snapshot, ns []*gpb.Notification) error
	// needsSnapshot reports whether plan needs the device's routes for ops.
	needsSnapshot(ops []op) bool
	// assume records o's route in snap as if the device held it (for Preview).
	assume(snap *snapshot, o op)
	// plan builds the one SetRequest for ops; snap is nil when needsSnapshot was false.
	plan(snap *snapshot, ops []op) *gpb.SetRequest
	// routes returns snap's routes inside managed.
	routes(snap *snapshot, managed []netip.Prefix) []route.Route
}

func newEncoding(cfg drivers.Config) (encoding, error) {
	switch cfg.Platform {
	case route.PlatformOpenConfig:
		return newOpenConfig(cfg.GNMI)
	case route.PlatformNokiaSRL:
		return newSRL(cfg.GNMI)
	}
	return nil, fmt.Errorf("platform %q is not a gNMI platform (want openconfig or nokia_srl)", cfg.Platform)
}

// gkey identifies an SR Linux next-hop-group.
type gkey struct {
	ni, name string
}

// snapshot is what a read found on the device.
type snapshot struct {
	// hops holds every static route read, managed or not, with its next hops by the index
	// the device gave them ("0", "1", "AUTO_1_10.0.0.1", ...).
	hops map[rkey]map[string]netip.Addr
	// entries holds the index of every OpenConfig next-hop entry read, with an address or
	// not (DROP, an interface): a static route is only deleted whole when none is left.
	entries map[rkey]map[string]bool
	// groupOf and groups hold SR Linux's route-to-group references and groups' next hops.
	groupOf map[rkey]string
	groups  map[gkey]map[string]netip.Addr
}

func newSnapshot() *snapshot {
	return &snapshot{
		hops:    map[rkey]map[string]netip.Addr{},
		entries: map[rkey]map[string]bool{},
		groupOf: map[rkey]string{},
		groups:  map[gkey]map[string]netip.Addr{},
	}
}

// indexes returns m's keys in the order a device lists them: numbers numerically, before
// and then other names alphabetically.
func indexes[V any](m map[string]V) []string {
	idx := make([]string, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	slices.SortFunc(idx, func(a, b string) int {
		na, ea := strconv.Atoi(a)
		nb, eb := strconv.Atoi(b)
		switch {
		case ea == nil && eb == nil:
			return na - nb
		case ea == nil:
			return -1
		case eb == nil:
			return 1
		}
		return strings.Compare(a, b)
	})
	return idx
}

// nextHops returns m's next hops ordered by index.
func nextHops(m map[string]netip.Addr) []netip.Addr {
	idx := indexes(m)
	out := make([]netip.Addr, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out
}

// freeIndex returns the lowest number not in taken, as a list key.
func freeIndex(taken map[string]bool) string {
	for i := 0; ; i++ {
		if s := strconv.Itoa(i); !taken[s] {
			return s
		}
	}
}

// indexed is a next hop at a list index.
type indexed struct {
	index string
	addr  netip.Addr
}

// diffHops says how a next-hop list holding hm comes to hold exactly the next hops fin: the
// indexes to delete, in index order, and the next hops to write, each at the lowest index
// free. Indexes in keep are neither deleted nor reused. Entries are deleted by the index the
// device holds them under, whatever it is, so a next hop is never left behind because its
// index is not the one returnpath would have chosen.
func diffHops(hm map[string]netip.Addr, fin []netip.Addr, keep map[string]bool) (drop []string, add []indexed) {
	taken := maps.Clone(keep)
	if taken == nil {
		taken = map[string]bool{}
	}
	var held []netip.Addr
	for _, i := range indexes(hm) {
		if slices.Contains(fin, hm[i]) && !slices.Contains(held, hm[i]) {
			taken[i] = true
			held = append(held, hm[i])
		} else if !taken[i] {
			drop = append(drop, i)
		}
	}
	for _, a := range fin {
		if !slices.Contains(held, a) {
			i := freeIndex(taken)
			taken[i] = true
			add = append(add, indexed{index: i, addr: a})
		}
	}
	return drop, add
}

// set records next hop nh at index idx of a route or group.
func set[K comparable](m map[K]map[string]netip.Addr, k K, idx string, nh netip.Addr) {
	hm := m[k]
	if hm == nil {
		hm = map[string]netip.Addr{}
		m[k] = hm
	}
	hm[idx] = nh
}

// keys holds the list keys seen on the way down a tree: [0] the network-instance, [1] the
// route or group, [2] the next hop index.
type keys [3]string

// listSlot says at which keys slot a list's entries are identified and by which key leaf.
type listSlot func(list string) (slot int, key string, ok bool)

// leafFunc receives every leaf with the keys above it and the name of its parent node.
type leafFunc func(k keys, parent, name string, v any)

// walkUpdates feeds every leaf of ns (path keys, then the JSON values) to leaf.
func walkUpdates(ns []*gpb.Notification, slot listSlot, leaf leafFunc) error {
	for _, n := range ns {
		for _, u := range n.GetUpdate() {
			elems := append(slices.Clone(n.GetPrefix().GetElem()), u.GetPath().GetElem()...)
			var k keys
			parent, name := "", ""
			for _, e := range elems {
				parent, name = name, localName(e.GetName())
				if s, key, ok := slot(name); ok {
					if v, has := e.GetKey()[key]; has {
						k[s] = v
					}
				}
			}
			v, err := value(u.GetVal())
			if err != nil {
				return fmt.Errorf("update at %v: %w", elems, err)
			}
			walkValue(k, parent, name, v, slot, leaf)
		}
	}
	return nil
}

func walkValue(k keys, parent, name string, v any, slot listSlot, leaf leafFunc) {
	switch x := v.(type) {
	case map[string]any:
		for ck, cv := range x {
			cn := localName(ck)
			if items, ok := cv.([]any); ok {
				s, key, isList := slot(cn)
				for _, it := range items {
					kk := k
					if m, ok := it.(map[string]any); ok && isList {
						kk[s] = scalar(m[key])
						if kk[s] == "" {
							kk[s] = scalar(m[qualifiedKey(m, key)])
						}
					}
					walkValue(kk, name, cn, it, slot, leaf)
				}
				continue
			}
			walkValue(k, name, cn, cv, slot, leaf)
		}
	case []any:
		for _, it := range x {
			walkValue(k, parent, name, it, slot, leaf)
		}
	default:
		leaf(k, parent, name, v)
	}
}

// qualifiedKey finds a module-qualified spelling of key in m.
func qualifiedKey(m map[string]any, key string) string {
	for k := range m {
		if localName(k) == key {
			return k
		}
	}
	return key
}

// value decodes a TypedValue to JSON-like Go values.
func value(tv *gpb.TypedValue) (any, error) {
	var raw []byte
	switch v := tv.GetValue().(type) {
	case *gpb.TypedValue_JsonIetfVal:
		raw = v.JsonIetfVal
	case *gpb.TypedValue_JsonVal:
		raw = v.JsonVal
	case *gpb.TypedValue_StringVal:
		return v.StringVal, nil
	case *gpb.TypedValue_UintVal:
		return strconv.FormatUint(v.UintVal, 10), nil
	case *gpb.TypedValue_IntVal:
		return strconv.FormatInt(v.IntVal, 10), nil
	case nil:
		return nil, nil
	default:
		return nil, nil // other leaf types carry nothing returnpath reads
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return out, nil
}

// scalar renders a JSON scalar as the string a path key would carry.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// localName drops an RFC 7951 module qualifier ("module:name").
func localName(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// elem builds a path element with at most two keys.
func elem(name string, kv ...string) *gpb.PathElem {
	e := &gpb.PathElem{Name: name}
	if len(kv) > 0 {
		e.Key = make(map[string]string, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			e.Key[kv[i]] = kv[i+1]
		}
	}
	return e
}

func jsonVal(v any) *gpb.TypedValue {
	b, err := json.Marshal(v)
	if err != nil {
		// Only fixed structs of strings and numbers are marshalled here.
		panic(fmt.Sprintf("gnmi: marshal %T: %v", v, err))
	}
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: b}}
}

// render writes req as preview lines in the order the device processes them.
func render(req *gpb.SetRequest) ([]string, error) {
	out := make([]string, 0, len(req.Delete)+len(req.Update))
	for _, p := range req.Delete {
		out = append(out, "delete "+pathString(p))
	}
	for _, u := range req.Update {
		out = append(out, "update "+pathString(u.Path)+" "+string(u.Val.GetJsonIetfVal()))
	}
	return out, nil
}

// pathString renders p in the usual gNMI string form, /a/b[k=v].
func pathString(p *gpb.Path) string {
	var b strings.Builder
	for _, e := range p.GetElem() {
		b.WriteByte('/')
		b.WriteString(e.GetName())
		ks := make([]string, 0, len(e.GetKey()))
		for k := range e.GetKey() {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		for _, k := range ks {
			b.WriteString("[" + k + "=" + e.GetKey()[k] + "]")
		}
	}
	return b.String()
}
