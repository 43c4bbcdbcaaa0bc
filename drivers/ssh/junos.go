package ssh

import (
	"bufio"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Juniper Junos rendering and parsing. Everything here is pure: the driver in junosdriver.go
// feeds it the device's text.
//
// Statement syntax: Juniper's "static (Routing Options)" and "tag (Routing Options)" reference
// pages: "route prefix next-hop address" and "tag" under [edit routing-options static], [edit
// routing-options rib inet6.0 static] for IPv6, and the same under [edit routing-instances
// name routing-options ...] with the instance's own table names (name.inet6.0).

// junosTag is the tag returnpath gives every static route it adds on Junos; read-back counts
// only routes carrying it.
const junosTag = "202"

// Bounds of junos.confirm: Junos counts the rollback delay of "commit confirmed" in whole
// minutes (1 to 65,535); an hour is the most a batch should leave a device waiting for its
// confirmation.
const (
	JunosConfirmMin = time.Minute
	JunosConfirmMax = time.Hour
)

// JunosCheck validates the juniper_junos keys of cfg: junos.confirm is 0 (off) or a whole
// number of minutes from 1 to 60.
func JunosCheck(cfg drivers.Config) error {
	c := cfg.Junos.Confirm
	if c != 0 && (c < JunosConfirmMin || c > JunosConfirmMax || c%time.Minute != 0) {
		return &route.FieldError{Field: "junos.confirm", Message: fmt.Sprintf("want a whole number of minutes from 1m to 60m (or unset), got %s", c)}
	}
	return nil
}

// junosRoutePath renders the statement path of r's static route, e.g. "routing-options static
// route 10.210.10.0/24" or "routing-instances blue routing-options rib blue.inet6.0 static
// route 2001:db8::/64". r must have passed Validate, which keeps every byte printable: the VRF
// name is [A-Za-z0-9_.-], the rest are netip values.
func junosRoutePath(vrf string, p netip.Prefix) string {
	var b strings.Builder
	if vrf != route.DefaultVRF {
		b.WriteString("routing-instances ")
		b.WriteString(vrf)
		b.WriteByte(' ')
	}
	b.WriteString("routing-options ")
	if p.Addr().Is6() {
		b.WriteString("rib ")
		if vrf != route.DefaultVRF {
			b.WriteString(vrf)
			b.WriteByte('.')
		}
		b.WriteString("inet6.0 ")
	}
	b.WriteString("static route ")
	b.WriteString(p.String())
	return b.String()
}

// junosBatch renders ops as configuration-mode lines: an add is the next hop and the tag; a
// delete is setBatch's.
func junosBatch(ops []route.RouteOp, have map[route.RouteKey]setStatic) (lines []string, line []int) {
	return setBatch(ops, have, junosRoutePath, "tag "+junosTag)
}

// junosConfigure returns the command that opens the batch's candidate: a private copy, which
// commits only the batch's own changes; or, with confirm, an exclusive lock on the shared
// candidate, because Junos refuses "commit confirmed" in private mode.
func junosConfigure(cfg drivers.Config) string {
	if cfg.Junos.Confirm > 0 {
		return "configure exclusive"
	}
	return "configure private"
}

// junosCommit returns the commit command of a batch: "commit", or "commit confirmed N".
func junosCommit(cfg drivers.Config) string {
	if m := int(cfg.Junos.Confirm / time.Minute); m > 0 {
		return "commit confirmed " + strconv.Itoa(m)
	}
	return "commit"
}

// JunosPreview renders ops as the lines the juniper_junos driver sends: the configuration
// mode, the set and delete lines, commit check, the commit (with junos.confirm: commit
// confirmed, then, once the read-back shows the batch, commit to confirm), and leaving
// configuration mode. The preview cannot see the device: deletes of routes it does not hold
// under tag 202 are dropped at send time, and a delete removes the whole route only when the
// route is left with no next hop. Invalid ops and prefixes outside cfg.Managed are refused.
func JunosPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := checkOps(cfg, ops); err != nil {
		return nil, err
	}
	if err := JunosCheck(cfg); err != nil {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "preview", "%w", err)
	}
	lines, _ := junosBatch(ops, nil)
	out := append([]string{junosConfigure(cfg)}, lines...)
	out = append(out, "commit check", junosCommit(cfg))
	if cfg.Junos.Confirm > 0 {
		out = append(out, "commit")
	}
	return append(out, "exit configuration-mode"), nil
}

