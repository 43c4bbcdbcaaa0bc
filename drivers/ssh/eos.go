package ssh

import (
	"bufio"
	"net/netip"
	"regexp"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Arista EOS rendering and parsing. Everything here is pure: the driver in eosdriver.go feeds
// it the device's text.

// eosOwner is the name returnpath gives every static route it adds on EOS; read-back counts
// only routes carrying it.
const eosOwner = "returnpath"

// eosRouteLine renders one static route in EOS configuration syntax:
// "ip route vrf blue 10.210.10.0/24 10.10.10.101 name returnpath" ("ipv6 route" for IPv6, no
// vrf keyword in the default VRF). r must have passed Validate, which keeps every byte
// printable: the VRF name is [A-Za-z0-9_.-], the rest are netip values.
func eosRouteLine(r route.Route) string {
	var b strings.Builder
	if r.Prefix.Addr().Is4() {
		b.WriteString("ip route ")
	} else {
		b.WriteString("ipv6 route ")
	}
	if r.VRF != route.DefaultVRF {
		b.WriteString("vrf ")
		b.WriteString(r.VRF)
		b.WriteByte(' ')
	}
	b.WriteString(r.Prefix.String())
	b.WriteByte(' ')
	b.WriteString(r.NextHop.String())
	b.WriteString(" name ")
	b.WriteString(eosOwner)
	return b.String()
}

// eosOpLine renders one op: the route line for an add; for a delete, "no" and the route
// without its name (EOS identifies a static route by VRF, prefix and next hop).
func eosOpLine(op route.RouteOp) string {
	if op.Action == route.ActionDelete {
		line := eosRouteLine(op.Route)
		return "no " + strings.TrimSuffix(line, " name "+eosOwner)
	}
	return eosRouteLine(op.Route)
}

// eosSessionPrefix starts the name of every configuration session the driver opens.
const eosSessionPrefix = "rp-"

// eosBatch returns the lines of one batch in session name: "configure session", one line per
// op. "commit" is sent separately, only once every line was accepted.
func eosBatch(session string, ops []route.RouteOp) []string {
	cmds := make([]string, 0, len(ops)+1)
	cmds = append(cmds, "configure session "+session)
	for _, op := range ops {
		cmds = append(cmds, eosOpLine(op))
	}
	return cmds
}

// EOSPreview renders ops as the lines the arista_eos driver sends: the configuration session,
// one line per op, commit. "rp-<id>" stands for the session's name, chosen when the batch is
// sent. Deletes of routes the device does not hold under returnpath's name are dropped before
// sending; the preview cannot see the device and shows them all. Invalid ops and prefixes
// outside cfg.Managed are refused.
func EOSPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := checkOps(cfg, ops); err != nil {
		return nil, err
	}
	return append(eosBatch(eosSessionPrefix+"<id>", ops), "commit"), nil
}

// parseEOSRoutes reads the static routes returnpath owns from "show running-config section
// ip route" (or "... ipv6 route"): only lines of exactly the form returnpath renders, with the
// name returnpath, count. A route with another name, no name, a distance, a tag, an
// interface or an egress VRF is someone else's and is left out, so the driver never plans
// against (or deletes) it.
func parseEOSRoutes(text string) []route.Route {
	var routes []route.Route
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || (f[0] != "ip" && f[0] != "ipv6") || f[1] != "route" {
			continue
		}
		vrf := route.DefaultVRF
		rest := f[2:]
		if rest[0] == "vrf" {
			vrf, rest = rest[1], rest[2:]
		}
		if len(rest) != 4 || rest[2] != "name" || rest[3] != eosOwner {
			continue
		}
		p, err := netip.ParsePrefix(rest[0])
		if err != nil {
			continue
		}
		nh, err := netip.ParseAddr(rest[1])
		if err != nil {
			continue
		}
		r := route.Route{VRF: vrf, Prefix: p, NextHop: nh}
		if r.Validate() != nil || (f[0] == "ip") != p.Addr().Is4() {
			continue
		}
		routes = append(routes, r)
	}
	return routes
}

// eosPromptRE matches a line that begins with an EOS privileged or configuration-session
// prompt ("sw1#", "sw1(config-s-rp-1)#"), capturing what follows it: the echoed command.
var eosPromptRE = regexp.MustCompile(`^[\w.\-]{1,63}(?:\(config-s-[\w.\-<>]{1,63}\))?#\s?(.*)$`)

// eosPromptEnd matches an EOS privileged or configuration-session prompt at the very end of
// the output; eosExecPromptEnd only the privileged one.
var (
	eosPromptEnd     = regexp.MustCompile(`(?:^|\n)[\w.\-]{1,63}(?:\(config-s-[\w.\-]{1,63}\))?#\s?$`)
	eosExecPromptEnd = regexp.MustCompile(`(?:^|\n)[\w.\-]{1,63}#\s?$`)
)

// splitEOSTranscript splits EOS's answer to a batch into one result per line sent (see
// splitTranscript).
func splitEOSTranscript(transcript string) []cliResult {
	return splitTranscript(transcript, eosPromptRE)
}

// eosRefusal returns the error lines of a command's output, or "" when EOS accepted it.
// EOS starts every error with "% " ("% Invalid input", "% Incomplete command", "% Cannot
// commit ...").
func eosRefusal(output []string) string {
	var errs []string
	for _, l := range output {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "%") {
			errs = append(errs, t)
		}
	}
	return strings.Join(errs, "\n")
}
