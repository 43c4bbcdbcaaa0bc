package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// LinuxDriver is a session to a Linux router or firewall over SSH. Each read or batch runs
// one command on its own SSH channel of the same connection, so stdout, stderr and the exit
// status of ip stay apart. It implements drivers.Driver.
//
// Ownership is marked on the box: every route the driver adds carries the route protocol
// number of cfg.Linux.Proto (202 by default), reads list only routes with that protocol, and
// deletes name it, so the kernel never lets the driver delete a route someone else made.
type LinuxDriver struct {
	cfg    drivers.Config
	client *ssh.Client
	ip     string // "ip" or "sudo -n ip"

	mu     sync.Mutex
	closed bool
}

var (
	_ drivers.Driver    = (*LinuxDriver)(nil)
	_ drivers.Versioner = (*LinuxDriver)(nil)
)

// OpenLinux connects to the device described by cfg. With cfg.Linux.Sudo, changes run as
// "sudo -n ip"; reads never need privileges.
func OpenLinux(ctx context.Context, cfg drivers.Config) (*LinuxDriver, error) {
	if err := checkProto(cfg); err != nil {
		return nil, err
	}
	client, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ip := "ip"
	if cfg.Linux.Sudo {
		ip = "sudo -n ip"
	}
	return &LinuxDriver{cfg: cfg, client: client, ip: ip}, nil
}

// runResult is what one remote command produced.
type runResult struct {
	stdout, stderr []byte
	status         int
}

// errNotStarted marks failures that happened before the command reached the device.
var errNotStarted = errors.New("command not started")

// run runs cmd (built only from constants and numbers) with stdin on a new channel.
func (d *LinuxDriver) run(ctx context.Context, cmd string, stdin []byte) (runResult, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return runResult{}, fmt.Errorf("%w: session is closed", errNotStarted)
	}
	if err := ctx.Err(); err != nil {
		return runResult{}, fmt.Errorf("%w: %w", errNotStarted, err)
	}
	s, err := d.client.NewSession()
	if err != nil {
		return runResult{}, fmt.Errorf("%w: %w", errNotStarted, err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	if stdin != nil {
		s.Stdin = bytes.NewReader(stdin)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Close()
		return runResult{}, ctx.Err()
	}
	res := runResult{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var exit *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.status = exit.ExitStatus()
	default:
		return res, err
	}
	return res, nil
}

// Routes returns the routes carrying the driver's protocol inside the managed prefixes, in
// the main table (default VRF) and in every VRF's table.
func (d *LinuxDriver) Routes(ctx context.Context) ([]route.Route, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(d.cfg))
	defer cancel()
	rs, err := d.routes(ctx)
	if err != nil {
		return nil, err
	}
	return managedOnly(d.cfg, rs), nil
}

func (d *LinuxDriver) routes(ctx context.Context) ([]route.Route, error) {
	proto := strconv.Itoa(linuxProto(d.cfg))
	cmd := "ip -json -4 route show table all proto " + proto + " && ip -json -6 route show table all proto " + proto
	res, err := d.run(ctx, cmd, nil)
	if err != nil {
		return nil, d.readErr(err)
	}
	if res.status != 0 {
		return nil, drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "%s: exit status %d: %s", cmd, res.status, strings.TrimSpace(string(res.stderr)))
	}
	var vrfs map[string]string
	dec := json.NewDecoder(bytes.NewReader(res.stdout))
	var all []route.Route
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "parse route json: %w", err)
		}
		if vrfs == nil && bytes.Contains(raw, []byte(`"table"`)) {
			if vrfs, err = d.vrfTables(ctx); err != nil {
				return nil, err
			}
		}
		rs, err := parseLinuxRoutes(raw, vrfs)
		if err != nil {
			return nil, drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "%w", err)
		}
		all = append(all, rs...)
	}
	return all, nil
}

// vrfTables reads the device's VRFs as a map from table id to VRF name.
func (d *LinuxDriver) vrfTables(ctx context.Context) (map[string]string, error) {
	res, err := d.run(ctx, "ip -json vrf show", nil)
	if err != nil {
		return nil, d.readErr(err)
	}
	if res.status != 0 {
		return map[string]string{}, nil // no VRF support: only the main table exists
	}
	m, err := parseLinuxVRFs(res.stdout)
	if err != nil {
		return nil, drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "%w", err)
	}
	return m, nil
}

func (d *LinuxDriver) readErr(err error) error {
	return &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "read", Err: err}
}

