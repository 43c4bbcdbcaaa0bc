package ssh

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// EOSDriver is a session to an Arista EOS switch's CLI over SSH, on scrapligo's embedded
// arista_eos platform definition. It implements drivers.Driver.
//
// Each batch is one configuration session ("configure session rp-<id>"): the lines change
// only the session's copy of running-config; "commit" applies the whole session at once, and
// any refused line makes the driver "abort" it, so a batch lands whole or not at all.
// Ownership is marked on the box: every route the driver adds carries "name returnpath",
// reads list only such routes, and deletes are sent only for routes read back with it.
type EOSDriver struct {
	cliSession
}

var (
	_ drivers.Driver    = (*EOSDriver)(nil)
	_ drivers.Versioner = (*EOSDriver)(nil)
)

// eosSessions numbers the configuration sessions this process opens.
var eosSessions atomic.Uint64

// OpenEOS connects to the switch described by cfg, enters privileged mode ("enable", with no
// enable password) and turns paging off.
func OpenEOS(ctx context.Context, cfg drivers.Config) (*EOSDriver, error) {
	nd, err := openCLI(ctx, cfg, "arista_eos", "arista_eos", true, "CLI")
	if err != nil {
		return nil, err
	}
	return &EOSDriver{cliSession{cfg: cfg, nd: nd}}, nil
}

// eosPager is the marker EOS prints when output fills the terminal with paging on.
var eosPager = []byte("--More--")

// show runs a show command in privileged mode and returns its output without echo and
// prompt. d.mu must be held.
func (d *EOSDriver) show(ctx context.Context, cmd string) (string, error) {
	if err := d.nd.AcquirePriv("privilege-exec"); err != nil {
		return "", drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "enter privileged mode: %w", err)
	}
	out, err := d.exchange(ctx, cmd+"\n", eosPager, func(out []byte) bool {
		return eosExecPromptEnd.Match(out[max(0, len(out)-80):])
	})
	if err != nil {
		return "", drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "%s: %w", cmd, err)
	}
	rs := splitEOSTranscript(stripPager(out, string(eosPager)))
	var body []string
	for _, r := range rs {
		body = append(body, r.Output...)
	}
	if text := eosRefusal(body); text != "" {
		return "", drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "%s: %s", cmd, text)
	}
	return strings.Join(body, "\n"), nil
}

// owned reads the routes returnpath owns, inside the managed prefixes. d.mu must be held.
func (d *EOSDriver) owned(ctx context.Context) ([]route.Route, error) {
	var all []route.Route
	for _, cmd := range []string{"show running-config section ip route", "show running-config section ipv6 route"} {
		out, err := d.show(ctx, cmd)
		if err != nil {
			return nil, err
		}
		all = append(all, parseEOSRoutes(out)...)
	}
	return managedOnly(d.cfg, all), nil
}

// Routes returns the static routes of running-config that carry returnpath's name, inside
// the managed prefixes, in every VRF.
func (d *EOSDriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, done, err := d.begin(ctx, "read")
	if err != nil {
		return nil, err
	}
	defer done()
	return d.owned(ctx)
}

// Version returns the switch's model and software image version from "show version", e.g.
// "Arista DCS-7050SX-64, software image version 4.28.3M".
func (d *EOSDriver) Version(ctx context.Context) (string, error) {
	return d.version(ctx, "show version", func(ctx context.Context) (string, error) {
		return d.show(ctx, "show version")
	}, eosVersion)
}

