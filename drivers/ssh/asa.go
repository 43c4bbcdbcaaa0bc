package ssh

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Cisco ASA rendering and parsing. Everything here is pure: the driver in asadriver.go feeds
// it the firewall's text.
//
// Sources (Cisco's documentation, read through the project's search tool):
//   - "route if_name dest_ip mask gateway_ip [distance]", up to three equal-cost routes per
//     destination and interface, and "ERROR: Cannot add route entry, possible conflict with
//     existing routes.": Cisco ASA Series CLI Configuration Guide 9.0, "Configuring Static
//     and Default Routes" (and the ASA 5500 Series Configuration Guide, chapter 22).
//   - "ipv6 route if_name ipv6-prefix/prefix-length ipv6-address [administrative-distance]":
//     Cisco ASA Series Command Reference, I - R Commands, "ipv6 route",
//     http://www.cisco.com/c/en/us/td/docs/security/asa/asa-command-reference/I-R/cmdref2/i4.html.
//   - The running configuration prints every static route with its distance, e.g.
//     "route inside 10.210.10.0 255.255.255.0 10.10.20.1 1" (route line examples of the same
//     guides; "the default is 1").
//   - The pager "<--- More --->", "terminal pager 0", "enable" before it: the ASA profiles of
//     NOC project and netmiko; "Cisco Adaptive Security Appliance Software Version 9.16(2)"
//     as the first line of "show version".

