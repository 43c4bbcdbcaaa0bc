package ssh

import (
	"context"
	"fmt"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// VyOSDriver is a session to a VyOS router's CLI over SSH, on scrapligo's embedded vyatta_vyos
// platform definition. It implements drivers.Driver.
//
// Each batch is one configuration session: "configure" (a working copy of the running
// configuration), the set and delete lines, "commit", "save" when vyos.save is set, "exit".
// Any refused line or a failed commit makes the driver leave with "exit discard", so the
// batch's lines never reach the running configuration. VyOS marks no ownership: every static
// route inside the pools counts as returnpath's.
type VyOSDriver struct {
	cliSession
}

var (
	_ drivers.Driver    = (*VyOSDriver)(nil)
	_ drivers.Versioner = (*VyOSDriver)(nil)
)

// OpenVyOS connects to the router described by cfg; scrapligo's vyatta_vyos definition sets
// the terminal width and turns paging off when it opens.
func OpenVyOS(ctx context.Context, cfg drivers.Config) (*VyOSDriver, error) {
	if err := VyOSCheck(cfg); err != nil {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "%w", err)
	}
	nd, err := openCLI(ctx, cfg, "vyatta_vyos", "vyatta_vyos", true, "CLI")
	if err != nil {
		return nil, err
	}
	return &VyOSDriver{cliSession{cfg: cfg, nd: nd}}, nil
}

// vyosRead lists the static routes of every VRF.
const vyosRead = "show configuration commands | match static"

// statics reads every static route of the running configuration. d.mu must be held.
func (d *VyOSDriver) statics(ctx context.Context) ([]setStatic, error) {
	out, err := d.setShow(ctx, vyosDialect, vyosRead)
	if err != nil {
		return nil, err
	}
	return parseVyOSStatics(out), nil
}

// Routes returns the static routes of the running configuration inside the managed prefixes,
// in every VRF.
func (d *VyOSDriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, done, err := d.begin(ctx, "read")
	if err != nil {
		return nil, err
	}
	defer done()
	sts, err := d.statics(ctx)
	if err != nil {
		return nil, err
	}
	return managedOnly(d.cfg, vyosRoutes(sts)), nil
}

// Version returns the VyOS version from "show version", e.g. "VyOS 1.4.0".
func (d *VyOSDriver) Version(ctx context.Context) (string, error) {
	return d.version(ctx, "show version", func(ctx context.Context) (string, error) {
		return d.setShow(ctx, vyosDialect, "show version")
	}, vyosVersion)
}

// Apply pushes ops as one configuration session and one commit. Deletes of routes the router
// does not hold are dropped first. Every line is written at once and VyOS answers line by line,
// so a refusal is attributed to its op; one refusal, or a failed commit, discards the session,
// and the error lists every op: the one at fault with VyOS's text, the others as not applied. A
// session lost once "commit" was sent is indeterminate.
func (d *VyOSDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
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
		sts, err := d.statics(ctx)
		if err != nil {
			return nil, err
		}
		var held map[route.Route]bool
		have, held = indexStatics(sts, vyosRoutes)
		return held, nil
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
func (d *VyOSDriver) push(ctx context.Context, ops, send []route.RouteOp, index []int, have map[route.RouteKey]setStatic) error {
	indeterminate := func(format string, args ...any) error {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply", Err: fmt.Errorf(format, args...)}
	}
	lines, line := vyosBatch(send, have)
	rs, err := d.setRun(ctx, vyosDialect, append([]string{"configure"}, lines...))
	if err != nil {
		return indeterminate("batch lines, before commit: %w", err)
	}
	if text := vyosRefusal(rs[0].Output); text != "" {
		return d.refuse(ctx, ops, -1, "configure: "+text)
	}
	for i := range lines {
		if text := vyosRefusal(rs[i+1].Output); text != "" {
			return d.refuse(ctx, ops, index[line[i]], lines[i]+": "+text)
		}
	}
	rs, err = d.setRun(ctx, vyosDialect, []string{"commit"})
	if err != nil {
		return indeterminate("session lost during commit; re-read the device: %w", err)
	}
	if text := vyosRefusal(body(rs)); text != "" {
		bad := vyosCulprit(text, send)
		if bad >= 0 {
			bad = index[bad]
		}
		return d.refuse(ctx, ops, bad, "commit: "+text)
	}
	if d.cfg.VyOS.Save {
		rs, err := d.setRun(ctx, vyosDialect, []string{"save"})
		if err != nil {
			return indeterminate("the batch was committed; session lost during save: %w", err)
		}
		if text := vyosRefusal(body(rs)); text != "" {
			return indeterminate("the batch was committed but save failed (it will not survive a reboot): %s", text)
		}
	}
	if _, err := d.setRun(ctx, vyosDialect, []string{"exit"}); err != nil {
		return indeterminate("leave configuration mode after the commit: %w", err)
	}
	return nil
}

// refuse discards the session's changes, leaves configuration mode and reports every op as
// rejected.
func (d *VyOSDriver) refuse(ctx context.Context, ops []route.RouteOp, bad int, text string) error {
	if _, err := d.setRun(ctx, vyosDialect, []string{"exit discard"}); err != nil {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply",
			Err: fmt.Errorf("the router refused the batch (%s) and the session could not be discarded: %w", text, err)}
	}
	return rejectAll(d.cfg, ops, bad, text, "the session was discarded")
}
