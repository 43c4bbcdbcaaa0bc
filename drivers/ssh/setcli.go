package ssh

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// What the candidate/commit "set"-style CLIs (juniper_junos, vyos) share: a configuration mode
// whose prompt follows an "[edit]" banner line, lines that change only a candidate, a commit
// that applies it whole, and an operational mode for reads. A setDialect holds one vendor's
// text; the functions here drive a cliSession with it. Everything that parses is pure.

// setDialect is one vendor's CLI text.
type setDialect struct {
	// promptLine matches a whole line that starts with a prompt of either mode, capturing what
	// follows it: the echoed command.
	promptLine *regexp.Regexp
	// promptEnd matches a prompt of either mode at the very end of the output; execEnd only
	// the operational one.
	promptEnd, execEnd *regexp.Regexp
	// pager is the tail of the marker the CLI prints when output fills the terminal with paging
	// on; more matches the whole marker (and the spaces that erase it) to strip it.
	pager []byte
	more  *regexp.Regexp
	// refusal returns the device's text when a command's output says it refused the command,
	// or "".
	refusal func(output []string) string
}

// editBannerRE matches the banner line a configuration-mode prompt follows ("[edit]",
// "[edit routing-options]").
var editBannerRE = regexp.MustCompile(`^\[edit(?: [^\]]*)?\]$`)

// split splits the CLI's answer to lines written at once into one result per line (see
// splitTranscript), with the pager's markers stripped. The "[edit]" banner before a
// configuration-mode prompt is the mode's, not the command's, and is dropped.
func (dl setDialect) split(transcript string) []cliResult {
	text := strings.ReplaceAll(transcript, "\r", "")
	if dl.more != nil {
		text = dl.more.ReplaceAllString(text, "")
	}
	out := splitTranscript(text, dl.promptLine)
	for i := range out[:len(out)-1] {
		trimBanner(&out[i])
	}
	return out
}

func trimBanner(r *cliResult) {
	if n := len(r.Output); n > 0 && editBannerRE.MatchString(strings.TrimSpace(r.Output[n-1])) {
		r.Output = r.Output[:n-1]
	}
}

// body returns every output line of results, in order.
func body(results []cliResult) []string {
	var out []string
	for _, r := range results {
		out = append(out, r.Output...)
	}
	return out
}

// setRun writes cmds at once and reads until the CLI has answered every one of them (one
// prompt per line). It returns one result per command, then the final prompt's (empty) one.
// c.mu must be held.
func (c *cliSession) setRun(ctx context.Context, dl setDialect, cmds []string) ([]cliResult, error) {
	var in strings.Builder
	for _, cmd := range cmds {
		in.WriteString(cmd)
		in.WriteByte('\n')
	}
	prompts, scanned := 0, 0
	transcript, err := c.exchange(ctx, in.String(), dl.pager, func(out []byte) bool {
		for {
			nl := bytes.IndexByte(out[scanned:], '\n')
			if nl < 0 {
				break
			}
			if dl.promptLine.Match(bytes.TrimRight(out[scanned:scanned+nl], "\r")) {
				prompts++
			}
			scanned += nl + 1
		}
		return prompts+1 >= len(cmds) && dl.promptEnd.Match(out[max(0, len(out)-120):])
	})
	if err != nil {
		return nil, err
	}
	rs := dl.split(transcript)
	if len(rs) != len(cmds)+1 {
		return rs, fmt.Errorf("the CLI answered %d lines for %d sent", len(rs)-1, len(cmds))
	}
	return rs, nil
}

// setShow runs one read-only command and returns its output lines joined, without echo,
// banner and prompt; a refusal is an internal error (the driver sent a command the device
// does not know). c.mu must be held.
func (c *cliSession) setShow(ctx context.Context, dl setDialect, cmd string) (string, error) {
	rs, err := c.setRun(ctx, dl, []string{cmd})
	if err != nil {
		return "", drivers.Errorf(drivers.KindUnreachable, c.cfg.Name, "read", "%s: %w", cmd, err)
	}
	out := body(rs)
	if text := dl.refusal(out); text != "" {
		return "", drivers.Errorf(drivers.KindInternal, c.cfg.Name, "read", "%s: %s", cmd, text)
	}
	return strings.Join(out, "\n"), nil
}