// parseJunosStatics reads the static routes of "show configuration ... | display set" output,
// for the master instance and every routing instance: lines of the form "set
// [routing-instances V] routing-options [rib T] static route P LEAF...". IPv4 routes count only
// in inet.0, IPv6 routes only in inet6.0 (V.inet6.0 in an instance); routes of other tables, of
// an instance named "default", and lines of any other form are left out.
func parseJunosStatics(text string) []setStatic {
	var order []route.RouteKey
	byKey := map[route.RouteKey]*setStatic{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[0] != "set" {
			continue
		}
		f = f[1:]
		vrf := route.DefaultVRF
		if f[0] == "routing-instances" {
			if len(f) < 2 || f[1] == route.DefaultVRF || route.ValidateVRF(f[1]) != nil {
				continue
			}
			vrf, f = f[1], f[2:]
		}
		if len(f) < 4 || f[0] != "routing-options" {
			continue
		}
		f = f[1:]
		rib := ""
		if f[0] == "rib" {
			if len(f) < 2 {
				continue
			}
			rib, f = f[1], f[2:]
		}
		if len(f) < 4 || f[0] != "static" || f[1] != "route" {
			continue
		}
		p, err := netip.ParsePrefix(f[2])
		if err != nil || p != p.Masked() {
			continue
		}
		want := ""
		if p.Addr().Is6() {
			want = "inet6.0"
			if vrf != route.DefaultVRF {
				want = vrf + ".inet6.0"
			}
		}
		if rib != want {
			continue
		}
		k := route.RouteKey{VRF: vrf, Prefix: p}
		st := byKey[k]
		if st == nil {
			st = &setStatic{VRF: vrf, Prefix: p}
			byKey[k] = st
			order = append(order, k)
		}
		leaf := f[3:]
		switch leaf[0] {
		case "next-hop":
			if len(leaf) != 2 {
				continue
			}
			if a, err := netip.ParseAddr(leaf[1]); err == nil && a.Zone() == "" {
				st.NextHops = append(st.NextHops, a)
			} else {
				st.Other++ // an interface next hop
			}
		case "qualified-next-hop", "discard", "reject", "receive", "next-table":
			st.Other++
		case "tag":
			if len(leaf) == 2 {
				st.Tag = leaf[1]
			}
		}
	}
	out := make([]setStatic, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

// junosOwned returns the routes returnpath owns among statics: one per address next hop of
// every route tagged 202, of the route's own address family.
func junosOwned(statics []setStatic) []route.Route {
	var out []route.Route
	for _, st := range statics {
		if st.Tag != junosTag {
			continue
		}
		for _, nh := range st.NextHops {
			r := route.Route{VRF: st.VRF, Prefix: st.Prefix, NextHop: nh}
			if r.Validate() == nil {
				out = append(out, r)
			}
		}
	}
	return out
}

// The Junos CLI's prompts: "user@host>" in operational mode, "user@host#" in configuration
// mode (scrapligo's juniper_junos definition allows the same characters).
var (
	junosPromptRE  = regexp.MustCompile(`^[\w\-@()/:.]{1,63}[>#] ?(.*)$`)
	junosPromptEnd = regexp.MustCompile(`(?:^|\n)[\w\-@()/:.]{1,63}[>#] ?$`)
	junosExecEnd   = regexp.MustCompile(`(?:^|\n)[\w\-@()/:.]{1,63}> ?$`)
	junosMoreRE    = regexp.MustCompile(` *---\(more(?: \d{1,3}%)?\)--- *`)
)

// junosDialect is the Junos CLI's text. Its pager prints "---(more)---" or "---(more 45%)---".
var junosDialect = setDialect{
	promptLine: junosPromptRE,
	promptEnd:  junosPromptEnd,
	execEnd:    junosExecEnd,
	pager:      []byte(")---"),
	more:       junosMoreRE,
	refusal:    junosRefusal,
}

// junosRefusal returns a command's whole output when it holds an error, or "". Junos starts
// errors with "error:" (a failed commit ends with "error: configuration check-out failed",
// after "[edit ...]" context lines naming the statement) and answers input its parser refuses
// with a caret line and "syntax error."; scrapligo's juniper_junos definition also fails on
// "unknown command", "is ambiguous" and "No valid completions". Warnings ("warning: statement
// not found") are not refusals.
func junosRefusal(output []string) string {
	for _, l := range output {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "error:") || strings.Contains(t, "syntax error") || strings.Contains(t, "unknown command") ||
			strings.Contains(t, "is ambiguous") || strings.Contains(t, "No valid completions") {
			return strings.Join(trimLines(output), "\n")
		}
	}
	return ""
}

func trimLines(ls []string) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		if t := strings.TrimSpace(l); t != "" && strings.Trim(t, "^ ") != "" {
			out = append(out, t)
		}
	}
	return out
}

// junosCulprit returns the index in ops of the op a commit error names: Junos prefixes each
// error with the "[edit ...]" path of the statement at fault and quotes the statement, e.g.
// "[edit routing-options static route 10.210.1.0/24]" then "'next-hop 239.1.1.1'". It returns
// -1 when no op matches.
func junosCulprit(text string, ops []route.RouteOp) int {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		path, ok := strings.CutPrefix(strings.TrimSpace(l), "[edit ")
		if !ok {
			continue
		}
		path = strings.TrimSuffix(path, "]")
		stmt := ""
		if i+1 < len(lines) {
			stmt = strings.Trim(strings.TrimSpace(lines[i+1]), "'")
		}
		for j, op := range ops {
			rp := junosRoutePath(op.Route.VRF, op.Route.Prefix)
			if path == rp && stmt == "next-hop "+op.Route.NextHop.String() {
				return j
			}
		}
		for j, op := range ops {
			if path == junosRoutePath(op.Route.VRF, op.Route.Prefix) {
				return j
			}
		}
	}
	return -1
}

// junosVersion turns "show version" into one line: "Juniper MODEL, Junos VERSION" from its
// "Model:" and "Junos:" lines (older releases print the version as "JUNOS Base OS boot
// [12.3R6.6]"), or its first line.
func junosVersion(out string) string {
	var model, version string
	for line := range strings.Lines(out) {
		t := strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(t, "Model:"); ok {
			model = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(t, "Junos:"); ok && version == "" {
			version = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(t, "JUNOS Base OS boot ["); ok && version == "" {
			version = strings.TrimSuffix(v, "]")
		}
	}
	switch {
	case model != "" && version != "":
		return "Juniper " + model + ", Junos " + version
	case model != "":
		return "Juniper " + model
	case version != "":
		return "Junos " + version
	}
	return versionLine(out)
}
