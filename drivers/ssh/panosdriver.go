package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// PANOSDriver is a session to a Palo Alto Networks firewall's CLI over SSH, on scrapligo's
// embedded paloalto_panos platform definition (prompts "admin@PA-VM>" and "admin@PA-VM#"; on
// open it sends "set cli scripting-mode on" and "set cli pager off"). It implements
// drivers.Driver.
//
// PAN-OS edits a candidate configuration and activates it with "commit", which takes seconds
// to minutes: each batch is "configure", its set and delete lines, and one "commit". A refused
// line or a failed commit makes the driver "revert config" (the candidate goes back to the
// running configuration), so a batch lands whole or not at all. Because "commit" and
// "revert config" act on the whole candidate, the driver sends nothing while the candidate
// holds changes it did not make ("check pending-changes" answers yes): it would commit or
// discard someone else's work. Ownership is the name: returnpath's routes are the entries
// whose name starts with "rp-".
type PANOSDriver struct {
	cliSession
}

var (
	_ drivers.Driver    = (*PANOSDriver)(nil)
	_ drivers.Versioner = (*PANOSDriver)(nil)
)

// OpenPANOS connects to the firewall described by cfg and sets the configuration output
// format to set commands, which reads parse.
func OpenPANOS(ctx context.Context, cfg drivers.Config) (*PANOSDriver, error) {
	if err := PANOSCheck(cfg); err != nil {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "%w", err)
	}
	nd, err := openCLI(ctx, cfg, "paloalto_panos", "paloalto_panos", true, "CLI")
	if err != nil {
		return nil, err
	}
	d := &PANOSDriver{cliSession{cfg: cfg, nd: nd}}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout(cfg))
	defer cancel()
	d.mu.Lock()
	_, err = d.op(ctx, "set cli config-output-format set")
	d.mu.Unlock()
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// panosPager is the marker PAN-OS prints when output fills the terminal with the pager on
// (netmiko's PaloAltoPanosBase: "Disable paging (the '--more--' prompts)").
var panosPager = []byte("--more--")

// exec runs one command in the mode whose prompt end is promptEnd and returns its output
// lines without echo, context lines and prompt. d.mu must be held.
func (d *PANOSDriver) exec(ctx context.Context, cmd string, promptEnd func([]byte) bool) ([]string, error) {
	out, err := d.exchange(ctx, cmd+"\n", panosPager, func(out []byte) bool {
		return promptEnd(out[max(0, len(out)-80):])
	})
	if err != nil {
		return nil, drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "%s: %w", cmd, err)
	}
	var body []string
	for _, r := range splitPANOSTranscript(stripPager(out, string(panosPager))) {
		body = append(body, r.Output...)
	}
	return body, nil
}

// op runs an operational-mode command. d.mu must be held.
func (d *PANOSDriver) op(ctx context.Context, cmd string) ([]string, error) {
	if err := d.nd.AcquirePriv("exec"); err != nil {
		return nil, drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "enter operational mode: %w", err)
	}
	body, err := d.exec(ctx, cmd, panosExecPromptEnd.Match)
	if err != nil {
		return nil, err
	}
	if text := panosCLIError(body); text != "" {
		return nil, drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "%s: %s", cmd, text)
	}
	return body, nil
}

// conf runs a configuration-mode command. d.mu must be held.
func (d *PANOSDriver) conf(ctx context.Context, cmd string) ([]string, error) {
	if err := d.nd.AcquirePriv("configuration"); err != nil {
		return nil, drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "enter configuration mode: %w", err)
	}
	return d.exec(ctx, cmd, panosConfigPromptEnd.Match)
}

// panosCLIError returns the lines of output that are PAN-OS's CLI errors (the markers of
// scrapligo's paloalto_panos definition: "Unknown command:", "Invalid Syntax.", "Validation
// Error:"), matched without regard to case.
func panosCLIError(body []string) string {
	var errs []string
	for _, l := range body {
		low := strings.ToLower(l)
		if strings.Contains(low, "unknown command") || strings.Contains(low, "invalid syntax") || strings.Contains(low, "validation error") {
			errs = append(errs, l)
		}
	}
	return strings.Join(errs, "\n")
}

// pending reports whether the candidate holds uncommitted changes. d.mu must be held.
func (d *PANOSDriver) pending(ctx context.Context) (bool, error) {
	body, err := d.conf(ctx, "check pending-changes")
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(strings.Join(body, "\n")) {
	case "no":
		return false, nil
	case "yes":
		return true, nil
	}
	return false, drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "check pending-changes answered %q", strings.Join(body, " "))
}

// errPending is why the driver neither reads nor writes while others' changes are pending.
var errPending = errors.New("the candidate configuration holds uncommitted changes: returnpath reads the candidate and commits or reverts it whole, so it waits until they are committed or reverted (nothing was sent)")

// config reads every virtual router of the candidate, which equals the running configuration
// once pending says no. d.mu must be held.
func (d *PANOSDriver) config(ctx context.Context) (panosConfig, error) {
	p, err := d.pending(ctx)
	if err != nil {
		return panosConfig{}, err
	}
	if p {
		return panosConfig{}, &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "read", Err: errPending}
	}
	body, err := d.conf(ctx, "show network virtual-router")
	if err != nil {
		return panosConfig{}, err
	}
	if text := panosCLIError(body); text != "" {
		return panosConfig{}, drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "show network virtual-router: %s", text)
	}
	return parsePANOSConfig(strings.Join(body, "\n")), nil
}

