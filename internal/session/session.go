// Package session resolves a device name to its configuration and driver, and bounds the
// sessions opened to each device: at most MaxSessions at once (devices[].max_sessions, default
// 1), across every service process sharing the database, whoever asks (the apply engine, a
// verification, the drift check). Devices are shared and fragile: a read-only caller must
// never be able to open sessions without limit.
package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/fabric"
)

// DefaultMaxSessions is a device's session budget when its configuration sets none.
const DefaultMaxSessions = 1

// Budget hands out a device's session slots across processes (postgres.DB implements it with
// advisory locks that die with their connection).
type Budget interface {
	TryDeviceSession(ctx context.Context, device string, max int) (release func(), ok bool, err error)
}

// Wanter is implemented by a Budget that can tell the processes holding a device's slots that
// a caller waits for one (postgres.DB: a NOTIFY of request, Devices.WantRequest); each
// answers with Devices.Yield(request).
type Wanter interface {
	WantDeviceSession(ctx context.Context, request string) error
}

// Devices knows every device's driver configuration and factory.
type Devices struct {
	mu sync.RWMutex // guards Configs and MaxSessions once the service runs: a reload swaps them

	Configs   map[string]drivers.Config // by device name
	Factories map[fabric.Platform]drivers.Factory
	// MaxSessions is each device's session budget; a device not listed gets DefaultMaxSessions.
	MaxSessions map[string]int
	// Budget enforces the budget across processes; nil enforces nothing (a test, or a tool
	// that never runs beside the service).
	Budget Budget
	// Logins, when set, counts every session opened, by device and outcome ("ok" or the
	// driver's error kind): the login attempts a device sees from this process.
	Logins *prometheus.CounterVec
	// IdleTimeouts is how long each device's session is kept open after use for the next
	// caller (devices[].idle_timeout); a device not listed has its session closed after
	// each use.
	IdleTimeouts map[string]time.Duration
	// Metrics, when set, counts the kept-open sessions.
	Metrics *Metrics
	// OnClose, when set, is called after a session of this process was closed (tests).
	OnClose func(device string)
	// Now is the clock; nil is time.Now.
	Now func() time.Time

	gen    uint64 // bumped by SetConfigs: kept sessions opened before are closed at next use
	poolMu sync.Mutex
	pool   map[string]*kept // by device name
	closed bool
	// suspended: the database is away (Suspend), so the slots kept sessions hold may be gone
	// with their connections; sessions are closed at Release instead of kept.
	suspended bool
	procID    string
}

// NewLoginCounter returns the counter for Devices.Logins.
func NewLoginCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "returnpath_device_logins_total",
		Help: "Device sessions opened (logins) by this process, by outcome: ok or the driver's error kind."}, []string{"device", "outcome"})
}

// BusyError says that every session slot of a device stayed in use until the caller gave up.
// Nothing was sent to the device, and nothing is wrong with it.
type BusyError struct {
	Device string
	Max    int
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("device %s: all %d of its sessions (max_sessions) stayed in use; try again later", e.Device, e.Max)
}

// Lease is a held session slot for one device.
type Lease struct {
	Config  drivers.Config
	factory drivers.Factory
	release func()
	logins  *prometheus.CounterVec
}

// SetConfigs swaps every device's configuration and session budget at once (a reload).
// Sessions in use keep the configuration they were opened with; kept-open sessions are
// closed and opened again with the new one at their next use.
func (d *Devices) SetConfigs(configs map[string]drivers.Config, maxSessions map[string]int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Configs, d.MaxSessions = configs, maxSessions
	d.gen++
}

// Lookup returns the device's driver configuration, if it is configured.
func (d *Devices) Lookup(device string) (drivers.Config, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	cfg, ok := d.Configs[device]
	return cfg, ok
}

// Config returns the device's driver configuration.
func (d *Devices) Config(device string) (drivers.Config, drivers.Factory, error) {
	d.mu.RLock()
	cfg, ok := d.Configs[device]
	d.mu.RUnlock()
	if !ok {
		return cfg, drivers.Factory{}, drivers.Errorf(drivers.KindInternal, device, "connect", "the device is not in the configuration")
	}
	f, ok := d.Factories[cfg.Platform]
	if !ok || f.Open == nil {
		return cfg, f, drivers.Errorf(drivers.KindInternal, device, "connect", "no driver for platform %s", cfg.Platform)
	}
	return cfg, f, nil
}

// Max returns the device's session budget.
func (d *Devices) Max(device string) int {
	d.mu.RLock()
	n := d.MaxSessions[device]
	d.mu.RUnlock()
	if n > 0 {
		return n
	}
	return DefaultMaxSessions
}

// Acquire waits for one of the device's session slots until ctx is done, then returns a
// *BusyError (or the database's error). Release the lease when done.
func (d *Devices) Acquire(ctx context.Context, device string) (*Lease, error) {
	cfg, f, err := d.Config(device)
	if err != nil {
		return nil, err
	}
	l := &Lease{Config: cfg, factory: f, release: func() {}, logins: d.Logins}
	if d.Budget == nil {
		return l, nil
	}
	max := d.Max(device)
	wait := 10 * time.Millisecond
	var wanted time.Time
	for {
		release, ok, err := d.Budget.TryDeviceSession(ctx, device, max)
		if err != nil {
			if ctx.Err() != nil {
				return nil, &BusyError{Device: device, Max: max}
			}
			return nil, err
		}
		if ok {
			l.release = release
			return l, nil
		}
		// A slot may be held by an idle session another process keeps open: ask for it
		// (again each second, in case the holder was busy when first asked).
		if w, isW := d.Budget.(Wanter); isW && time.Since(wanted) > time.Second {
			wanted = time.Now()
			_ = w.WantDeviceSession(ctx, d.WantRequest(device)) // a lost request leaves the wait to the idle timeout
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, &BusyError{Device: device, Max: max}
		case <-t.C:
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// Open opens a session to the leased device.
func (l *Lease) Open(ctx context.Context) (drivers.Driver, error) {
	d, err := l.factory.Open(ctx, l.Config)
	if l.logins != nil {
		outcome := "ok"
		if err != nil {
			outcome = drivers.KindOf(err).String()
		}
		l.logins.WithLabelValues(l.Config.Name, outcome).Inc()
	}
	return d, err
}

// Release gives the slot back. It is safe to call more than once.
func (l *Lease) Release() {
	l.release()
	l.release = func() {}
}

// IsBusy reports whether err says the device's sessions were all in use.
func IsBusy(err error) bool {
	var b *BusyError
	return errors.As(err, &b)
}
