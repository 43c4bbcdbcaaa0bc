package ssh

import (
	"context"
	_ "embed"
	"fmt"
	"slices"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

//go:embed fortios.yaml
var fortiosPlatformYAML []byte

// FortiOSDriver is a session to a FortiGate's CLI over SSH, on returnpath's embedded
// fortinet_fortios platform definition (scrapligo has none). It implements drivers.Driver.
//
// FortiOS has no candidate configuration: each entry of "config router static" is applied
// when "next" saves it, and each "delete N" at once. A batch is written at once; when
// FortiOS refuses a line, the driver reads the table again and undoes what the batch changed
// (deletes the entries it created, re-adds the routes it deleted), so that a batch lands
// whole or not at all unless the undo itself fails (then the error is indeterminate).
// Ownership is marked on the box: every entry the driver creates carries the comment
// "returnpath", reads list only such entries, and deletes remove only them, by the sequence
// number FortiOS assigned.
type FortiOSDriver struct {
	cliSession
}

var (
	_ drivers.Driver    = (*FortiOSDriver)(nil)
	_ drivers.Versioner = (*FortiOSDriver)(nil)
)

// OpenFortiOS connects to the FortiGate described by cfg. The login must be a read-write
// administrator of a FortiGate without VDOMs (or one whose administrator lands in the VDOM to
// manage). Paging is left as it is, and answered.
func OpenFortiOS(ctx context.Context, cfg drivers.Config) (*FortiOSDriver, error) {
	if err := FortiOSCheck(cfg); err != nil {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "%w", err)
	}
	nd, err := openCLIWith(ctx, cfg, fortiosPlatformYAML, "fortinet_fortios", true, "CLI", perLineReadDelay)
	if err != nil {
		return nil, err
	}
	return &FortiOSDriver{cliSession{cfg: cfg, nd: nd}}, nil
}

// fortiosTables is what one read of the firewall's static routes returns.
type fortiosTables struct {
	V4, V6 []fortiosEntry
}

// tables reads "show router static" and "show router static6". d.mu must be held.
func (d *FortiOSDriver) tables(ctx context.Context) (fortiosTables, error) {
	var t fortiosTables
	for _, v6 := range []bool{false, true} {
		cmd := "show router static"
		if v6 {
			cmd += "6"
		}
		out, err := d.show(ctx, cmd, fortiosPrompts, fortiosRefusal)
		if err != nil {
			return t, err
		}
		if v6 {
			t.V6 = parseFortiOSEntries(out)
		} else {
			t.V4 = parseFortiOSEntries(out)
		}
	}
	return t, nil
}

// owned returns the routes returnpath owns in t, inside the managed prefixes, with the
// sequence numbers of their entries (a route someone duplicated has several).
func (d *FortiOSDriver) owned(t fortiosTables) map[route.Route][]uint32 {
	out := map[route.Route][]uint32{}
	for _, v6 := range []bool{false, true} {
		es := t.V4
		if v6 {
			es = t.V6
		}
		for _, e := range es {
			if r, ok := e.route(v6); ok && route.Managed(r.Prefix, d.cfg.Managed) {
				out[r] = append(out[r], e.Seq)
			}
		}
	}
	return out
}

// Routes returns the static routes (IPv4 and IPv6) whose entries carry returnpath's comment,
// inside the managed prefixes, in every VRF.
func (d *FortiOSDriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, done, err := d.begin(ctx, "read")
	if err != nil {
		return nil, err
	}
	defer done()
	t, err := d.tables(ctx)
	if err != nil {
		return nil, err
	}
	var out []route.Route
	for r, seqs := range d.owned(t) {
		for range seqs {
			out = append(out, r)
		}
	}
	return out, nil
}

// Version returns the "Version:" line of "get system status", e.g.
// "FortiGate-VM64 v7.2.5,build1517,230606 (GA.F)".
func (d *FortiOSDriver) Version(ctx context.Context) (string, error) {
	return d.version(ctx, "get system status", func(ctx context.Context) (string, error) {
		return d.show(ctx, "get system status", fortiosPrompts, fortiosRefusal)
	}, fortiosVersion)
}

