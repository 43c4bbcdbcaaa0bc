package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/scrapli/scrapligo/driver/network"

	"github.com/returnpath/returnpath/drivers"
)

// cliSession is the part every vendor CLI driver of this package shares: a scrapligo
// network driver opened by openCLI, a lock that serialises operations on it, and a raw
// exchange that writes a whole batch at once and reads the CLI's answer until the driver
// says it is complete. A timeout or a broken read drops the session (it cannot be trusted
// to be at a prompt afterwards); later operations then fail with "session is closed".
type cliSession struct {
	cfg drivers.Config

	mu     sync.Mutex
	nd     *network.Driver
	closed bool
}

// lock takes the session for one operation, or fails when the session was dropped. The
// caller unlocks c.mu.
func (c *cliSession) lock(op string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return drivers.Errorf(drivers.KindInternal, c.cfg.Name, op, "session is closed")
	}
	return nil
}

// begin starts one operation on the session: it bounds ctx by the device's op timeout and
// takes the session for it. The caller defers done.
func (c *cliSession) begin(ctx context.Context, op string) (_ context.Context, done func(), _ error) {
	return c.beginFor(ctx, op, opTimeout(c.cfg))
}

// beginApply starts the push of a batch of n ops, bounded by applyTimeout.
func (c *cliSession) beginApply(ctx context.Context, n int) (_ context.Context, done func(), _ error) {
	return c.beginFor(ctx, "apply", applyTimeout(c.cfg, n))
}

func (c *cliSession) beginFor(ctx context.Context, op string, timeout time.Duration) (_ context.Context, done func(), _ error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	if err := c.lock(op); err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, func() { c.mu.Unlock(); cancel() }, nil
}

// version runs cmd with show, in an operation of its own, and returns the version line parse
// finds in its output.
func (c *cliSession) version(ctx context.Context, cmd string, show func(context.Context) (string, error), parse func(string) string) (string, error) {
	ctx, done, err := c.begin(ctx, "read")
	if err != nil {
		return "", err
	}
	defer done()
	out, err := show(ctx)
	if err != nil {
		return "", err
	}
	if v := parse(out); v != "" {
		return v, nil
	}
	return "", drivers.Errorf(drivers.KindInternal, c.cfg.Name, "read", "%s printed no version", cmd)
}

// drop closes the transport after a timeout or a broken read; the session is unusable
// afterwards. c.mu must be held.
func (c *cliSession) drop() {
	_ = c.nd.Transport.Close(true)
	c.closed = true
}

// The bounds of exchange's polling of scrapligo's read queue.
const (
	pollMin = 20 * time.Microsecond
	pollMax = time.Millisecond
)

// exchange writes in and reads the CLI's answer until done says it is complete. With pager
// set (e.g. "--More--"), a pager prompt at the end of what arrived, trailing spaces aside, is
// answered with a space, so that output reads whole even when paging could not be turned
// off. c.mu must be held.
func (c *cliSession) exchange(ctx context.Context, in string, pager []byte, done func(out []byte) bool) (string, error) {
	writeErr := make(chan error, 1)
	go func() { writeErr <- c.nd.Channel.Write([]byte(in), false) }()
	var out []byte
	written := false
	// answered is where the last pager prompt answered starts: scrapligo drops the carriage
	// returns of the CLI's erasing of it, so the spaces that follow would otherwise look
	// like the same prompt again and be answered twice.
	answered := -1
	// Poll scrapligo's read queue soon after data (a CLI answering one line replies within
	// tens of microseconds), backing off to 1 ms while the device works, so that a driver
	// waiting on each line is not paced by the poll and a long wait costs little CPU.
	idle := pollMin
	for {
		b, err := c.nd.Channel.Read()
		if err != nil {
			c.drop()
			return string(out), fmt.Errorf("session lost: %w", err)
		}
		if len(b) > 0 {
			idle = pollMin
			out = append(out, b...)
			from := max(0, len(out)-len(pager)-40)
			at := -1
			if len(pager) > 0 {
				if i := bytes.LastIndex(out[from:], pager); i >= 0 {
					at = from + i
				}
			}
			if at > answered && len(bytes.TrimRight(out[at+len(pager):], " ")) == 0 {
				answered = at
				if err := c.nd.Channel.Write([]byte(" "), false); err != nil {
					c.drop()
					return string(out), fmt.Errorf("answer pager: %w", err)
				}
				continue
			}
			if done(out) {
				break
			}
			continue
		}
		select {
		case err := <-writeErr:
			if err != nil {
				c.drop()
				return string(out), fmt.Errorf("write: %w", err)
			}
			written = true
		case <-ctx.Done():
			c.drop()
			return string(out), ctx.Err()
		default:
		}
		time.Sleep(idle)
		idle = min(2*idle, pollMax)
	}
	if !written {
		if err := <-writeErr; err != nil {
			c.drop()
			return string(out), fmt.Errorf("write: %w", err)
		}
	}
	return string(out), nil
}

// Close leaves the CLI and ends the session. The CLI closing the stream (io.EOF) is success.
// Close is safe to call more than once.
func (c *cliSession) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	err := c.nd.Close()
	if err != nil && !errors.Is(err, io.EOF) && !isClosedErr(err) {
		return drivers.Errorf(drivers.KindInternal, c.cfg.Name, "close", "%w", err)
	}
	return nil
}