// asaNameifRE is what the driver accepts as asa.interface: an interface's nameif (ASA allows
// up to 48 characters); returnpath accepts a letter, then letters, digits, '_', '.' and '-',
// so that nothing but a name reaches the CLI.
var asaNameifRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.\-]{0,47}$`)

// ASACheck validates the cisco_asa settings of cfg: the interface (asa.interface) is required
// and must be a plain nameif, and the device's VRF must be the default one: an ASA in routed
// mode has one routing table per context, not VRFs returnpath could name.
func ASACheck(cfg drivers.Config) error {
	if cfg.ASA.Interface == "" {
		return &route.FieldError{Field: "asa.interface", Message: "is required: the nameif of the interface every static route leaves by (e.g. inside)"}
	}
	if !asaNameifRE.MatchString(cfg.ASA.Interface) {
		return &route.FieldError{Field: "asa.interface", Message: fmt.Sprintf("invalid nameif %q: a letter, then up to 47 letters, digits, '_', '.', '-'", cfg.ASA.Interface)}
	}
	if cfg.VRF != "" && cfg.VRF != route.DefaultVRF {
		return &route.FieldError{Field: "vrf", Message: fmt.Sprintf("Cisco ASA has no VRFs returnpath can use: want default, got %q", cfg.VRF)}
	}
	return nil
}

// asaCheckOps refuses, before anything is sent, a batch the driver cannot render: the checks
// every driver makes, the device settings, and routes outside the default VRF.
func asaCheckOps(cfg drivers.Config, ops []route.RouteOp) error {
	if err := checkOps(cfg, ops); err != nil {
		return err
	}
	if err := ASACheck(cfg); err != nil {
		return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "%w", err)
	}
	for i, op := range ops {
		if op.Route.VRF != route.DefaultVRF {
			return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "op %d (%s): %w", i, op,
				&route.FieldError{Field: "vrf", Message: "Cisco ASA has no VRFs returnpath can use"})
		}
	}
	return checkSameRoute(cfg, ops)
}

// asaMask renders an IPv4 prefix length as a dotted netmask.
func asaMask(bits int) string {
	var m [4]byte
	for i := range bits {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(m).String()
}

// asaLine renders one op: "route IF A MASK NH" or "ipv6 route IF P NH", with "no " in front
// for a delete. The distance is left to ASA's default (1), which is what the running
// configuration prints back. r must have passed Validate; nameif must match asaNameifRE.
func asaLine(a route.Action, r route.Route, nameif string) string {
	var line string
	if r.Prefix.Addr().Is4() {
		line = "route " + nameif + " " + r.Prefix.Addr().String() + " " + asaMask(r.Prefix.Bits()) + " " + r.NextHop.String()
	} else {
		line = "ipv6 route " + nameif + " " + r.Prefix.String() + " " + r.NextHop.String()
	}
	if a == route.ActionDelete {
		return "no " + line
	}
	return line
}

// asaBatch renders ops, in order, inside "configure terminal" ... "end": one line per op.
// ops[i].Index is the op's index in the ops passed to Apply.
func asaBatch(ops []asaOp, nameif string) lineBatch {
	var b lineBatch
	b.add(-1, "configure terminal")
	for _, o := range ops {
		b.add(o.Index, asaLine(o.Op.Action, o.Op.Route, nameif))
	}
	b.add(-1, "end")
	return b
}

// asaOp is one op to send with its index in the ops passed to Apply.
type asaOp struct {
	Index int
	Op    route.RouteOp
}

// ASAPreview renders ops as the lines the cisco_asa driver sends (adds the firewall already
// holds and deletes of routes it does not hold are dropped when the batch is sent). Invalid
// ops, prefixes outside cfg.Managed and VRFs other than the default are refused.
func ASAPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := asaCheckOps(cfg, ops); err != nil {
		return nil, err
	}
	aops := make([]asaOp, len(ops))
	for i, op := range ops {
		aops[i] = asaOp{Index: i, Op: op}
	}
	return asaBatch(aops, cfg.ASA.Interface).Lines, nil
}

// parseASARoutes reads the static routes on interface nameif from "show running-config
// route" (lines "route IF A MASK NH [DISTANCE] [track N | tunneled]") and from the "ipv6
// route IF P NH [DISTANCE]" lines of "show running-config ipv6". Every other line, a route on
// another interface and a route whose fields do not parse are skipped. The nameif is
// matched exactly: asa.interface must be spelt as the configuration spells it.
func parseASARoutes(text, nameif string) []route.Route {
	var out []route.Route
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		v6 := len(f) > 0 && f[0] == "ipv6"
		if v6 {
			f = f[1:]
		}
		if len(f) < 4 || f[0] != "route" || f[1] != nameif {
			continue
		}
		var p netip.Prefix
		var err error
		var rest []string
		if v6 {
			p, err = netip.ParsePrefix(f[2])
			rest = f[3:]
			if err == nil && !p.Addr().Is6() {
				continue
			}
		} else {
			if len(f) < 5 {
				continue
			}
			p, err = fortiosClassnet(f[2], f[3])
			rest = f[4:]
		}
		if err != nil {
			continue
		}
		nh, err := netip.ParseAddr(rest[0])
		if err != nil || nh.Is6() != v6 || nh.Zone() != "" || !asaOptions(rest[1:], v6) {
			continue
		}
		r := route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh}
		if r.Validate() != nil {
			continue
		}
		out = append(out, r)
	}
	return out
}

// asaOptions reports whether the words after a route's next hop are what ASA prints there: a
// distance (1-255), then for IPv4 "track N" or "tunneled".
func asaOptions(f []string, v6 bool) bool {
	if len(f) == 0 {
		return true
	}
	if d, err := strconv.Atoi(f[0]); err != nil || d < 1 || d > 255 || strconv.Itoa(d) != f[0] {
		return false
	}
	switch f = f[1:]; {
	case len(f) == 0:
		return true
	case v6:
		return false
	case len(f) == 1:
		return f[0] == "tunneled"
	case len(f) == 2 && f[0] == "track":
		n, err := strconv.Atoi(f[1])
		return err == nil && n >= 1 && n <= 1000 && strconv.Itoa(n) == f[1]
	}
	return false
}

// ASA prompts: "ciscoasa> " (unprivileged), "ciscoasa# " (privileged), "ciscoasa(config)# "
// and its sub-modes; hostnames are at most 63 characters, and in multiple context mode the
// prompt is "hostname/context# ".
var (
	asaPromptLine = regexp.MustCompile(`^[\w.\-/]{1,127}(?:\(config[\w.\-]*\))?[#>] ?(.*)$`)
	asaPrompts    = cliPrompts{
		Line:  asaPromptLine,
		End:   regexp.MustCompile(`(?:^|\n)[\w.\-/]{1,127}(?:\(config[\w.\-]*\))?# ?$`),
		Exec:  regexp.MustCompile(`(?:^|\n)[\w.\-/]{1,127}# ?$`),
		Pager: []byte("<--- More --->"),
	}
)

// asaRefusal returns ASA's error text for one line's output, or "" when it was accepted: ASA
// starts every error with "ERROR:" (an invalid word is marked by a caret line before it:
// "ERROR: % Invalid input detected at '^' marker."). The text is every line from the caret
// line or the first "ERROR:" on. Warnings ("WARNING: ...") and informational lines are not
// refusals.
func asaRefusal(output []string) string {
	var lines []string
	failed := false
	for _, l := range output {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "ERROR:") || strings.HasPrefix(t, "% Invalid") || strings.HasPrefix(t, "% Incomplete") {
			failed = true
		}
		if t != "" && t != "^" {
			lines = append(lines, t)
		}
	}
	if !failed {
		return ""
	}
	return strings.Join(lines, "\n")
}

// asaVersion turns "show version" into one line: its "Cisco Adaptive Security Appliance
// Software Version ..." line, or its first line.
func asaVersion(out string) string {
	for line := range strings.Lines(out) {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "Cisco Adaptive Security Appliance Software Version") {
			return l
		}
	}
	return versionLine(out)
}
