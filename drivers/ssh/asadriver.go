package ssh

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"regexp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

//go:embed asa.yaml
var asaPlatformYAML []byte

// ASADriver is a session to a Cisco ASA's CLI over SSH, on returnpath's embedded cisco_asa
// platform definition (scrapligo has none). It implements drivers.Driver.
//
// ASA has no candidate configuration: each line typed in "configure terminal" is applied at
// once, and a refused line does not stop the lines after it. A batch is written at once; when
// ASA refuses a line, the driver sends the inverse of every line of the batch ASA applied
// ("no route ..." for an add, the route again for a delete), so that a batch lands whole or
// not at all unless the undo itself fails (then the error is indeterminate). ASA has nothing
// to mark a route with: every static route on the configured interface (asa.interface)
// inside the managed prefixes is returnpath's, and routes on other interfaces are ignored.
type ASADriver struct {
	cliSession
}

var (
	_ drivers.Driver    = (*ASADriver)(nil)
	_ drivers.Versioner = (*ASADriver)(nil)
)

var (
	asaPasswordPrompt = regexp.MustCompile(`(?i)password: ?$`)
	asaUserPrompt     = regexp.MustCompile(`(?:^|\n)[\w.\-/]{1,127}> ?$`)
)

// OpenASA connects to the ASA described by cfg (single context mode, or a login that lands in
// the context to manage), enters privileged mode and turns paging off for the session.
//
// Privileged mode: the driver sends "enable" and answers "Password:" with the login password;
// when ASA refuses it, with an empty one. The enable secret must therefore be the login
// password (as with "aaa authentication enable console LOCAL") or empty; a login that lands
// at "#" ("aaa authorization exec ... auto-enable") needs neither.
func OpenASA(ctx context.Context, cfg drivers.Config) (*ASADriver, error) {
	if err := ASACheck(cfg); err != nil {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "%w", err)
	}
	nd, err := openCLI(ctx, cfg, asaPlatformYAML, "cisco_asa", true, "CLI")
	if err != nil {
		return nil, err
	}
	d := &ASADriver{cliSession{cfg: cfg, nd: nd}}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout(cfg))
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enable(ctx); err != nil {
		d.drop()
		return nil, err
	}
	if _, err := d.show(ctx, "terminal pager 0", asaPrompts, asaRefusal); err != nil {
		d.drop()
		return nil, drivers.Errorf(drivers.KindUnreachable, cfg.Name, "connect", "turn paging off: %w", err)
	}
	return d, nil
}

// enable enters privileged mode: "enable", then the login password, then an empty one at
// each "Password:" ASA prints (it allows three attempts). d.mu must be held.
func (d *ASADriver) enable(ctx context.Context) error {
	secrets := []string{d.cfg.Password.Reveal(), ""}
	in := "enable\n"
	echoed := false
	for {
		out, err := d.exchange(ctx, in, nil, func(out []byte) bool {
			if !echoed {
				i := bytes.Index(out, []byte("enable"))
				if i < 0 {
					return false
				}
				out = out[i:]
			}
			t := tail(out)
			return asaPasswordPrompt.Match(t) || asaPrompts.Exec.Match(t) || asaUserPrompt.Match(t)
		})
		if err != nil {
			return drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "connect", "enable: %w", err)
		}
		echoed = true
		t := []byte(out[max(0, len(out)-120):])
		switch {
		case asaPrompts.Exec.Match(t):
			return nil
		case asaPasswordPrompt.Match(t) && len(secrets) > 0:
			in, secrets = secrets[0]+"\n", secrets[1:]
		default:
			// ASA printed "Access denied." or asks a third time: neither secret is the enable
			// secret. The output holds no secret: ASA does not echo passwords.
			return drivers.Errorf(drivers.KindAuth, d.cfg.Name, "connect",
				"enable refused both the login password and an empty secret: the enable secret must be one of them")
		}
	}
}

