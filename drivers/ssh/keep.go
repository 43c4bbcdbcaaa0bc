package ssh

import (
	"context"

	"github.com/returnpath/returnpath/drivers"
)

// Kept-open sessions (internal/session) probe a session that sat idle before using it again,
// and ask whether one may be used again after an error.

var (
	_ drivers.Pinger   = (*FRRDriver)(nil)
	_ drivers.Reusable = (*FRRDriver)(nil)
	_ drivers.Pinger   = (*LinuxDriver)(nil)
	_ drivers.Reusable = (*LinuxDriver)(nil)
	_ drivers.Pinger   = (*cliSession)(nil)
)

// probe runs fn (a round trip that changes nothing) bounded by ctx; on failure or timeout it
// calls drop, since the session can no longer be trusted to be at a prompt.
func probe(ctx context.Context, device string, fn func() error, drop func()) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			drop()
			return drivers.Errorf(drivers.KindUnreachable, device, "ping", "%w", err)
		}
		return nil
	case <-ctx.Done():
		drop()
		return drivers.Errorf(drivers.KindUnreachable, device, "ping", "%w", ctx.Err())
	}
}

// Ping sends a return and waits for vtysh's prompt.
func (d *FRRDriver) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(d.cfg))
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return drivers.Errorf(drivers.KindInternal, d.cfg.Name, "ping", "session is closed")
	}
	return probe(ctx, d.cfg.Name, func() error { _, err := d.nd.GetPrompt(); return err }, d.abort)
}

// ReusableAfter says a session may be used again after the device refused ops: vtysh's answer
// to the batch was read to the exec prompt, so the session is where a new batch starts.
func (d *FRRDriver) ReusableAfter(err error) bool { return drivers.KindOf(err) == drivers.KindRejected }

// Ping sends an SSH keepalive request and waits for the server's answer.
func (d *LinuxDriver) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout(d.cfg))
	defer cancel()
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return drivers.Errorf(drivers.KindInternal, d.cfg.Name, "ping", "session is closed")
	}
	return probe(ctx, d.cfg.Name, func() error {
		_, _, err := d.client.SendRequest("keepalive@openssh.com", true, nil)
		return err
	}, func() { _ = d.Close() })
}

// ReusableAfter says a connection may be used again after the device refused ops: every
// command runs in an SSH channel of its own, so a refusal leaves the connection as it was.
func (d *LinuxDriver) ReusableAfter(err error) bool {
	return drivers.KindOf(err) == drivers.KindRejected
}

// Ping sends a return and waits for the CLI's prompt. A vendor CLI may be left in a
// configuration mode after an error, so these drivers do not implement drivers.Reusable: their
// sessions are closed after any error.
func (c *cliSession) Ping(ctx context.Context) error {
	ctx, done, err := c.begin(ctx, "ping")
	if err != nil {
		return err
	}
	defer done()
	return probe(ctx, c.cfg.Name, func() error { _, err := c.nd.GetPrompt(); return err }, c.drop)
}
