package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/fabric"
)

// DefaultIdleTimeout is how long a kept-open device session may sit unused before it is
// closed and its session slot freed, when devices[].idle_timeout sets none.
const DefaultIdleTimeout = 5 * time.Minute

// probeAfter is how long a kept-open session may sit unused before it is pinged
// (drivers.Pinger) ahead of its next use: a session used a moment ago is known to work, one
// idle longer may have been cut by the device or a firewall in between.
const probeAfter = time.Second

// Metrics counts the kept-open sessions of a Devices (NewMetrics).
type Metrics struct {
	Open    *prometheus.GaugeVec   // returnpath_device_sessions_open
	Reuses  *prometheus.CounterVec // returnpath_device_session_reuses_total
	Reopens *prometheus.CounterVec // returnpath_device_session_reopens_total
	Closes  *prometheus.CounterVec // returnpath_device_session_closes_total, by cause
}

// Why a session was closed (the cause label of returnpath_device_session_closes_total): an
// operator, or a benchmark, counting logins learns from it what ended each session.
const (
	CloseIdle      = "idle"      // unused for devices[].idle_timeout
	CloseNotKept   = "not_kept"  // released by a process that keeps no sessions (idle timeout 0)
	CloseBroken    = "broken"    // a kept session failed its probe or a read, and was replaced
	CloseError     = "error"     // an operation on it failed in a way that leaves it unusable
	CloseReload    = "reload"    // the configuration was reloaded
	CloseSuspended = "suspended" // the database was away: its session slot may be gone
	CloseYield     = "yield"     // another process waited for the device's session slot
	CloseDiscard   = "discard"   // its work could not be recorded
	CloseShutdown  = "shutdown"  // the process is stopping
)

// CloseCauses lists every cause, in the order the metric's help gives them.
var CloseCauses = []string{CloseIdle, CloseNotKept, CloseBroken, CloseError, CloseReload, CloseSuspended, CloseYield, CloseDiscard, CloseShutdown}

// NewMetrics returns the kept-open session metrics, by device.
func NewMetrics() *Metrics {
	return &Metrics{
		Open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "returnpath_device_sessions_open",
			Help: "Device sessions this process holds open (kept for reuse by apply, verify and the drift check)."}, []string{"device"}),
		Reuses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "returnpath_device_session_reuses_total",
			Help: "Times this process used a device session it had kept open instead of logging in again."}, []string{"device"}),
		Reopens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "returnpath_device_session_reopens_total",
			Help: "Kept-open device sessions found broken (failed probe or read) and replaced by a new login."}, []string{"device"}),
		Closes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "returnpath_device_session_closes_total",
			Help: "Device sessions this process closed, by cause (idle, not_kept, broken, error, reload, suspended, yield, discard, shutdown)."}, []string{"device", "cause"}),
	}
}

// Collectors returns the metrics for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Open, m.Reuses, m.Reopens, m.Closes}
}

// kept is one device's session in this process: at most one, used by one caller at a time.
// While open it holds one of the device's session slots (the budget's advisory lock), so
// that the budget counts it like any other session.
type kept struct {
	turn chan struct{} // a token: whoever holds it uses the session

	// Guarded by turn, except where noted.
	drv      drivers.Driver
	cfg      drivers.Config
	gen      uint64 // Devices.gen when opened: a reload makes it stale
	release  func() // the session slot, or nil when none is held
	lastUsed time.Time
	idle     *time.Timer // the idle close, while nobody holds turn
	uses     uint64      // bumped at each checkout: an idle close armed before it does nothing
}

// Session is a device's session checked out to one caller: the caller has it to itself until
// Release. Use Driver to get the open driver.
type Session struct {
	d      *Devices
	k      *kept
	device string
	reused bool
	ready  bool // Driver was called in this checkout: the session is checked
	done   bool
}

// Take checks out the device's session in this process, waiting until ctx is done for the
// caller using it, and for one of the device's session slots if none is held. It returns a
// *BusyError when either stays taken. The session itself opens at the first Driver call.
func (d *Devices) Take(ctx context.Context, device string) (*Session, error) {
	if _, _, err := d.Config(device); err != nil {
		return nil, err
	}
	k := d.kept(device)
	select {
	case <-k.turn:
	case <-ctx.Done():
		return nil, &BusyError{Device: device, Max: d.Max(device)}
	}
	k.uses++
	if k.idle != nil {
		k.idle.Stop()
		k.idle = nil
	}
	if k.release == nil {
		lease, err := d.Acquire(ctx, device)
		if err != nil {
			k.turn <- struct{}{}
			return nil, err
		}
		k.release = lease.Release
	}
	return &Session{d: d, k: k, device: device}, nil
}

func (d *Devices) kept(device string) *kept {
	d.poolMu.Lock()
	defer d.poolMu.Unlock()
	if d.pool == nil {
		d.pool = map[string]*kept{}
	}
	k, ok := d.pool[device]
	if !ok {
		k = &kept{turn: make(chan struct{}, 1)}
		k.turn <- struct{}{}
		d.pool[device] = k
	}
	return k
}

