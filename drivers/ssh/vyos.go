package ssh

import (
	"bufio"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// VyOS rendering and parsing. Everything here is pure: the driver in vyosdriver.go feeds it the
// device's text.
//
// Statement syntax (VyOS documentation, "Static" and "VRF"): "protocols static route PREFIX
// next-hop ADDRESS", "route6" for IPv6, under "vrf name NAME" for a VRF.

// vyosVRFRE is what VyOS accepts as a VRF name: a Linux interface name (at most 15
// characters), of the characters returnpath allows in any VRF name but '.'.
var vyosVRFRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$`)

// VyOSCheck validates the vyos keys of cfg: the device's default VRF, when not "default", must
// be a name VyOS accepts for "vrf name".
func VyOSCheck(cfg drivers.Config) error {
	if cfg.VRF != "" && cfg.VRF != route.DefaultVRF && !vyosVRFRE.MatchString(cfg.VRF) {
		return &route.FieldError{Field: "vrf", Message: fmt.Sprintf("VyOS VRF names are 1-15 letters, digits, '_' or '-', got %q", cfg.VRF)}
	}
	return nil
}

// vyosRoutePath renders the statement path of a static route, e.g. "protocols static route
// 10.210.10.0/24" or "vrf name blue protocols static route6 2001:db8::/64". vrf must have
// passed route.ValidateVRF (every byte printable); the rest are netip values.
func vyosRoutePath(vrf string, p netip.Prefix) string {
	var b strings.Builder
	if vrf != route.DefaultVRF {
		b.WriteString("vrf name ")
		b.WriteString(vrf)
		b.WriteByte(' ')
	}
	b.WriteString("protocols static route")
	if p.Addr().Is6() {
		b.WriteByte('6')
	}
	b.WriteByte(' ')
	b.WriteString(p.String())
	return b.String()
}

// vyosBatch renders ops as configuration-mode lines (VyOS marks no ownership).
func vyosBatch(ops []route.RouteOp, have map[route.RouteKey]setStatic) (lines []string, line []int) {
	return setBatch(ops, have, vyosRoutePath, "")
}

// VyOSPreview renders ops as the lines the vyos driver sends: "configure", the set and delete
// lines, "commit", "save" when vyos.save is set, "exit". The preview cannot see the device:
// deletes of routes it does not hold are dropped at send time, and a delete removes the whole
// route only when the route is left with no next hop. Invalid ops and prefixes outside
// cfg.Managed are refused.
func VyOSPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := checkOps(cfg, ops); err != nil {
		return nil, err
	}
	lines, _ := vyosBatch(ops, nil)
	out := append([]string{"configure"}, lines...)
	out = append(out, "commit")
	if cfg.VyOS.Save {
		out = append(out, "save")
	}
	return append(out, "exit"), nil
}

// parseVyOSStatics reads the static routes of "show configuration commands" output: lines
// "set [vrf name V] protocols static route|route6 P ...", with VyOS's single quotes around the
// last value. A "next-hop" with an address (whatever it carries below it: distance, disable)
// is a next hop; an interface, a blackhole or a dhcp-interface is another forwarding action;
// descriptions count for nothing. Routes of policy tables ("static table N") and lines of any
// other form are left out.
func parseVyOSStatics(text string) []setStatic {
	var order []route.RouteKey
	byKey := map[route.RouteKey]*setStatic{}
	seen := map[route.Route]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := range f {
			f[i] = strings.Trim(f[i], "'")
		}
		if len(f) < 6 || f[0] != "set" {
			continue
		}
		f = f[1:]
		vrf := route.DefaultVRF
		if f[0] == "vrf" {
			if len(f) < 3 || f[1] != "name" || f[2] == route.DefaultVRF || route.ValidateVRF(f[2]) != nil {
				continue
			}
			vrf, f = f[2], f[3:]
		}
		if len(f) < 5 || f[0] != "protocols" || f[1] != "static" || (f[2] != "route" && f[2] != "route6") {
			continue
		}
		p, err := netip.ParsePrefix(f[3])
		if err != nil || p != p.Masked() || p.Addr().Is6() != (f[2] == "route6") {
			continue
		}
		k := route.RouteKey{VRF: vrf, Prefix: p}
		st := byKey[k]
		if st == nil {
			st = &setStatic{VRF: vrf, Prefix: p}
			byKey[k] = st
			order = append(order, k)
		}
		switch f[4] {
		case "next-hop":
			if len(f) < 6 {
				continue
			}
			a, err := netip.ParseAddr(f[5])
			if err != nil || a.Zone() != "" {
				continue
			}
			r := route.Route{VRF: vrf, Prefix: p, NextHop: a}
			if !seen[r] {
				seen[r] = true
				st.NextHops = append(st.NextHops, a)
			}
		case "interface", "blackhole", "dhcp-interface", "reject":
			st.Other++
		}
	}
	out := make([]setStatic, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

// vyosRoutes returns one route per address next hop of statics, of the route's own address
// family: on VyOS every static route inside the pools counts as returnpath's.
func vyosRoutes(statics []setStatic) []route.Route {
	var out []route.Route
	for _, st := range statics {
		for _, nh := range st.NextHops {
			r := route.Route{VRF: st.VRF, Prefix: st.Prefix, NextHop: nh}
			if r.Validate() == nil {
				out = append(out, r)
			}
		}
	}
	return out
}

// The VyOS CLI's prompts: "user@host:~$" in operational mode, "user@host#" in configuration
// mode (after an "[edit]" banner); scrapligo's vyatta_vyos definition matches the same.
var (
	vyosPromptRE  = regexp.MustCompile(`^[\w.\-]{1,63}@[\w.\-]{1,63}(?::\S*\$|#) ?(.*)$`)
	vyosPromptEnd = regexp.MustCompile(`(?:^|\n)[\w.\-]{1,63}@[\w.\-]{1,63}(?::\S*\$|#) ?$`)
	vyosExecEnd   = regexp.MustCompile(`(?:^|\n)[\w.\-]{1,63}@[\w.\-]{1,63}:\S*\$ ?$`)
	// The operational pager (less) waits at a line holding only ":"; answering it leaves the
	// colon and the spaces that erase it at the start of the next line.
	vyosMoreRE = regexp.MustCompile(`(?m)^: *`)
)

var vyosDialect = setDialect{
	promptLine: vyosPromptRE,
	promptEnd:  vyosPromptEnd,
	execEnd:    vyosExecEnd,
	pager:      []byte("\n:"),
	more:       vyosMoreRE,
	refusal:    vyosRefusal,
}

// vyosRefusal returns a command's whole output when it holds an error, or "": scrapligo's
// vyatta_vyos markers ("Invalid command", "is not valid", "Set failed"), and "Delete failed"
// and "Commit failed", which end VyOS's other refusals.
func vyosRefusal(output []string) string {
	for _, l := range output {
		for _, m := range []string{"Invalid command", "is not valid", "Set failed", "Delete failed", "Commit failed"} {
			if strings.Contains(l, m) {
				return strings.Join(trimLines(output), "\n")
			}
		}
	}
	return ""
}

// vyosCulprit returns the index in ops of the op a commit error names ("[ protocols static
// route P next-hop NH ]"), or -1.
func vyosCulprit(text string, ops []route.RouteOp) int {
	for l := range strings.Lines(text) {
		t := strings.TrimSpace(l)
		if !strings.HasPrefix(t, "[") || !strings.HasSuffix(t, "]") {
			continue
		}
		stmt := strings.TrimSpace(strings.Trim(t, "[]"))
		for j, op := range ops {
			if stmt == vyosRoutePath(op.Route.VRF, op.Route.Prefix)+" next-hop "+op.Route.NextHop.String() {
				return j
			}
		}
	}
	return -1
}

// vyosVersion returns "VyOS 1.4.0" from "show version"'s "Version:" line, or its first line.
func vyosVersion(out string) string {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return versionLine(out)
}
