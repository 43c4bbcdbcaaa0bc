package ssh

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Linux rendering and parsing. Everything here is pure: the driver in linuxdriver.go feeds it
// the device's text.

// DefaultLinuxProto is the route protocol number that marks returnpath's routes on Linux
// when drivers.LinuxConfig.Proto is 0. /etc/iproute2/rt_protos leaves 200-255 unassigned.
const DefaultLinuxProto = 202

func linuxProto(cfg drivers.Config) int {
	if cfg.Linux.Proto == 0 {
		return DefaultLinuxProto
	}
	return cfg.Linux.Proto
}

// linuxOpLine renders one op as a line of "ip -batch":
//
//	route add 10.210.10.0/24 via 10.10.20.1 proto 202 [vrf blue]
//	route del 10.210.10.0/24 via 10.10.20.1 proto 202 [vrf blue]
//
// Adds use "add", not "replace": the kernel identifies a route by table, prefix, TOS and
// metric but not by protocol, so "replace" would overwrite a foreign route on the same
// prefix. "add" fails with "File exists" instead, which the driver resolves by reading the
// device (our own identical route already there is success; anything else is a refusal).
// Deletes name the protocol, so the kernel only ever deletes a route that carries our mark.
func linuxOpLine(op route.RouteOp, proto int) string {
	var b strings.Builder
	if op.Action == route.ActionDelete {
		b.WriteString("route del ")
	} else {
		b.WriteString("route add ")
	}
	b.WriteString(op.Route.Prefix.String())
	b.WriteString(" via ")
	b.WriteString(op.Route.NextHop.String())
	b.WriteString(" proto ")
	b.WriteString(strconv.Itoa(proto))
	if op.Route.VRF != route.DefaultVRF {
		b.WriteString(" vrf ")
		b.WriteString(op.Route.VRF)
	}
	return b.String()
}

// linuxLines renders ops as "ip -batch" lines, one per op. multipath holds the next hops of
// the driver's routes that have several (by VRF and prefix), as read from the device; it is
// updated as the ops are rendered. A delete of one next hop of such a route cannot be a
// "route del": the kernel matches a delete against a multipath route's first next hop only,
// so it would take the whole route away (the first) or nothing (any other). It becomes a
// "route replace" of the route with the next hops that remain instead, which can only hit
// the route that carries them: the kernel holds one route per table, prefix and metric.
func linuxLines(ops []route.RouteOp, proto int, multipath map[route.RouteKey][]netip.Addr) []string {
	lines := make([]string, len(ops))
	for i, op := range ops {
		hops := multipath[op.Route.Key()]
		if op.Action != route.ActionDelete || len(hops) < 2 || !slices.Contains(hops, op.Route.NextHop) {
			lines[i] = linuxOpLine(op, proto)
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(hops), func(a netip.Addr) bool { return a == op.Route.NextHop })
		multipath[op.Route.Key()] = rest
		var b strings.Builder
		b.WriteString("route replace ")
		b.WriteString(op.Route.Prefix.String())
		b.WriteString(" proto ")
		b.WriteString(strconv.Itoa(proto))
		if len(rest) == 1 {
			b.WriteString(" via " + rest[0].String())
		} else {
			for _, a := range rest {
				b.WriteString(" nexthop via " + a.String())
			}
		}
		if op.Route.VRF != route.DefaultVRF {
			b.WriteString(" vrf " + op.Route.VRF)
		}
		lines[i] = b.String()
	}
	return lines
}

// multipathOf groups rs by VRF and prefix and keeps the groups with several next hops.
func multipathOf(rs []route.Route) map[route.RouteKey][]netip.Addr {
	all := map[route.RouteKey][]netip.Addr{}
	for _, r := range rs {
		all[r.Key()] = append(all[r.Key()], r.NextHop)
	}
	maps.DeleteFunc(all, func(_ route.RouteKey, hops []netip.Addr) bool { return len(hops) < 2 })
	return all
}

// LinuxPreview renders ops as the lines the Linux driver feeds to one "ip -force -batch -",
// in order. It checks every op as Apply does.
func LinuxPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := checkOps(cfg, ops); err != nil {
		return nil, err
	}
	if err := checkProto(cfg); err != nil {
		return nil, err
	}
	proto := linuxProto(cfg)
	lines := make([]string, len(ops))
	for i, op := range ops {
		lines[i] = linuxOpLine(op, proto)
	}
	return lines, nil
}

func checkProto(cfg drivers.Config) error {
	if p := linuxProto(cfg); p < 1 || p > 255 {
		return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "linux route protocol %d out of range 1-255", p)
	}
	return nil
}