// Config returns the configuration the session was (or will be) opened with.
func (s *Session) Config() drivers.Config {
	if s.k.drv != nil {
		return s.k.cfg
	}
	cfg, _, _ := s.d.Config(s.device)
	return cfg
}

// Reused reports whether the last Driver call returned a session kept from an earlier use.
func (s *Session) Reused() bool { return s.reused }

// Driver returns the device's open session: the kept one if it still answers (pinged first
// when it sat idle longer than a moment), otherwise a new login. A kept session that fails
// its probe is closed and replaced: nothing was sent on it, so that is safe.
func (s *Session) Driver(ctx context.Context) (drivers.Driver, error) {
	k := s.k
	s.reused, s.ready = false, true
	if k.drv != nil && k.gen != s.d.generation() {
		s.closeDriver(CloseReload)
	}
	if k.drv != nil {
		p, ok := k.drv.(drivers.Pinger)
		if !ok || s.d.now().Sub(k.lastUsed) < probeAfter || p.Ping(ctx) == nil {
			s.reused = true
			k.lastUsed = s.d.now()
			if m := s.d.Metrics; m != nil {
				m.Reuses.WithLabelValues(s.device).Inc()
			}
			return k.drv, nil
		}
		s.Reopened()
	}
	cfg, f, err := s.d.Config(s.device)
	if err != nil {
		return nil, err
	}
	l := &Lease{Config: cfg, factory: f, logins: s.d.Logins}
	drv, err := l.Open(ctx)
	if err != nil {
		return nil, err
	}
	k.drv, k.cfg, k.gen, k.lastUsed = drv, cfg, s.d.generation(), s.d.now()
	if m := s.d.Metrics; m != nil {
		m.Open.WithLabelValues(s.device).Inc()
	}
	return drv, nil
}

// Routes reads the device's routes on the session (checking or opening it first, as Driver
// does, unless Driver was called in this checkout). A
// kept session that breaks on the read is replaced once by a new login and the read repeated:
// a read changes nothing on the device, so that is safe.
func (s *Session) Routes(ctx context.Context) ([]fabric.Route, error) {
	if !s.ready || s.k.drv == nil {
		if _, err := s.Driver(ctx); err != nil {
			return nil, err
		}
	}
	rs, err := s.k.drv.Routes(ctx)
	if err == nil || !s.reused || ctx.Err() != nil {
		return rs, err
	}
	s.Reopened()
	drv, err := s.Driver(ctx)
	if err != nil {
		return nil, err
	}
	return drv.Routes(ctx)
}

// Current returns the session's open driver, or nil when it has none (never opened, or
// closed by Failed).
func (s *Session) Current() drivers.Driver { return s.k.drv }

// Reopened closes a kept session found broken (nothing was sent on it) and counts it; the
// next Driver call logs in again.
func (s *Session) Reopened() {
	if s.k.drv == nil {
		return
	}
	s.closeDriver(CloseBroken)
	if m := s.d.Metrics; m != nil {
		m.Reopens.WithLabelValues(s.device).Inc()
	}
}

// Failed tells the session that an operation on it failed with err. The session is closed
// unless the driver says it may be reused after err (drivers.Reusable); it never is after
// KindUnreachable or KindIndeterminate. The next Driver call logs in again.
func (s *Session) Failed(err error) {
	if err == nil || s.k.drv == nil {
		return
	}
	kind := drivers.KindOf(err)
	if kind != drivers.KindUnreachable && kind != drivers.KindIndeterminate {
		if r, ok := s.k.drv.(drivers.Reusable); ok && r.ReusableAfter(err) {
			return
		}
	}
	s.closeDriver(CloseError)
}

// closeDriver ends the kept session for cause (one of the Close constants); the slot stays
// held for the caller.
func (s *Session) closeDriver(cause string) {
	k := s.k
	if k.drv == nil {
		return
	}
	_ = k.drv.Close()
	k.drv = nil
	if m := s.d.Metrics; m != nil {
		m.Open.WithLabelValues(s.device).Dec()
		m.Closes.WithLabelValues(s.device, cause).Inc()
	}
	if s.d.OnClose != nil {
		s.d.OnClose(s.device)
	}
}

// Release gives the session back. A device with an idle timeout keeps it open (and its slot
// held) for the next caller until it has sat unused that long; otherwise, or when the
// Devices is closed, it is closed and its slot freed. Release is safe to call more than once.
func (s *Session) Release() {
	if s.done {
		return
	}
	s.done = true
	k := s.k
	idle, closed, suspended := s.d.IdleTimeout(s.device), s.d.isClosed(), s.d.isSuspended()
	if k.drv == nil || idle <= 0 || closed || suspended {
		cause := CloseNotKept
		switch {
		case closed:
			cause = CloseShutdown
		case suspended:
			cause = CloseSuspended
		}
		s.closeDriver(cause)
		if k.release != nil {
			k.release()
			k.release = nil
		}
		k.turn <- struct{}{}
		return
	}
	k.lastUsed = s.d.now()
	uses := k.uses
	k.idle = time.AfterFunc(idle, func() { s.d.closeIdle(s.device, k, uses) })
	k.turn <- struct{}{}
}

