package ssh

import (
	"context"
	"fmt"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// JunosDriver is a session to a Juniper Junos device's CLI (MX, EX, QFX, SRX) over SSH, on
// scrapligo's embedded juniper_junos platform definition. It implements drivers.Driver.
//
// Each batch is one candidate: "configure private" (a private copy of the committed
// configuration, whose commit carries only the batch's own changes), the set and delete
// lines, "commit check", "commit", "exit configuration-mode". Any refused line or a failed
// commit check makes the driver "rollback 0" and leave, so a batch lands whole or not at all.
// With junos.confirm the batch is committed with "commit confirmed N" under "configure
// exclusive" (Junos refuses commit confirmed in private mode), read back, and confirmed with
// "commit" only when the read-back shows it; otherwise the driver rolls it back at once.
// Ownership is marked on the box: every route the driver adds carries "tag 202", reads list
// only such routes, and deletes are sent only for routes read back with it.
type JunosDriver struct {
	cliSession
}

var (
	_ drivers.Driver    = (*JunosDriver)(nil)
	_ drivers.Versioner = (*JunosDriver)(nil)
)

// OpenJunos connects to the device described by cfg; scrapligo's juniper_junos definition
// sets the screen width, turns paging off and completion on space off when it opens.
func OpenJunos(ctx context.Context, cfg drivers.Config) (*JunosDriver, error) {
	if err := JunosCheck(cfg); err != nil {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "%w", err)
	}
	nd, err := openCLI(ctx, cfg, "juniper_junos", "juniper_junos", true, "CLI")
	if err != nil {
		return nil, err
	}
	return &JunosDriver{cliSession{cfg: cfg, nd: nd}}, nil
}

// junosReads are the operational commands that list the static routes: the master instance's
// (inet.0 and inet6.0) and every routing instance's.
var junosReads = []string{
	"show configuration routing-options | display set",
	"show configuration routing-instances | display set | match \" static route \"",
}

// statics reads every static route of the committed configuration; prefix is "" in
// operational mode and "run " in configuration mode. d.mu must be held.
func (d *JunosDriver) statics(ctx context.Context, prefix string) ([]setStatic, error) {
	var all []setStatic
	for _, cmd := range junosReads {
		out, err := d.setShow(ctx, junosDialect, prefix+cmd)
		if err != nil {
			return nil, err
		}
		all = append(all, parseJunosStatics(out)...)
	}
	return all, nil
}

// Routes returns the static routes of the committed configuration tagged 202, inside the
// managed prefixes, in every routing instance.
func (d *JunosDriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, done, err := d.begin(ctx, "read")
	if err != nil {
		return nil, err
	}
	defer done()
	sts, err := d.statics(ctx, "")
	if err != nil {
		return nil, err
	}
	return managedOnly(d.cfg, junosOwned(sts)), nil
}

// Version returns the device's model and Junos version from "show version", e.g. "Juniper
// mx240, Junos 21.4R3-S5.4".
func (d *JunosDriver) Version(ctx context.Context) (string, error) {
	return d.version(ctx, "show version", func(ctx context.Context) (string, error) {
		return d.setShow(ctx, junosDialect, "show version")
	}, junosVersion)
}

// Apply pushes ops as one candidate and one commit. Deletes of routes the device does not hold
// under tag 202 are dropped first. Every line is written at once and Junos answers line by
// line, so a refusal is attributed to its op; one refusal, or a commit check that fails, rolls
// the candidate back, and the error lists every op: the one at fault with Junos's text, the
// others as not applied. A session lost once "commit" was sent is indeterminate.
func (d *JunosDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
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
	var have map[route.RouteKey]setStatic
	send, index, err := dropMissingDeletes(ops, func() (map[route.Route]bool, error) {
		sts, err := d.statics(ctx, "")
		if err != nil {
			return nil, err
		}
		var owned map[route.Route]bool
		have, owned = indexStatics(sts, junosOwned)
		return owned, nil
	})
	if err != nil {
		return err
	}
	if len(send) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "apply", Err: err} // nothing sent yet
	}
	return d.push(ctx, ops, send, index, have)
}