// linuxRouteJSON is the part of one entry of "ip -json route show" the driver reads.
type linuxRouteJSON struct {
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Table    string `json:"table"`
	Nexthops []struct {
		Gateway string `json:"gateway"`
	} `json:"nexthops"`
}

// linuxVRFJSON is one entry of "ip -json vrf show".
type linuxVRFJSON struct {
	Name  string `json:"name"`
	Table int    `json:"table"`
}

// parseLinuxVRFs maps routing table ids to VRF names from "ip -json vrf show". Empty output
// (no VRF configured) is no VRF.
func parseLinuxVRFs(data []byte) (map[string]string, error) {
	tables := map[string]string{}
	if len(strings.TrimSpace(string(data))) == 0 {
		return tables, nil
	}
	var vrfs []linuxVRFJSON
	if err := json.Unmarshal(data, &vrfs); err != nil {
		return nil, fmt.Errorf("parse vrf json: %w", err)
	}
	for _, v := range vrfs {
		if route.ValidateVRF(v.Name) == nil {
			tables[strconv.Itoa(v.Table)] = v.Name
		}
	}
	return tables, nil
}

// parseLinuxRoutes reads "ip -json route show table all proto N" output: one route per
// gateway (multipath routes give several). Routes in the main table are in the default VRF;
// routes in a VRF's table (vrfTables, from parseLinuxVRFs) in that VRF; routes in any other
// table, and routes without a gateway, are not returnpath's and are left out.
func parseLinuxRoutes(data []byte, vrfTables map[string]string) ([]route.Route, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, nil
	}
	var entries []linuxRouteJSON
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("parse route json: %w", err)
	}
	var routes []route.Route
	for _, e := range entries {
		vrf := route.DefaultVRF
		switch e.Table {
		case "", "main", "254":
		default:
			v, ok := vrfTables[e.Table]
			if !ok {
				continue
			}
			vrf = v
		}
		p, ok := parseLinuxDst(e.Dst, e.Gateway, e.Nexthops)
		if !ok {
			continue
		}
		gws := []string{e.Gateway}
		if e.Gateway == "" {
			gws = gws[:0]
			for _, nh := range e.Nexthops {
				gws = append(gws, nh.Gateway)
			}
		}
		for _, g := range gws {
			a, err := netip.ParseAddr(g)
			if err != nil {
				continue
			}
			r := route.Route{VRF: vrf, Prefix: p, NextHop: a}
			if r.Validate() == nil {
				routes = append(routes, r)
			}
		}
	}
	return routes, nil
}

// parseLinuxDst parses a route's "dst": "default", a prefix, or a bare address for a host
// route (ip prints 10.0.0.1, not 10.0.0.1/32). The family of "default" comes from the gateway.
func parseLinuxDst(dst, gw string, nhs []struct {
	Gateway string `json:"gateway"`
}) (netip.Prefix, bool) {
	if dst == "default" {
		if gw == "" && len(nhs) > 0 {
			gw = nhs[0].Gateway
		}
		a, err := netip.ParseAddr(gw)
		if err != nil {
			return netip.Prefix{}, false
		}
		if a.Is4() {
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
		}
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
	}
	if strings.Contains(dst, "/") {
		p, err := netip.ParsePrefix(dst)
		return p, err == nil && p == p.Masked()
	}
	a, err := netip.ParseAddr(dst)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// linuxBatchErrors reads the stderr of "ip -force -batch -": each failing line prints its
// error text and then "Command failed -:N" (N counting from 1). It returns the text per
// 0-based line index, and any trailing text not followed by a "Command failed" line: ip
// prints that when it exits in the middle of the batch (an argument it cannot parse), so the
// caller cannot know which lines ran.
func linuxBatchErrors(stderr string) (map[int]string, string) {
	errs := map[int]string{}
	var pending []string
	for _, line := range strings.Split(strings.ReplaceAll(stderr, "\r", ""), "\n") {
		if rest, ok := strings.CutPrefix(line, "Command failed -:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(rest))
			if err == nil && n >= 1 {
				errs[n-1] = strings.Join(pending, "\n")
			}
			pending = pending[:0]
			continue
		}
		if strings.TrimSpace(line) != "" {
			pending = append(pending, strings.TrimSpace(line))
		}
	}
	return errs, strings.Join(pending, "\n")
}

// Kernel answers the Linux driver interprets.
const (
	linuxExists = "File exists"     // add of a route whose key is taken
	linuxNoSuch = "No such process" // delete of a route that is not there (with our mark)
)
