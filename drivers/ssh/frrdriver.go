package ssh

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/scrapli/scrapligo/driver/network"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

//go:embed frr.yaml
var frrPlatformYAML []byte

// FRR's bulk-load wrapper (what "vtysh -f" sends): lines between the two are applied
// without a commit each. It is not a transaction: a bad line is refused on its own, and the
// lines before it stay.
const (
	frrBulkStart = "XFRR_start_configuration"
	frrBulkEnd   = "XFRR_end_configuration"
)

// frrExecPromptEnd matches an exec prompt at the very end of the output.
var frrExecPromptEnd = regexp.MustCompile(`(?:^|\n)[\w.\-]{1,63}# ?$`)

// FRRDriver is a session to FRRouting's vtysh over SSH, on scrapligo with returnpath's
// embedded FRR platform definition. It implements drivers.Driver and drivers.InstalledReader.
type FRRDriver struct {
	cfg drivers.Config

	mu     sync.Mutex
	nd     *network.Driver
	closed bool
}

var (
	_ drivers.Driver          = (*FRRDriver)(nil)
	_ drivers.InstalledReader = (*FRRDriver)(nil)
	_ drivers.Versioner       = (*FRRDriver)(nil)
)

// OpenFRR connects to the vtysh of the device described by cfg (the SSH login must land in
// vtysh, e.g. through sshd's ForceCommand) and disables paging.
func OpenFRR(ctx context.Context, cfg drivers.Config) (*FRRDriver, error) {
	nd, err := openCLI(ctx, cfg, frrPlatformYAML, "frr", false, "vtysh")
	if err != nil {
		return nil, err
	}
	return &FRRDriver{cfg: cfg, nd: nd}, nil
}

// command runs one show command in exec mode and returns its output without echo and prompt.
func (d *FRRDriver) command(ctx context.Context, cmd string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return "", drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "session is closed")
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		if err := d.nd.AcquirePriv("exec"); err != nil {
			done <- result{err: err}
			return
		}
		r, err := d.nd.SendCommand(cmd)
		if err != nil {
			done <- result{err: err}
			return
		}
		if r.Failed != nil {
			done <- result{err: fmt.Errorf("%q: %s", cmd, strings.TrimSpace(r.Result))}
			return
		}
		done <- result{out: r.Result}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return "", drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "%w", r.err)
		}
		return r.out, nil
	case <-ctx.Done():
		d.abort()
		return "", drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "read", "%w", ctx.Err())
	}
}

// abort drops the session after a timeout; the session is unusable afterwards.
func (d *FRRDriver) abort() {
	_ = d.nd.Transport.Close(true)
	d.closed = true
}

// Routes returns the static routes of the running configuration (intent) inside the managed
// prefixes, in every VRF.
func (d *FRRDriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(d.cfg))
	defer cancel()
	out, err := d.command(ctx, "show running-config staticd")
	if err != nil {
		return nil, err
	}
	return managedOnly(d.cfg, parseFRRStaticConfig(out)), nil
}

// Version returns the first line of "show version", e.g. "FRRouting 10.1 (sw1) on Linux(6.8.0).".
func (d *FRRDriver) Version(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(d.cfg))
	defer cancel()
	out, err := d.command(ctx, "show version")
	if err != nil {
		return "", err
	}
	v := versionLine(out)
	if v == "" {
		return "", drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "show version printed nothing")
	}
	return v, nil
}

// InstalledRoutes returns the static routes FRR installed in the forwarding table, inside
// the managed prefixes, in every VRF. Installation is asynchronous: right after Apply it can
// lag the configuration by tens of milliseconds.
func (d *FRRDriver) InstalledRoutes(ctx context.Context) ([]route.Route, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(d.cfg))
	defer cancel()
	var all []route.Route
	for _, cmd := range []string{"show ip route vrf all static json", "show ipv6 route vrf all static json"} {
		out, err := d.command(ctx, cmd)
		if err != nil {
			return nil, err
		}
		rs, err := parseFRRInstalled([]byte(out))
		if err != nil {
			return nil, drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "%s: %w", cmd, err)
		}
		all = append(all, rs...)
	}
	return managedOnly(d.cfg, all), nil
}