// read returns the routes returnpath owns, from "show running-config route" and "show
// running-config ipv6". d.mu must be held.
func (d *ASADriver) read(ctx context.Context) ([]route.Route, error) {
	var text string
	for _, cmd := range []string{"show running-config route", "show running-config ipv6"} {
		out, err := d.show(ctx, cmd, asaPrompts, asaRefusal)
		if err != nil {
			return nil, err
		}
		text += out + "\n"
	}
	return managedOnly(d.cfg, parseASARoutes(text, d.cfg.ASA.Interface)), nil
}

// Routes returns the static routes (IPv4 and IPv6) on the configured interface inside the
// managed prefixes, all in the default VRF.
func (d *ASADriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, done, err := d.begin(ctx, "read")
	if err != nil {
		return nil, err
	}
	defer done()
	return d.read(ctx)
}

// Version returns the "Cisco Adaptive Security Appliance Software Version ..." line of "show
// version".
func (d *ASADriver) Version(ctx context.Context) (string, error) {
	return d.version(ctx, "show version", func(ctx context.Context) (string, error) {
		return d.show(ctx, "show version", asaPrompts, asaRefusal)
	}, asaVersion)
}

// Apply pushes ops in one write inside "configure terminal" ... "end": an add is skipped when
// the firewall already holds the route on the interface, a delete when it does not. ASA
// answers line by line, in order, so a refusal is attributed to its op. On a refusal the
// driver undoes the lines ASA applied (see ASADriver) and the error lists every op: the first
// refused one with ASA's text, the others as not applied.
func (d *ASADriver) Apply(ctx context.Context, ops []route.RouteOp) error {
	if err := asaCheckOps(d.cfg, ops); err != nil {
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
	before, err := d.read(ctx)
	if err != nil {
		return err
	}
	have := make(map[route.Route]bool, len(before))
	for _, r := range before {
		have[r] = true
	}
	var send []asaOp
	for i, op := range ops {
		if (op.Action == route.ActionAdd) != have[op.Route] {
			send = append(send, asaOp{Index: i, Op: op})
		}
	}
	if len(send) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "apply", Err: err} // nothing sent yet
	}
	b := asaBatch(send, d.cfg.ASA.Interface)
	rs, atExec, err := d.push(ctx, b.Lines, asaPrompts)
	if err != nil {
		return lost(d.cfg, err)
	}
	line, text := b.firstRefusal(rs, asaRefusal)
	if line < 0 && atExec {
		return nil
	}
	if line < 0 {
		text = "the CLI was not back at its prompt after the batch"
	}
	if err := d.undo(ctx, send, b, rs, atExec); err != nil {
		return undoFailed(d.cfg, "Cisco ASA", text, err)
	}
	bad := -1
	if line >= 0 {
		bad = b.Op[line]
	}
	return undoneRejection(d.cfg, "Cisco ASA", ops, bad, text)
}

// undo sends, in reverse order, the inverse of every line of batch b that ASA applied (its
// answer rs holds no refusal). sent are the ops b was rendered from. d.mu must be held.
func (d *ASADriver) undo(ctx context.Context, sent []asaOp, b lineBatch, rs []cliResult, atExec bool) error {
	if !atExec {
		if err := d.leave(ctx, asaPrompts, "end", "end"); err != nil {
			return err
		}
	}
	byIndex := make(map[int]route.RouteOp, len(sent))
	for _, o := range sent {
		byIndex[o.Index] = o.Op
	}
	var inv []asaOp
	for i := len(b.Lines) - 1; i >= 0; i-- {
		if b.Op[i] >= 0 && asaRefusal(rs[i].Output) == "" {
			inv = append(inv, asaOp{Index: b.Op[i], Op: byIndex[b.Op[i]].Inverse()})
		}
	}
	if len(inv) == 0 {
		return nil
	}
	ub := asaBatch(inv, d.cfg.ASA.Interface)
	urs, back, err := d.push(ctx, ub.Lines, asaPrompts)
	if err != nil {
		return err
	}
	if line, text := ub.firstRefusal(urs, asaRefusal); line >= 0 {
		return fmt.Errorf("the ASA refused %q of the undo: %s", ub.Lines[line], text)
	}
	if !back {
		return fmt.Errorf("the CLI was not back at its prompt after the undo")
	}
	return nil
}