// Apply pushes ops in one write: an add is a new entry ("edit 0" ... "next"), skipped when
// the firewall already holds the route under returnpath's comment; a delete is "delete N"
// for every entry of the route carrying the comment, skipped when there is none (a foreign
// route is never deleted). FortiOS answers line by line, in order, so a refusal is
// attributed to its op. On a refusal the driver undoes the batch (see FortiOSDriver) and the
// error lists every op: the refused one with FortiOS's text, the others as not applied.
func (d *FortiOSDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
	if err := fortiosCheckOps(d.cfg, ops); err != nil {
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
	before, err := d.tables(ctx)
	if err != nil {
		return err
	}
	have := d.owned(before)
	var send []fortiosOp
	for i, op := range ops {
		seqs := have[op.Route]
		if (op.Action == route.ActionAdd) == (len(seqs) > 0) {
			continue // already there, or already gone
		}
		send = append(send, fortiosOp{Index: i, Op: op, Seqs: seqs})
	}
	if len(send) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "apply", Err: err} // nothing sent yet
	}
	b := fortiosBatch(send, d.cfg.FortiOS.Device, false)
	rs, atExec, err := d.push(ctx, b.Lines, fortiosPrompts)
	if err != nil {
		return lost(d.cfg, err)
	}
	line, text := b.firstRefusal(rs, fortiosRefusal)
	if line < 0 && atExec {
		return nil
	}
	if line < 0 {
		text = "the CLI was not back at its prompt after the batch"
	}
	if err := d.undo(ctx, before, atExec); err != nil {
		return undoFailed(d.cfg, "FortiOS", text, err)
	}
	bad := -1
	if line >= 0 {
		bad = b.Op[line]
	}
	return undoneRejection(d.cfg, "FortiOS", ops, bad, text)
}

// undo brings the firewall's returnpath entries back to before: it reads the tables again,
// deletes every entry with returnpath's comment that was not there before (including one
// FortiOS saved without the field it refused), and re-adds every route of returnpath whose
// entries the batch deleted. d.mu must be held.
func (d *FortiOSDriver) undo(ctx context.Context, before fortiosTables, atExec bool) error {
	if !atExec {
		if err := d.leave(ctx, fortiosPrompts, "abort", "end", "end"); err != nil {
			return err
		}
	}
	after, err := d.tables(ctx)
	if err != nil {
		return err
	}
	var b lineBatch
	for _, v6 := range []bool{false, true} {
		was, is := before.V4, after.V4
		table := "config router static"
		if v6 {
			was, is, table = before.V6, after.V6, table+"6"
		}
		var lines []string
		for _, e := range is {
			if e.fortiosOwned() && !slices.ContainsFunc(was, func(w fortiosEntry) bool { return w.Seq == e.Seq }) {
				lines = append(lines, fmt.Sprintf("delete %d", e.Seq))
			}
		}
		for _, e := range was {
			r, ok := e.route(v6)
			if ok && !slices.ContainsFunc(is, func(n fortiosEntry) bool { return n.Seq == e.Seq }) {
				lines = append(lines, fortiosAddLines(r, d.cfg.FortiOS.Device)...)
			}
		}
		if len(lines) > 0 {
			b.add(-1, table)
			b.add(-1, lines...)
			b.add(-1, "end")
		}
	}
	if len(b.Lines) == 0 {
		return nil
	}
	rs, atExec, err := d.push(ctx, b.Lines, fortiosPrompts)
	if err != nil {
		return err
	}
	if line, text := b.firstRefusal(rs, fortiosRefusal); line >= 0 {
		return fmt.Errorf("FortiOS refused %q of the undo: %s", b.Lines[line], text)
	}
	if !atExec {
		return fmt.Errorf("the CLI was not back at its prompt after the undo")
	}
	return nil
}