// Apply runs the batch through one "ip -force -batch -" and attributes every failing line
// to its op. A delete of a route that is not there (with our protocol) is success. An add
// whose prefix is taken ("File exists") is success only when the route there is ours with
// the same next hop; otherwise it is refused with the kernel's text and the other route is
// left alone. Ops in a VRF the device does not have run one by one, since ip would abort the
// rest of the batch on them; they are refused with ip's own text.
func (d *LinuxDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
	if err := checkOps(d.cfg, ops); err != nil {
		return err
	}
	if len(ops) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout(d.cfg, len(ops)))
	defer cancel()
	batch, alone, err := d.splitByVRF(ctx, ops)
	if err != nil {
		return err
	}
	proto := linuxProto(d.cfg)
	var multipath map[route.RouteKey][]netip.Addr
	if slices.ContainsFunc(ops, func(op route.RouteOp) bool { return op.Action == route.ActionDelete }) {
		rs, err := d.routes(ctx)
		if err != nil {
			return err
		}
		multipath = multipathOf(rs)
	}
	inBatch := make([]route.RouteOp, len(batch))
	for j, i := range batch {
		inBatch[j] = ops[i]
	}
	var in bytes.Buffer
	for _, line := range linuxLines(inBatch, proto, multipath) {
		in.WriteString(line)
		in.WriteByte('\n')
	}
	texts := map[int]string{} // op index -> device text of a failed line
	sent := false
	if len(batch) > 0 {
		res, err := d.run(ctx, d.ip+" -force -batch -", in.Bytes())
		if err != nil {
			return d.applyErr(err, false)
		}
		sent = true
		if res.status != 0 {
			lineErrs, trailing := linuxBatchErrors(string(res.stderr))
			if trailing != "" {
				return d.batchFailure(trailing, len(lineErrs) > 0)
			}
			for line, text := range lineErrs {
				if line < len(batch) {
					texts[batch[line]] = text
				}
			}
		}
	}
	for _, i := range alone {
		res, err := d.run(ctx, d.ip+" "+linuxOpLine(ops[i], proto), nil)
		if err != nil {
			return d.applyErr(err, sent)
		}
		sent = true
		if res.status != 0 {
			texts[i] = strings.TrimSpace(string(res.stderr))
		}
	}
	return d.outcome(ctx, ops, texts)
}

// splitByVRF returns the indexes of ops that can go in the batch and of ops in a VRF the
// device does not have.
func (d *LinuxDriver) splitByVRF(ctx context.Context, ops []route.RouteOp) (batch, alone []int, err error) {
	var known map[string]bool
	for i, op := range ops {
		if op.Route.VRF == route.DefaultVRF {
			batch = append(batch, i)
			continue
		}
		if known == nil {
			tables, err := d.vrfTables(ctx)
			if err != nil {
				return nil, nil, err
			}
			known = map[string]bool{}
			for _, name := range tables {
				known[name] = true
			}
		}
		if known[op.Route.VRF] {
			batch = append(batch, i)
		} else {
			alone = append(alone, i)
		}
	}
	return batch, alone, nil
}

// outcome turns the failed lines into the result: benign answers are success, the rest
// rejections.
func (d *LinuxDriver) outcome(ctx context.Context, ops []route.RouteOp, texts map[int]string) error {
	var have []route.Route
	read := false
	var rejected []drivers.Rejection
	idx := make([]int, 0, len(texts))
	for i := range texts {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		op, text := ops[i], texts[i]
		switch {
		case op.Action == route.ActionDelete && strings.Contains(text, linuxNoSuch):
			continue
		case op.Action == route.ActionAdd && strings.Contains(text, linuxExists):
			if !read {
				rs, err := d.routes(ctx)
				if err != nil {
					return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply",
						Err: fmt.Errorf("re-read after %q: %w", text, err)}
				}
				have, read = rs, true
			}
			if slices.Contains(have, op.Route) {
				continue
			}
		}
		rejected = append(rejected, drivers.Rejection{Index: i, Op: op, Output: text})
	}
	if len(rejected) > 0 {
		return &drivers.Error{Kind: drivers.KindRejected, Device: d.cfg.Name, Op: "apply", Rejections: rejected}
	}
	return nil
}

// applyErr classifies a failure to run a command: before anything was sent it is safe to
// retry; after, the outcome is unknown.
func (d *LinuxDriver) applyErr(err error, sent bool) error {
	kind := drivers.KindIndeterminate
	if errors.Is(err, errNotStarted) && !sent {
		kind = drivers.KindUnreachable
	}
	return &drivers.Error{Kind: kind, Device: d.cfg.Name, Op: "apply", Err: err}
}

// batchFailure classifies ip's output when the batch stopped without naming a line: sudo
// refusing (nothing ran) or ip exiting part way (unknown which lines ran).
func (d *LinuxDriver) batchFailure(text string, someFailed bool) error {
	if strings.HasPrefix(text, "sudo:") && !someFailed {
		return drivers.Errorf(drivers.KindAuth, d.cfg.Name, "apply", "sudo refused to run ip: %s", text)
	}
	return drivers.Errorf(drivers.KindIndeterminate, d.cfg.Name, "apply", "ip stopped part way through the batch: %s", text)
}

// linuxVersionCmd prints the kernel ("Linux 6.8.0-45-generic") and, where the box has
// /etc/os-release, its PRETTY_NAME on a second line. It is a constant: nothing a user
// configured goes into it.
const linuxVersionCmd = `uname -sr; sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null; true`

// Version returns the kernel and distribution, e.g. "Linux 6.8.0-45-generic (Ubuntu 24.04.1 LTS)".
func (d *LinuxDriver) Version(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(d.cfg))
	defer cancel()
	res, err := d.run(ctx, linuxVersionCmd, nil)
	if err != nil {
		return "", d.readErr(err)
	}
	v := linuxVersion(string(res.stdout))
	if v == "" {
		return "", drivers.Errorf(drivers.KindInternal, d.cfg.Name, "read", "uname printed nothing (exit status %d): %s", res.status, strings.TrimSpace(string(res.stderr)))
	}
	return v, nil
}

// Close ends the connection; it is safe to call more than once.
func (d *LinuxDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.client.Close(); err != nil && !isClosedErr(err) {
		return drivers.Errorf(drivers.KindInternal, d.cfg.Name, "close", "%w", err)
	}
	return nil
}