// push runs one batch through configuration mode. d.mu must be held.
func (d *JunosDriver) push(ctx context.Context, ops, send []route.RouteOp, index []int, have map[route.RouteKey]setStatic) error {
	indeterminate := func(format string, args ...any) error {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply", Err: fmt.Errorf(format, args...)}
	}
	configure := junosConfigure(d.cfg)
	rs, err := d.setRun(ctx, junosDialect, []string{configure})
	if err != nil {
		return indeterminate("%s: %w", configure, err)
	}
	out := body(rs)
	if text := junosRefusal(out); text != "" {
		// Still in operational mode: nothing to roll back.
		return rejectAll(d.cfg, ops, -1, configure+": "+text, "the batch was not sent")
	}
	if configure == "configure exclusive" && strings.Contains(strings.Join(out, "\n"), "changed but not committed") {
		// Another user's uncommitted changes sit in the shared candidate: committing now
		// would commit them too.
		return d.refuse(ctx, ops, -1, "configure exclusive: the shared candidate holds another user's uncommitted changes; not committing them")
	}
	lines, line := junosBatch(send, have)
	rs, err = d.setRun(ctx, junosDialect, lines)
	if err != nil {
		return indeterminate("batch lines, before commit: %w", err)
	}
	for i := range lines {
		if text := junosRefusal(rs[i].Output); text != "" {
			return d.refuse(ctx, ops, index[line[i]], lines[i]+": "+text)
		}
	}
	culprit := func(text string) int {
		if bad := junosCulprit(text, send); bad >= 0 {
			return index[bad]
		}
		return -1
	}
	if text, err := d.configCmd(ctx, "commit check"); err != nil {
		return indeterminate("commit check: %w", err)
	} else if text != "" {
		return d.refuse(ctx, ops, culprit(text), "commit check: "+text)
	}
	commit := junosCommit(d.cfg)
	text, err := d.configCmd(ctx, commit)
	if err != nil {
		return indeterminate("session lost during %q; re-read the device: %w", commit, err)
	}
	if text != "" {
		return d.refuse(ctx, ops, culprit(text), commit+": "+text)
	}
	if d.cfg.Junos.Confirm > 0 {
		if err := d.confirm(ctx, ops, send); err != nil {
			return err
		}
	}
	if _, err := d.setRun(ctx, junosDialect, []string{"exit configuration-mode"}); err != nil {
		return indeterminate("leave configuration mode after the commit: %w", err)
	}
	return nil
}

// configCmd runs one configuration-mode command and returns Junos's refusal text, "" when it
// succeeded. d.mu must be held.
func (d *JunosDriver) configCmd(ctx context.Context, cmd string) (string, error) {
	rs, err := d.setRun(ctx, junosDialect, []string{cmd})
	if err != nil {
		return "", err
	}
	return junosRefusal(body(rs)), nil
}

// confirm reads the committed configuration back after "commit confirmed" and confirms the
// commit when it shows the batch; otherwise it rolls the commit back at once ("rollback 1",
// "commit") rather than leaving it to the timer. A session lost here leaves the timer to roll
// the batch back. d.mu must be held.
func (d *JunosDriver) confirm(ctx context.Context, ops, send []route.RouteOp) error {
	indeterminate := func(format string, args ...any) error {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply", Err: fmt.Errorf(format, args...)}
	}
	sts, err := d.statics(ctx, "run ")
	if err != nil {
		return indeterminate("read-back after commit confirmed (Junos rolls the batch back when its timer runs out; re-read the device): %w", err)
	}
	owned := map[route.Route]bool{}
	for _, r := range junosOwned(sts) {
		owned[r] = true
	}
	var missing []string
	for _, op := range send {
		if owned[op.Route] != (op.Action == route.ActionAdd) {
			missing = append(missing, op.String())
		}
	}
	if len(missing) == 0 {
		text, err := d.configCmd(ctx, "commit")
		if err != nil {
			return indeterminate("session lost while confirming the commit; re-read the device: %w", err)
		}
		if text != "" {
			return indeterminate("confirming the commit: %s; re-read the device", text)
		}
		return nil
	}
	text := "the read-back after commit confirmed does not show " + strings.Join(missing, ", ")
	for _, cmd := range []string{"rollback 1", "commit"} {
		if t, err := d.configCmd(ctx, cmd); err != nil || t != "" {
			return indeterminate("%s, and %s failed (%v %s): Junos rolls the batch back when its timer runs out", text, cmd, err, t)
		}
	}
	if _, err := d.setRun(ctx, junosDialect, []string{"exit configuration-mode"}); err != nil {
		return indeterminate("%s; rolled back, then lost the session: %w", text, err)
	}
	return rejectAll(d.cfg, ops, -1, text, "the commit was rolled back")
}

// refuse rolls the candidate back, leaves configuration mode and reports every op as rejected.
func (d *JunosDriver) refuse(ctx context.Context, ops []route.RouteOp, bad int, text string) error {
	if _, err := d.setRun(ctx, junosDialect, []string{"rollback 0", "exit configuration-mode"}); err != nil {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply",
			Err: fmt.Errorf("the device refused the batch (%s) and the candidate could not be rolled back: %w", text, err)}
	}
	return rejectAll(d.cfg, ops, bad, text, "the candidate was rolled back")
}