// Apply pushes ops as one configuration session. Deletes of routes the switch does not hold
// under returnpath's name are dropped first (a foreign route is never deleted; a missing
// one is already gone). Every line is written at once; EOS answers line by line, in order,
// so a refusal is attributed to its op. One refusal aborts the session, and the error lists
// every op, the refused one with EOS's text and the others as not applied. Otherwise the
// session is committed; a commit EOS refuses is aborted too and reported the same way.
func (d *EOSDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
	if err := checkOps(d.cfg, ops); err != nil {
		return err
	}
	if len(ops) == 0 {
		return nil
	}
	ctx, done, err := d.beginApply(ctx, len(ops))
	if err != nil {
		return err
	}
	defer done()
	send, index, err := d.sendable(ctx, ops)
	if err != nil {
		return err
	}
	if len(send) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "apply", Err: err} // nothing sent yet
	}
	session := eosSessionPrefix + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(eosSessions.Add(1), 10)
	cmds := eosBatch(session, send)
	fail := func(err error) error {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply", Err: err}
	}
	var in strings.Builder
	for _, c := range cmds {
		in.WriteString(c)
		in.WriteByte('\n')
	}
	// One prompt after each line sent; count them as complete lines arrive.
	prompts, scanned := 0, 0
	transcript, err := d.exchange(ctx, in.String(), nil, func(out []byte) bool {
		for {
			nl := bytes.IndexByte(out[scanned:], '\n')
			if nl < 0 {
				break
			}
			if eosPromptRE.Match(bytes.TrimRight(out[scanned:scanned+nl], "\r")) {
				prompts++
			}
			scanned += nl + 1
		}
		return prompts+1 >= len(cmds) && eosPromptEnd.Match(out[max(0, len(out)-80):])
	})
	if err != nil {
		return fail(fmt.Errorf("session %s, before commit: %w", session, err))
	}
	results := splitEOSTranscript(transcript)
	if len(results) != len(cmds)+1 {
		d.abortSession(ctx)
		return fail(fmt.Errorf("EOS answered %d lines for %d sent; session aborted", len(results)-1, len(cmds)))
	}
	if text := eosRefusal(results[0].Output); text != "" {
		return d.refused(ctx, ops, -1, "configure session "+session+": "+text)
	}
	for i := range send {
		if text := eosRefusal(results[i+1].Output); text != "" {
			return d.refused(ctx, ops, index[i], text)
		}
	}
	out, err := d.exchange(ctx, "commit\n", nil, func(out []byte) bool {
		return eosPromptEnd.Match(out[max(0, len(out)-80):])
	})
	if err != nil {
		return fail(fmt.Errorf("session %s lost during commit; re-read the device: %w", session, err))
	}
	rs := splitEOSTranscript(out)
	var body []string
	for _, r := range rs {
		body = append(body, r.Output...)
	}
	if text := eosRefusal(body); text != "" {
		return d.refused(ctx, ops, -1, "commit: "+text)
	}
	if !eosExecPromptEnd.MatchString(out[max(0, len(out)-80):]) {
		return fail(fmt.Errorf("commit of session %s left the CLI at %q; re-read the device", session, out[max(0, len(out)-80):]))
	}
	return nil
}

// sendable drops the deletes of routes the switch does not hold under returnpath's name and
// returns the ops to send with each one's index in ops.
func (d *EOSDriver) sendable(ctx context.Context, ops []route.RouteOp) ([]route.RouteOp, []int, error) {
	var have map[route.Route]bool
	send := make([]route.RouteOp, 0, len(ops))
	index := make([]int, 0, len(ops))
	for i, op := range ops {
		if op.Action == route.ActionDelete {
			if have == nil {
				rs, err := d.owned(ctx)
				if err != nil {
					return nil, nil, err
				}
				have = make(map[route.Route]bool, len(rs))
				for _, r := range rs {
					have[r] = true
				}
			}
			if !have[op.Route] {
				continue
			}
		}
		send = append(send, op)
		index = append(index, i)
	}
	return send, index, nil
}

// refused aborts the open session and reports every op as rejected: the op at bad (or, for
// -1, the session as a whole) with EOS's text, the others as not applied because of it.
func (d *EOSDriver) refused(ctx context.Context, ops []route.RouteOp, bad int, text string) error {
	if err := d.abortSession(ctx); err != nil {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply",
			Err: fmt.Errorf("EOS refused the batch (%s) and the session could not be aborted: %w", text, err)}
	}
	de := &drivers.Error{Kind: drivers.KindRejected, Device: d.cfg.Name, Op: "apply"}
	for i, op := range ops {
		out := text
		if bad >= 0 && i != bad {
			out = fmt.Sprintf("not applied: the session was aborted because EOS refused %s: %s", ops[bad], text)
		} else if bad < 0 {
			out = "not applied: the session was aborted: " + text
		}
		de.Rejections = append(de.Rejections, drivers.Rejection{Index: i, Op: op, Output: out})
	}
	return de
}

// abortSession discards the open configuration session and returns to privileged mode.
func (d *EOSDriver) abortSession(ctx context.Context) error {
	_, err := d.exchange(ctx, "abort\n", nil, func(out []byte) bool {
		return eosExecPromptEnd.Match(out[max(0, len(out)-80):])
	})
	return err
}