// Routes returns the static routes of the running configuration whose name starts with
// "rp-", inside the managed prefixes, in every virtual router (the configured one as the
// default VRF, the others under their own names).
func (d *PANOSDriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, done, err := d.begin(ctx, "read")
	if err != nil {
		return nil, err
	}
	defer done()
	c, err := d.config(ctx)
	if err != nil {
		return nil, err
	}
	var rs []route.Route
	for _, o := range c.owned(d.cfg) {
		rs = append(rs, o.Route)
	}
	return managedOnly(d.cfg, rs), nil
}

// Version returns the model and PAN-OS version from "show system info", e.g. "Palo Alto
// Networks PA-VM, PAN-OS 10.1.3".
func (d *PANOSDriver) Version(ctx context.Context) (string, error) {
	return d.version(ctx, "show system info", func(ctx context.Context) (string, error) {
		body, err := d.op(ctx, "show system info")
		return strings.Join(body, "\n"), err
	}, panosVersion)
}

// Apply pushes ops as one candidate change and one commit. It reads the virtual routers first:
// deletes are sent for the entries the routes were read back under, and only for routes
// returnpath owns; adds of routes already there are dropped. Every line is written at once;
// PAN-OS answers line by line, so a refusal is attributed to its op. One refusal, or a commit
// PAN-OS refuses, reverts the candidate, and the error lists every op, the refused one with
// the firewall's text and the others as not applied.
func (d *PANOSDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
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
	c, err := d.config(ctx)
	if err != nil {
		var de *drivers.Error
		if errors.As(err, &de) {
			de.Op = "apply"
		}
		return err
	}
	lines, index, bad, err := panosPlan(d.cfg, c, ops)
	if err != nil {
		de := &drivers.Error{Kind: drivers.KindRejected, Device: d.cfg.Name, Op: "apply"}
		for i, op := range ops {
			out := fmt.Sprintf("not applied: returnpath refused %s: %v", ops[bad], err)
			if i == bad {
				out = fmt.Sprintf("virtual router %s: %v", panosVR(d.cfg, op.Route.VRF), err)
			}
			de.Rejections = append(de.Rejections, drivers.Rejection{Index: i, Op: op, Output: out})
		}
		return de
	}
	if len(lines) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "apply", Err: err}
	}
	fail := func(err error) error {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply", Err: err}
	}
	var in strings.Builder
	for _, l := range lines {
		in.WriteString(l)
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
			if panosPromptRE.Match(bytes.TrimRight(out[scanned:scanned+nl], "\r")) {
				prompts++
			}
			scanned += nl + 1
		}
		return prompts+1 >= len(lines) && panosConfigPromptEnd.Match(out[max(0, len(out)-80):])
	})
	if err != nil {
		return fail(fmt.Errorf("session lost before commit; the candidate may hold part of the batch: %w", err))
	}
	results := splitPANOSTranscript(transcript)
	if len(results) != len(lines)+1 {
		return d.refused(ctx, ops, -1, fmt.Sprintf("PAN-OS answered %d lines for %d sent", len(results)-1, len(lines)), true)
	}
	for i := range lines {
		if text := panosRefusal(results[i].Output); text != "" {
			return d.refused(ctx, ops, index[i], text, false)
		}
	}
	body, err := d.exec(ctx, "commit", panosConfigPromptEnd.Match)
	if err != nil {
		return fail(fmt.Errorf("session lost during commit; re-read the firewall: %w", err))
	}
	out := strings.Join(body, "\n")
	switch {
	case strings.Contains(out, panosCommitOK):
		return nil
	case strings.Contains(out, panosCommitFailed):
		return d.refused(ctx, ops, -1, "commit: "+out, false)
	}
	return fail(fmt.Errorf("commit ended without %q or %q (%q); re-read the firewall", panosCommitOK, panosCommitFailed, out))
}

// refused reverts the candidate and reports every op as rejected: the op at bad (or, for -1,
// the batch as a whole) with PAN-OS's text, the others as not applied because of it. A batch
// whose answer could not be attributed (garbled) is reverted too, and reported indeterminate
// only if the revert fails.
func (d *PANOSDriver) refused(ctx context.Context, ops []route.RouteOp, bad int, text string, garbled bool) error {
	if err := d.revert(ctx); err != nil {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply",
			Err: fmt.Errorf("PAN-OS refused the batch (%s) and the candidate could not be reverted: %w", text, err)}
	}
	if garbled {
		return &drivers.Error{Kind: drivers.KindInternal, Device: d.cfg.Name, Op: "apply",
			Err: fmt.Errorf("%s; the candidate was reverted, nothing was committed", text)}
	}
	de := &drivers.Error{Kind: drivers.KindRejected, Device: d.cfg.Name, Op: "apply"}
	for i, op := range ops {
		out := text
		if bad >= 0 && i != bad {
			out = fmt.Sprintf("not applied: the candidate was reverted because PAN-OS refused %s: %s", ops[bad], text)
		} else if bad < 0 {
			out = "not applied: the candidate was reverted: " + text
		}
		de.Rejections = append(de.Rejections, drivers.Rejection{Index: i, Op: op, Output: out})
	}
	return de
}

// revert discards the candidate's changes ("revert config", PAN-OS 9.0 and later) and checks
// that nothing is pending afterwards.
func (d *PANOSDriver) revert(ctx context.Context) error {
	body, err := d.conf(ctx, "revert config")
	if err != nil {
		return err
	}
	if text := panosCLIError(body); text != "" {
		return errors.New("revert config: " + text)
	}
	p, err := d.pending(ctx)
	if err != nil {
		return err
	}
	if p {
		return errors.New("changes are still pending after revert config")
	}
	return nil
}
