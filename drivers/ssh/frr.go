package ssh

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// FRR rendering and parsing. Everything here is pure: the driver in frrdriver.go feeds it the
// device's text.

// frrRouteLine renders one static route in vtysh configuration syntax:
// "ip route 10.210.10.0/24 10.10.10.101 vrf blue" ("ipv6 route" for IPv6, no vrf keyword in
// the default VRF). r must have passed Validate, which is what keeps every byte printable.
func frrRouteLine(r route.Route) string {
	var b strings.Builder
	if r.Prefix.Addr().Is4() {
		b.WriteString("ip route ")
	} else {
		b.WriteString("ipv6 route ")
	}
	b.WriteString(r.Prefix.String())
	b.WriteByte(' ')
	b.WriteString(r.NextHop.String())
	if r.VRF != route.DefaultVRF {
		b.WriteString(" vrf ")
		b.WriteString(r.VRF)
	}
	return b.String()
}

// frrOpLine renders one op: the route line for an add, "no " and the route line for a delete.
func frrOpLine(op route.RouteOp) string {
	if op.Action == route.ActionDelete {
		return "no " + frrRouteLine(op.Route)
	}
	return frrRouteLine(op.Route)
}

// FRRPreview renders ops as the configuration lines the FRR driver sends, in order. It checks
// every op as Apply does: invalid ops and prefixes outside cfg.Managed are refused.
func FRRPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := checkOps(cfg, ops); err != nil {
		return nil, err
	}
	lines := make([]string, len(ops))
	for i, op := range ops {
		lines[i] = frrOpLine(op)
	}
	return lines, nil
}

// parseFRRStaticConfig reads the static routes of "show running-config staticd". Only lines
// of exactly the form returnpath renders count: a route with a distance, tag, interface,
// label, table or blackhole is someone else's and is left out, so the driver never plans
// against (or deletes) it. VRF blocks ("vrf X" ... "exit-vrf") set the VRF of the lines
// inside them.
func parseFRRStaticConfig(text string) []route.Route {
	var routes []route.Route
	vrf := route.DefaultVRF
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \r")
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "vrf" && !strings.HasPrefix(line, " "):
			if route.ValidateVRF(f[1]) != nil {
				vrf = "" // a VRF returnpath cannot name: skip its routes
				continue
			}
			vrf = f[1]
		case len(f) >= 1 && (f[0] == "exit-vrf" || (f[0] == "!" && !strings.HasPrefix(line, " "))):
			vrf = route.DefaultVRF
		case len(f) >= 4 && (f[0] == "ip" || f[0] == "ipv6") && f[1] == "route":
			r, ok := parseFRRRouteFields(f, vrf)
			if ok {
				routes = append(routes, r)
			}
		}
	}
	return routes
}

// parseFRRRouteFields parses "ip route P NH" or "ip route P NH vrf V" (the form FRR uses for
// routes configured outside a vrf block in older releases).
func parseFRRRouteFields(f []string, vrf string) (route.Route, bool) {
	if vrf == "" {
		return route.Route{}, false
	}
	switch {
	case len(f) == 4:
	case len(f) == 6 && f[4] == "vrf" && vrf == route.DefaultVRF:
		vrf = f[5]
	default:
		return route.Route{}, false
	}
	p, err := netip.ParsePrefix(f[2])
	if err != nil {
		return route.Route{}, false
	}
	nh, err := netip.ParseAddr(f[3])
	if err != nil {
		return route.Route{}, false
	}
	r := route.Route{VRF: vrf, Prefix: p, NextHop: nh}
	if r.Validate() != nil || (f[0] == "ip") != p.Addr().Is4() {
		return route.Route{}, false
	}
	return r, true
}

// frrRouteJSON is the part of one entry of "show ip route vrf all static json" the driver
// reads.
type frrRouteJSON struct {
	Prefix    string `json:"prefix"`
	Protocol  string `json:"protocol"`
	VRFName   string `json:"vrfName"`
	Installed bool   `json:"installed"`
	Nexthops  []struct {
		IP  string `json:"ip"`
		FIB bool   `json:"fib"`
	} `json:"nexthops"`
}