// Discard closes the session now, keeping the slot for the caller until Release: for a caller
// that could not record what it did on it (the database is away), so that no session outlives
// the slot that allowed it.
func (s *Session) Discard() { s.closeDriver(CloseDiscard) }

// Suspend tells d whether the database is away (true) or back (false). While it is away, the
// slots kept sessions hold may have died with their connections (an advisory lock is the
// connection's), and another process may take them: every idle kept session is closed and its
// slot let go now, and sessions in use are closed at their Release rather than kept. It does
// not block (a Hub handler calls it).
func (d *Devices) Suspend(away bool) {
	d.poolMu.Lock()
	d.suspended = away
	ks := make(map[string]*kept, len(d.pool))
	if away {
		for dev, k := range d.pool {
			ks[dev] = k
		}
	}
	d.poolMu.Unlock()
	for dev, k := range ks {
		go d.drop(dev, k, CloseSuspended)
	}
}

func (d *Devices) isSuspended() bool {
	d.poolMu.Lock()
	defer d.poolMu.Unlock()
	return d.suspended
}

// drop waits for k's turn, then closes its session (for cause) and frees its slot.
func (d *Devices) drop(device string, k *kept, cause string) {
	<-k.turn
	if k.idle != nil {
		k.idle.Stop()
		k.idle = nil
	}
	(&Session{d: d, k: k, device: device}).closeDriver(cause)
	if k.release != nil {
		k.release()
		k.release = nil
	}
	k.turn <- struct{}{}
}

// closeIdle closes k's session and frees its slot if nobody used it since the idle close was
// armed.
func (d *Devices) closeIdle(device string, k *kept, uses uint64) {
	select {
	case <-k.turn:
	default:
		return // in use: its Release arms a new idle close
	}
	if k.uses == uses {
		(&Session{d: d, k: k, device: device}).closeDriver(CloseIdle)
		if k.release != nil {
			k.release()
			k.release = nil
		}
		k.idle = nil
	}
	k.turn <- struct{}{}
}

// Yield answers another process waiting for one of device's session slots (Wanter): the
// session kept open to it is closed and its slot freed now if idle, else at its Release. It
// does not block (a Hub handler calls it). A request this process sent itself is ignored: its
// own waiter holds the session's turn, so the kept session is not what it waits for.
func (d *Devices) Yield(request string) {
	from, device, ok := strings.Cut(request, " ")
	if !ok || from == d.id() {
		return
	}
	d.poolMu.Lock()
	k, ok := d.pool[device]
	d.poolMu.Unlock()
	if !ok {
		return
	}
	go d.drop(device, k, CloseYield)
}

// Close closes every kept session and frees their slots, waiting for sessions in use to be
// released (until ctx is done). Sessions taken after Close are closed at their Release.
func (d *Devices) Close(ctx context.Context) error {
	d.poolMu.Lock()
	d.closed = true
	ks := make(map[string]*kept, len(d.pool))
	for dev, k := range d.pool {
		ks[dev] = k
	}
	d.poolMu.Unlock()
	var errs []error
	for dev, k := range ks {
		select {
		case <-k.turn:
		case <-ctx.Done():
			errs = append(errs, &BusyError{Device: dev, Max: d.Max(dev)})
			continue
		}
		if k.idle != nil {
			k.idle.Stop()
			k.idle = nil
		}
		(&Session{d: d, k: k, device: dev}).closeDriver(CloseShutdown)
		if k.release != nil {
			k.release()
			k.release = nil
		}
		k.turn <- struct{}{}
	}
	return errors.Join(errs...)
}

func (d *Devices) isClosed() bool {
	d.poolMu.Lock()
	defer d.poolMu.Unlock()
	return d.closed
}

// IdleTimeout returns how long the device's session is kept open unused; 0 closes it after
// each use (tools that run once, and devices of a Devices with no IdleTimeouts).
func (d *Devices) IdleTimeout(device string) time.Duration {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.IdleTimeouts[device]
}

// SetIdleTimeouts swaps every device's idle timeout (a reload).
func (d *Devices) SetIdleTimeouts(idle map[string]time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.IdleTimeouts = idle
}

func (d *Devices) generation() uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.gen
}

func (d *Devices) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// id names this Devices in its requests for a slot (Wanter), so that it ignores its own.
func (d *Devices) id() string {
	d.poolMu.Lock()
	defer d.poolMu.Unlock()
	if d.procID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		d.procID = hex.EncodeToString(b)
	}
	return d.procID
}

// WantRequest is the payload of a request for one of device's slots sent by d (Wanter).
func (d *Devices) WantRequest(device string) string { return d.id() + " " + device }