// dropMissingDeletes returns the ops worth sending, each with its index in ops: the deletes of
// routes have does not hold are dropped (a foreign route is never deleted; a missing one is
// already gone). have is read only when ops hold a delete.
func dropMissingDeletes(ops []route.RouteOp, have func() (map[route.Route]bool, error)) ([]route.RouteOp, []int, error) {
	var held map[route.Route]bool
	send := make([]route.RouteOp, 0, len(ops))
	index := make([]int, 0, len(ops))
	for i, op := range ops {
		if op.Action == route.ActionDelete {
			if held == nil {
				h, err := have()
				if err != nil {
					return nil, nil, err
				}
				held = h
			}
			if !held[op.Route] {
				continue
			}
		}
		send = append(send, op)
		index = append(index, i)
	}
	return send, index, nil
}

// rejectAll reports every op of a batch the device did not apply: the op at bad (or, for -1,
// the batch as a whole) with the device's text, the others as not applied because of it.
func rejectAll(cfg drivers.Config, ops []route.RouteOp, bad int, text, undone string) error {
	de := &drivers.Error{Kind: drivers.KindRejected, Device: cfg.Name, Op: "apply"}
	for i, op := range ops {
		out := text
		switch {
		case bad < 0:
			out = "not applied: " + undone + ": " + text
		case i != bad:
			out = fmt.Sprintf("not applied: %s because the device refused %s: %s", undone, ops[bad], text)
		}
		de.Rejections = append(de.Rejections, drivers.Rejection{Index: i, Op: op, Output: out})
	}
	return de
}

// setStatic is one static route of a set-style configuration, in one VRF: its next hops that
// are addresses, how many forwarding actions it has besides them (an interface next hop, a
// blackhole, ...), and its ownership mark (Junos's tag; "" where the platform has none).
type setStatic struct {
	VRF      string
	Prefix   netip.Prefix
	NextHops []netip.Addr
	Other    int
	Tag      string
}

// setBatch renders ops as "set" and "delete" lines under path(vrf, prefix), the statement path
// of a route ("protocols static route P"). An add sets the next hop, and then mark when the
// platform marks ownership; a delete removes the next hop, or the whole route when the batch
// leaves it with no forwarding action at all (Junos does not commit a static route without
// one, and a route node emptied of next hops is not one returnpath should leave behind). have
// holds the routes the device has, by VRF and prefix; when it is nil (a preview, which cannot
// see the device), every deleted next hop is taken to be its route's only one. line[i] is the
// index in ops of the op line i comes from.
func setBatch(ops []route.RouteOp, have map[route.RouteKey]setStatic, path func(vrf string, p netip.Prefix) string, mark string) (lines []string, line []int) {
	left := map[route.RouteKey]map[netip.Addr]bool{}
	other := map[route.RouteKey]int{}
	for _, op := range ops {
		k := op.Route.Key()
		if left[k] != nil {
			continue
		}
		left[k] = map[netip.Addr]bool{}
		if st, ok := have[k]; ok {
			for _, nh := range st.NextHops {
				left[k][nh] = true
			}
			other[k] = st.Other
		}
	}
	for _, op := range ops {
		if op.Action == route.ActionDelete {
			delete(left[op.Route.Key()], op.Route.NextHop)
		} else {
			left[op.Route.Key()][op.Route.NextHop] = true
		}
	}
	for i, op := range ops {
		r := op.Route
		p := path(r.VRF, r.Prefix)
		switch {
		case op.Action == route.ActionAdd:
			lines = append(lines, "set "+p+" next-hop "+r.NextHop.String())
			line = append(line, i)
			if mark != "" {
				lines = append(lines, "set "+p+" "+mark)
				line = append(line, i)
			}
		case len(left[r.Key()]) == 0 && other[r.Key()] == 0:
			lines = append(lines, "delete "+p)
			line = append(line, i)
		default:
			lines = append(lines, "delete "+p+" next-hop "+r.NextHop.String())
			line = append(line, i)
		}
	}
	return lines, line
}

// indexStatics indexes the statics read from a set-style device by VRF and prefix (what a
// batch is rendered against) and returns the routes among them that own counts as
// returnpath's (what deletes may be sent for).
func indexStatics(sts []setStatic, own func([]setStatic) []route.Route) (map[route.RouteKey]setStatic, map[route.Route]bool) {
	have := make(map[route.RouteKey]setStatic, len(sts))
	for _, st := range sts {
		have[route.RouteKey{VRF: st.VRF, Prefix: st.Prefix}] = st
	}
	owned := map[route.Route]bool{}
	for _, r := range own(sts) {
		owned[r] = true
	}
	return have, owned
}