// parseFRRInstalled reads the output of "show ip route vrf all static json" (or "show ipv6
// ...") and returns the static routes FRR installed in the forwarding table, one per next
// hop that is in the FIB. Both the single-VRF shape {prefix: [entries]} and the all-VRF shape
// {vrf: {prefix: [entries]}} are understood.
func parseFRRInstalled(data []byte) ([]route.Route, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("parse route json: %w", err)
	}
	var routes []route.Route
	for key, raw := range top {
		var entries []frrRouteJSON
		if err := json.Unmarshal(raw, &entries); err == nil {
			routes = appendInstalled(routes, entries)
			continue
		}
		var byPrefix map[string][]frrRouteJSON
		if err := json.Unmarshal(raw, &byPrefix); err != nil {
			return nil, fmt.Errorf("parse route json under %q: %w", key, err)
		}
		for _, entries := range byPrefix {
			routes = appendInstalled(routes, entries)
		}
	}
	return routes, nil
}

func appendInstalled(routes []route.Route, entries []frrRouteJSON) []route.Route {
	for _, e := range entries {
		if e.Protocol != "static" || !e.Installed {
			continue
		}
		p, err := netip.ParsePrefix(e.Prefix)
		if err != nil {
			continue
		}
		vrf := e.VRFName
		if vrf == "" {
			vrf = route.DefaultVRF
		}
		for _, nh := range e.Nexthops {
			a, err := netip.ParseAddr(nh.IP)
			if err != nil || !nh.FIB {
				continue
			}
			r := route.Route{VRF: vrf, Prefix: p, NextHop: a}
			if r.Validate() == nil {
				routes = append(routes, r)
			}
		}
	}
	return routes
}

// frrResult is what vtysh answered to one line of a pushed batch.
type frrResult struct {
	Echo   string   // the command as vtysh echoed it
	Output []string // the non-empty lines vtysh printed after it
}

// frrPromptRE matches a line that begins with a vtysh prompt ("sw1# ", "sw1(config)# ",
// "sw1(config-vrf)# "), capturing what follows it: the echoed command.
var frrPromptRE = regexp.MustCompile(`^[\w.\-]{1,63}(?:\((?:config|config-[\w.\-]+)\))?# ?(.*)$`)

// splitFRRTranscript splits vtysh's answer to a batch written without a terminal into one
// result per line sent. Without a terminal vtysh prints its prompt, echoes each line as it
// reads it, then prints that line's output, strictly in order. The prompt before the first
// line was consumed before the batch was written, so the transcript opens with the first
// line's echo; every later prompt opens the next result. After the last line sent comes one
// more prompt, so a complete transcript of n lines has n+1 results.
func splitFRRTranscript(transcript string) []frrResult {
	lines := strings.Split(strings.ReplaceAll(transcript, "\r", ""), "\n")
	out := []frrResult{{Echo: lines[0]}}
	if m := frrPromptRE.FindStringSubmatch(lines[0]); m != nil {
		out[0].Echo = m[1]
	}
	for _, line := range lines[1:] {
		if m := frrPromptRE.FindStringSubmatch(line); m != nil {
			out = append(out, frrResult{Echo: m[1]})
			continue
		}
		if strings.TrimSpace(line) != "" {
			out[len(out)-1].Output = append(out[len(out)-1].Output, line)
		}
	}
	return out
}

// frrEchoMatches compares vtysh's echo with the line sent. Without a terminal, readline
// scrolls a line longer than its assumed 80 columns horizontally and shows "<" and the
// line's tail.
func frrEchoMatches(echo, sent string) bool {
	echo = strings.TrimRight(echo, " ")
	if echo == sent {
		return true
	}
	tail, ok := strings.CutPrefix(echo, "<")
	tail = strings.TrimSpace(strings.TrimSuffix(tail, ">"))
	return ok && tail != "" && strings.HasSuffix(sent, tail)
}

// frrRefusal returns the text of the error lines in a command's output, or "" when the
// device accepted it. FRR prefixes every error with "%"; a delete of a route that is not
// there ("% Refusing to remove a non-existent route") is success: the route is gone either
// way. Informational lines ("Static Route to ... not installed currently because dependent
// config not fully available") are not errors.
func frrRefusal(op route.RouteOp, output []string) string {
	var errs []string
	for _, l := range output {
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "%") {
			continue
		}
		if op.Action == route.ActionDelete && strings.HasPrefix(t, frrNonExistent) {
			continue
		}
		errs = append(errs, t)
	}
	return strings.Join(errs, "\n")
}

const frrNonExistent = "% Refusing to remove a non-existent route"
