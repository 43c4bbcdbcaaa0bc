package ssh

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// The line-by-line commit model shared by Cisco's NX-OS and IOS XE CLIs. Neither has a
// candidate configuration: every configuration line takes effect in running-config as soon as
// the CLI accepts it. A batch is made to land whole or not at all by hand: the driver sends
// one line at a time and waits for its answer; at the first refused line it sends nothing
// more of the batch and undoes, newest first, the ops already applied. A dialect
// (ciscoDialect) says how one platform renders ops and reads routes back.

// ciscoLine is one configuration line of a rendered batch: a route line for ops[Op], or, with
// Mode set, a line that moves between configuration modes on the way to ops[Op] (NX-OS's
// "vrf context V" and "exit").
type ciscoLine struct {
	Op   int
	Text string
	Mode bool
}

// ciscoDialect is what one Cisco platform does differently.
type ciscoDialect struct {
	platform string // scrapligo's embedded platform definition, e.g. "cisco_nxos"
	label    string // the CLI's name in errors: "NX-OS"
	// render turns ops into configuration lines that start and end in global configuration
	// mode. It must be pure and render only typed values.
	render func(ops []route.RouteOp) []ciscoLine
	// reads are the show commands whose output, concatenated in order, parse reads.
	reads []string
	// parse returns the routes returnpath owns in the reads' output.
	parse func(text string) []route.Route
	// versionCmd's output is turned into device check's version line by version.
	versionCmd string
	version    func(out string) string
}

// ciscoPreview renders ops as a dialect's driver sends them: configuration mode, the lines,
// back to the privileged prompt. Invalid ops and prefixes outside cfg.Managed are refused.
func ciscoPreview(dl *ciscoDialect, cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := checkOps(cfg, ops); err != nil {
		return nil, err
	}
	lines := dl.render(ops)
	out := make([]string, 0, len(lines)+2)
	out = append(out, "configure terminal")
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return append(out, "end"), nil
}

// Cisco prompts: the privileged prompt "host#", configuration modes "host(config)#",
// "host(config-vrf)#". NX-OS prints a space after "#", IOS XE does not.
var (
	ciscoPromptLine = regexp.MustCompile(`^[\w.\-@/:]{1,63}(?:\([\w.\-@/:+]{1,32}\))?#\s?$`)
	ciscoExecPrompt = regexp.MustCompile(`^[\w.\-@/:]{1,63}#\s?$`)
	ciscoConfPrompt = regexp.MustCompile(`^[\w.\-@/:]{1,63}\(config\)#\s?$`)
)

// lastLine returns what follows the last newline of b: where a prompt appears.
func lastLine(b []byte) []byte {
	return b[bytes.LastIndexByte(b, '\n')+1:]
}

// ciscoRefusal returns the error lines of a command's output, or "" when the CLI accepted it.
// Both CLIs start an error with "%" ("% Invalid command at '^' marker.", "%Inconsistent
// address and mask"); NX-OS also prints "ERROR: ..." for some refusals. The caret line above
// a parser error is left out.
func ciscoRefusal(output []string) string {
	var errs []string
	for _, l := range output {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "%") || strings.HasPrefix(t, "ERROR:") {
			errs = append(errs, t)
		}
	}
	return strings.Join(errs, "\n")
}

// ciscoDriver is the session and the commit model both Cisco drivers share.
type ciscoDriver struct {
	cliSession
	dl *ciscoDialect
}

// line sends one line and reads the CLI's answer up to the next prompt. It returns the
// output lines between the echo and the prompt, and the prompt. d.mu must be held.
func (d *ciscoDriver) line(ctx context.Context, text string, pager []byte) ([]string, string, error) {
	out, err := d.exchange(ctx, text+"\n", pager, func(b []byte) bool {
		return bytes.IndexByte(b, '\n') >= 0 && ciscoPromptLine.Match(lastLine(b))
	})
	if err != nil {
		return nil, "", err
	}
	lines := strings.Split(strings.ReplaceAll(stripPager(out, "--More--"), "\r", ""), "\n")
	return lines[1 : len(lines)-1], lines[len(lines)-1], nil
}

// show runs a show command at the privileged prompt and returns its output. d.mu must be
// held.
func (d *ciscoDriver) show(ctx context.Context, cmd string) (string, error) {
	if err := d.nd.AcquirePriv("privilege-exec"); err != nil {
		return "", drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "enter privileged mode: %w", err)
	}
	out, prompt, err := d.line(ctx, cmd, eosPager)
	if err != nil {
		return "", drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "%s: %w", cmd, err)
	}
	if text := ciscoRefusal(out); text != "" {
		return "", drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "%s: %s", cmd, text)
	}
	if !ciscoExecPrompt.MatchString(prompt) {
		return "", drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "%s left the CLI at %q", cmd, prompt)
	}
	return strings.Join(out, "\n"), nil
}

// owned reads the routes returnpath owns, inside the managed prefixes. d.mu must be held.
func (d *ciscoDriver) owned(ctx context.Context) ([]route.Route, error) {
	var text strings.Builder
	for _, cmd := range d.dl.reads {
		out, err := d.show(ctx, cmd)
		if err != nil {
			return nil, err
		}
		text.WriteString(out)
		text.WriteByte('\n')
	}
	return managedOnly(d.cfg, d.dl.parse(text.String())), nil
}

// Routes returns the static routes of running-config that carry returnpath's mark, inside
// the managed prefixes, in every VRF.
func (d *ciscoDriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, done, err := d.begin(ctx, "read")
	if err != nil {
		return nil, err
	}
	defer done()
	return d.owned(ctx)
}