// Apply pushes ops as one batch inside FRR's bulk-load wrapper. The whole batch is written
// without waiting for each echo; vtysh answers line by line, in order, so every error line is
// attributed to the op whose line caused it.
func (d *FRRDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
	if err := checkOps(d.cfg, ops); err != nil {
		return err
	}
	if len(ops) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout(d.cfg, len(ops)))
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return drivers.Errorf(drivers.KindInternal, d.cfg.Name, "apply", "session is closed")
	}
	if err := d.nd.AcquirePriv("configuration"); err != nil {
		return drivers.Errorf(drivers.KindUnreachable, d.cfg.Name, "apply", "enter configuration mode: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "apply", Err: err} // nothing sent yet
	}
	cmds := frrBatch(ops)
	transcript, err := d.push(ctx, cmds)
	if err != nil {
		return err
	}
	return frrOutcome(d.cfg.Name, ops, cmds, transcript)
}

// frrBatch returns the lines of a batch: the wrapper around one line per op, then "end" so
// that the exec prompt marks the end of vtysh's answer.
func frrBatch(ops []route.RouteOp) []string {
	cmds := make([]string, 0, len(ops)+3)
	cmds = append(cmds, frrBulkStart)
	for _, op := range ops {
		cmds = append(cmds, frrOpLine(op))
	}
	return append(cmds, frrBulkEnd, "end")
}

// push writes every line and reads vtysh's answer up to the exec prompt that "end" brings.
func (d *FRRDriver) push(ctx context.Context, cmds []string) (string, error) {
	var in bytes.Buffer
	for _, c := range cmds {
		in.WriteString(c)
		in.WriteByte('\n')
	}
	indeterminate := func(err error) error {
		d.abort()
		return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply", Err: err}
	}
	writeErr := make(chan error, 1)
	go func() { writeErr <- d.nd.Channel.Write(in.Bytes(), false) }()
	var out []byte
	written := false
	for {
		b, err := d.nd.Channel.Read()
		if err != nil {
			return "", indeterminate(fmt.Errorf("session lost after sending: %w", err))
		}
		if len(b) > 0 {
			out = append(out, b...)
			tail := out[max(0, len(out)-80):]
			if frrExecPromptEnd.Match(tail) {
				break
			}
			continue
		}
		select {
		case err := <-writeErr:
			if err != nil {
				return "", indeterminate(fmt.Errorf("write batch: %w", err))
			}
			written = true
		case <-ctx.Done():
			return "", indeterminate(ctx.Err())
		default:
		}
		// vtysh answers a 5,000-line batch over seconds; polling scrapligo's queue more often
		// than this only takes CPU from the device on a shared host.
		time.Sleep(2 * time.Millisecond)
	}
	if !written {
		if err := <-writeErr; err != nil {
			return "", indeterminate(fmt.Errorf("write batch: %w", err))
		}
	}
	return string(out), nil
}

// frrOutcome attributes vtysh's answer to the ops: nil when every line was accepted, a
// rejected error listing the refused ops otherwise. A transcript that cannot be matched line
// for line, or an error on the wrapper itself, makes the outcome indeterminate.
func frrOutcome(device string, ops []route.RouteOp, cmds []string, transcript string) error {
	results := splitFRRTranscript(transcript)
	if len(results) != len(cmds)+1 {
		return drivers.Errorf(drivers.KindIndeterminate, device, "apply",
			"vtysh answered %d lines for %d sent; re-read the device", len(results)-1, len(cmds))
	}
	var rejected []drivers.Rejection
	for i, cmd := range cmds {
		r := results[i]
		if !frrEchoMatches(r.Echo, cmd) {
			return drivers.Errorf(drivers.KindIndeterminate, device, "apply",
				"vtysh echoed %q where %q was sent; re-read the device", r.Echo, cmd)
		}
		if i == 0 || i > len(ops) {
			if text := frrRefusal(route.RouteOp{Action: route.ActionAdd}, r.Output); text != "" {
				return drivers.Errorf(drivers.KindIndeterminate, device, "apply", "%s: %s", cmd, text)
			}
			continue
		}
		op := ops[i-1]
		if text := frrRefusal(op, r.Output); text != "" {
			rejected = append(rejected, drivers.Rejection{Index: i - 1, Op: op, Output: text})
		}
	}
	if len(rejected) > 0 {
		return &drivers.Error{Kind: drivers.KindRejected, Device: device, Op: "apply", Rejections: rejected}
	}
	return nil
}

// Close leaves vtysh and ends the session. vtysh exiting closes the stream (io.EOF), which
// is success. Close is safe to call more than once.
func (d *FRRDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	err := d.nd.Close()
	if err != nil && !errors.Is(err, io.EOF) && !isClosedErr(err) {
		return drivers.Errorf(drivers.KindInternal, d.cfg.Name, "close", "%w", err)
	}
	return nil
}