// Version returns device check's version line, read from the platform's show version.
func (d *ciscoDriver) Version(ctx context.Context) (string, error) {
	return d.version(ctx, d.dl.versionCmd, func(ctx context.Context) (string, error) {
		return d.show(ctx, d.dl.versionCmd)
	}, d.dl.version)
}

// Apply pushes ops line by line in configuration mode. Adds of routes the device already
// holds under returnpath's mark and deletes of routes it does not are dropped first: sending
// them would change nothing, and undoing them would (an undone add of a route that was there
// before would delete it). At the first refused line nothing more is sent, the ops already
// applied are undone newest first, and the error lists every op: the refused one with the
// device's text, the others as undone or not applied because of it. A session lost while
// lines were being applied or undone is indeterminate: re-read the device.
func (d *ciscoDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
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
	lost := func(format string, args ...any) error {
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply", Err: fmt.Errorf(format, args...)}
	}
	out, _, err := d.line(ctx, "configure terminal", nil)
	if err != nil {
		return lost("configure terminal: %w; no route line was sent, re-read the device", err)
	}
	if text := ciscoRefusal(out); text != "" {
		return d.rejected(ops, -1, nil, "configure terminal: "+text)
	}
	var applied []int // indexes into send, in the order applied
	for _, l := range d.dl.render(send) {
		out, prompt, err := d.line(ctx, l.Text, nil)
		if err != nil {
			return lost("session lost after %d of %d ops were applied, at %q; re-read the device: %w", len(applied), len(send), l.Text, err)
		}
		if text := ciscoRefusal(out); text != "" {
			if err := d.undo(ctx, prompt, send, applied); err != nil {
				return lost("%s refused %s (%s); undoing the %d ops applied before it failed: %w", d.dl.label, send[l.Op], text, len(applied), err)
			}
			done := make([]int, len(applied))
			for i, a := range applied {
				done[i] = index[a]
			}
			return d.rejected(ops, index[l.Op], done, text)
		}
		if !l.Mode {
			applied = append(applied, l.Op)
		}
	}
	if err := d.end(ctx); err != nil {
		return lost("all %d ops were applied, then leaving configuration mode failed: %w", len(send), err)
	}
	return nil
}

// undo returns to global configuration mode from prompt, undoes the applied ops of send
// newest first, and leaves configuration mode. d.mu must be held.
func (d *ciscoDriver) undo(ctx context.Context, prompt string, send []route.RouteOp, applied []int) error {
	// A line refused inside a sub-mode (NX-OS's config-vrf) leaves the CLI there; the undo
	// lines are rendered for global configuration mode.
	for i := 0; !ciscoConfPrompt.MatchString(prompt); i++ {
		if i == 3 {
			return fmt.Errorf("cannot return to configuration mode from %q", prompt)
		}
		var err error
		if _, prompt, err = d.line(ctx, "exit", nil); err != nil {
			return err
		}
	}
	inverse := make([]route.RouteOp, 0, len(applied))
	for i := len(applied) - 1; i >= 0; i-- {
		inverse = append(inverse, send[applied[i]].Inverse())
	}
	for _, l := range d.dl.render(inverse) {
		out, _, err := d.line(ctx, l.Text, nil)
		if err != nil {
			return err
		}
		if text := ciscoRefusal(out); text != "" {
			return fmt.Errorf("%q refused: %s", l.Text, text)
		}
	}
	return d.end(ctx)
}

// end leaves configuration mode for the privileged prompt. d.mu must be held.
func (d *ciscoDriver) end(ctx context.Context) error {
	out, prompt, err := d.line(ctx, "end", nil)
	if err != nil {
		return err
	}
	if text := ciscoRefusal(out); text != "" || !ciscoExecPrompt.MatchString(prompt) {
		return fmt.Errorf("end left the CLI at %q: %s", prompt, text)
	}
	return nil
}

// rejected reports every op of a refused batch: the op at bad (or, for -1, the batch as a
// whole) with the device's text, those at undone as applied and undone, the rest as not
// applied.
func (d *ciscoDriver) rejected(ops []route.RouteOp, bad int, undone []int, text string) error {
	de := &drivers.Error{Kind: drivers.KindRejected, Device: d.cfg.Name, Op: "apply"}
	wasUndone := make(map[int]bool, len(undone))
	for _, i := range undone {
		wasUndone[i] = true
	}
	for i, op := range ops {
		out := text
		switch {
		case bad < 0:
			out = "not applied: " + text
		case i == bad:
		case wasUndone[i]:
			out = fmt.Sprintf("applied, then undone because %s refused %s: %s", d.dl.label, ops[bad], text)
		default:
			out = fmt.Sprintf("not applied because %s refused %s: %s", d.dl.label, ops[bad], text)
		}
		de.Rejections = append(de.Rejections, drivers.Rejection{Index: i, Op: op, Output: out})
	}
	return de
}

// sendable returns the ops that change the device, with each one's index in ops: an add of a
// route the device holds under returnpath's mark, or a delete of one it does not, is dropped,
// judged against the device as the ops before it leave it.
func (d *ciscoDriver) sendable(ctx context.Context, ops []route.RouteOp) ([]route.RouteOp, []int, error) {
	rs, err := d.owned(ctx)
	if err != nil {
		return nil, nil, err
	}
	have := make(map[route.Route]bool, len(rs))
	for _, r := range rs {
		have[r] = true
	}
	send := make([]route.RouteOp, 0, len(ops))
	index := make([]int, 0, len(ops))
	for i, op := range ops {
		add := op.Action == route.ActionAdd
		if have[op.Route] == add {
			continue
		}
		have[op.Route] = add
		send = append(send, op)
		index = append(index, i)
	}
	return send, index, nil
}
