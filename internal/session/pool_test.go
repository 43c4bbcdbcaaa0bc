package session_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
	"github.com/returnpath/returnpath/internal/session"
)

// breakable wraps a Fake session with a probe that fails once the test breaks the session
// (a device or firewall that cut it while idle).
type breakable struct {
	drivers.Driver
	broken *atomic.Bool
	pings  *atomic.Int32
}

func (b *breakable) Ping(context.Context) error {
	b.pings.Add(1)
	if b.broken.Load() {
		return drivers.Errorf(drivers.KindUnreachable, "sw1", "ping", "connection reset")
	}
	return nil
}

func (b *breakable) Routes(ctx context.Context) ([]fabric.Route, error) {
	if b.broken.Load() {
		return nil, drivers.Errorf(drivers.KindUnreachable, "sw1", "read", "connection reset")
	}
	return b.Driver.Routes(ctx)
}

func (b *breakable) ReusableAfter(err error) bool { return drivers.KindOf(err) == drivers.KindRejected }

// kit is one "process" with kept sessions to one fake device sw1.
type kit struct {
	db      *postgres.DB
	devs    *session.Devices
	fake    *drivertest.Fake
	broken  *atomic.Bool
	pings   *atomic.Int32
	clock   *atomic.Int64 // unix nanoseconds of the Devices' clock
	closed  chan string
	metrics *session.Metrics
}

// keptProcesses opens n processes (each its own pool) on one database sharing one fake sw1
// with session budget max, keeping sessions open for idle.
func keptProcesses(t *testing.T, n, max int, idle time.Duration) []*kit {
	t.Helper()
	url := pgtest.URL(t)
	fake := drivertest.NewFake("sw1")
	var out []*kit
	for range n {
		db, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		k := &kit{db: db, fake: fake, broken: new(atomic.Bool), pings: new(atomic.Int32), clock: new(atomic.Int64),
			closed: make(chan string, 16), metrics: session.NewMetrics()}
		k.clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		fac := drivertest.FakeFactory(fake)
		open := fac.Open
		fac.Open = func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
			d, err := open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			k.broken.Store(false) // a new login works
			return &breakable{Driver: d, broken: k.broken, pings: k.pings}, nil
		}
		k.devs = &session.Devices{
			Configs:      map[string]drivers.Config{"sw1": {Name: "sw1", Platform: fabric.PlatformFRR}},
			Factories:    map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac},
			MaxSessions:  map[string]int{"sw1": max},
			IdleTimeouts: map[string]time.Duration{"sw1": idle},
			Budget:       db,
			Logins:       session.NewLoginCounter(),
			Metrics:      k.metrics,
			OnClose:      func(d string) { k.closed <- d },
			Now:          func() time.Time { return time.Unix(0, k.clock.Load()) },
		}
		t.Cleanup(func() { _ = k.devs.Close(context.Background()) })
		out = append(out, k)
	}
	return out
}

// use takes sw1's session, reads it and gives it back.
func (k *kit) use(t *testing.T, ctx context.Context) error {
	t.Helper()
	s, err := k.devs.Take(ctx, "sw1")
	if err != nil {
		return err
	}
	defer s.Release()
	_, err = s.Routes(ctx)
	s.Failed(err)
	return err
}

// TestKeptSessionIsReused: three uses log in once; the session stays open (and counted)
// until Close, which logs out and frees the slot for another process.
func TestKeptSessionIsReused(t *testing.T) {
	t.Parallel()
	ks := keptProcesses(t, 2, 1, time.Hour)
	a, b := ks[0], ks[1]
	for range 3 {
		if err := a.use(t, context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.fake.Sessions(); got != 1 {
		t.Errorf("logins for three uses = %d, want 1", got)
	}
	if got := testutil.ToFloat64(a.metrics.Reuses.WithLabelValues("sw1")); got != 2 {
		t.Errorf("reuses = %v, want 2", got)
	}
	if got := testutil.ToFloat64(a.metrics.Open.WithLabelValues("sw1")); got != 1 {
		t.Errorf("sessions open = %v, want 1", got)
	}
	if got := a.fake.OpenSessions(); got != 1 {
		t.Errorf("fake sees %d open sessions between uses, want 1 (kept)", got)
	}
	if err := a.devs.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := a.fake.OpenSessions(); got != 0 {
		t.Errorf("fake sees %d open sessions after Close, want 0", got)
	}
	if got := testutil.ToFloat64(a.metrics.Open.WithLabelValues("sw1")); got != 0 {
		t.Errorf("sessions open after Close = %v, want 0", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.use(t, ctx); err != nil {
		t.Fatalf("the other process after Close: %v, want the freed slot", err)
	}
}

// TestIdleCloseFreesTheSlot: a kept session unused for its idle timeout is closed and its
// slot given back.
func TestIdleCloseFreesTheSlot(t *testing.T) {
	t.Parallel()
	ks := keptProcesses(t, 2, 1, time.Millisecond)
	a, b := ks[0], ks[1]
	if err := a.use(t, context.Background()); err != nil {
		t.Fatal(err)
	}
	<-a.closed // the idle close
	if got := a.fake.OpenSessions(); got != 0 {
		t.Errorf("fake sees %d open sessions after the idle close, want 0", got)
	}
	wantCloses(t, a.metrics, map[string]float64{session.CloseIdle: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.use(t, ctx); err != nil {
		t.Fatalf("the other process after the idle close: %v", err)
	}
}

// TestBrokenKeptSessionIsReplaced: a session found broken by its probe after idling is
// closed and replaced by a new login, transparently; one used a moment ago is not probed.
func TestBrokenKeptSessionIsReplaced(t *testing.T) {
	t.Parallel()
	a := keptProcesses(t, 1, 1, time.Hour)[0]
	if err := a.use(t, context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.use(t, context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := a.pings.Load(); got != 0 {
		t.Errorf("pings of a session used a moment ago = %d, want 0", got)
	}
	a.clock.Add(int64(time.Minute))
	a.broken.Store(true)
	if err := a.use(t, context.Background()); err != nil {
		t.Fatalf("use after the session broke while idle = %v, want a transparent reopen", err)
	}
	if got := a.pings.Load(); got != 1 {
		t.Errorf("pings after idling = %d, want 1", got)
	}
	if got, want := a.fake.Sessions(), 2; got != want {
		t.Errorf("logins = %d, want %d", got, want)
	}
	if got := testutil.ToFloat64(a.metrics.Reopens.WithLabelValues("sw1")); got != 1 {
		t.Errorf("reopens = %v, want 1", got)
	}
	// Broken between a probe-free reuse and the read: the read is repeated on a new login.
	a.broken.Store(true)
	if err := a.use(t, context.Background()); err != nil {
		t.Fatalf("read on a session that broke since its last use = %v, want a transparent reopen", err)
	}
	if got := testutil.ToFloat64(a.metrics.Reopens.WithLabelValues("sw1")); got != 2 {
		t.Errorf("reopens = %v, want 2", got)
	}
	wantCloses(t, a.metrics, map[string]float64{session.CloseBroken: 2})
}

// wantCloses checks sw1's returnpath_device_session_closes_total by cause: want's counts, and
// none of any other cause.
func wantCloses(t *testing.T, m *session.Metrics, want map[string]float64) {
	t.Helper()
	for _, cause := range session.CloseCauses {
		if got := testutil.ToFloat64(m.Closes.WithLabelValues("sw1", cause)); got != want[cause] {
			t.Errorf("sessions closed for %s = %v, want %v", cause, got, want[cause])
		}
	}
}

// TestFailedDropsUnlessReusable: after an indeterminate or unreachable error the session is
// closed whatever the driver says; after a refusal it is kept when the driver allows it.
func TestFailedDropsUnlessReusable(t *testing.T) {
	t.Parallel()
	a := keptProcesses(t, 1, 1, time.Hour)[0]
	for _, tc := range []struct {
		kind drivers.Kind
		kept bool
	}{
		{kind: drivers.KindRejected, kept: true},
		{kind: drivers.KindIndeterminate, kept: false},
		{kind: drivers.KindUnreachable, kept: false},
	} {
		s, err := a.devs.Take(context.Background(), "sw1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Driver(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.Failed(drivers.Errorf(tc.kind, "sw1", "apply", "boom"))
		if got := s.Current() != nil; got != tc.kept {
			t.Errorf("after a %s error the session is kept: %v, want %v", tc.kind, got, tc.kept)
		}
		s.Release()
	}
	wantCloses(t, a.metrics, map[string]float64{session.CloseError: 2})
}

// TestKeptSessionsStayWithinTheBudget: callers in two processes that keep sessions open
// never hold more than max_sessions at once, and each process yields its idle kept session
// when the other asks (Wanter and Yield, as serve wires them through the Hub).
func TestKeptSessionsStayWithinTheBudget(t *testing.T) {
	t.Parallel()
	ks := keptProcesses(t, 2, 1, time.Hour)
	// Each process hears the other's requests, as serve's Hub delivers them.
	hub := postgres.NewHub(ks[0].db.Pool.Config().ConnConfig, slog.New(slog.DiscardHandler))
	hub.Handle(postgres.ChannelSessionWant, func(e postgres.Event) {
		if e.Kind == postgres.Notified {
			for _, k := range ks {
				k.devs.Yield(e.Payload)
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub.Start(ctx)
	t.Cleanup(hub.Close)
	var mu sync.Mutex
	cur, peak, served := 0, 0, 0
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := ks[i%2].devs.Take(ctx, "sw1")
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Routes(ctx); err != nil {
				t.Error(err)
			}
			mu.Lock()
			cur++
			peak = max(peak, cur)
			mu.Unlock()
			mu.Lock()
			cur--
			served++
			mu.Unlock()
			s.Release()
		})
	}
	wg.Wait()
	if peak != 1 || served != 8 {
		t.Errorf("at most %d held the device at once and %d of 8 were served, want 1 and 8", peak, served)
	}
	if got := ks[0].fake.MaxConcurrentSessions(); got > 1 {
		t.Errorf("the device saw %d sessions at once, want at most 1 (max_sessions)", got)
	}
}

// TestSuspendDropsKeptSessions: when the database goes away (the Hub's Disconnected), the slot
// a kept session holds may go with its connection, so the idle session is closed and its slot
// let go at once; a session in use is closed at its Release instead of kept, until the
// database is back; a session whose outcome could not be recorded is discarded at once.
func TestSuspendDropsKeptSessions(t *testing.T) {
	t.Parallel()
	ks := keptProcesses(t, 2, 1, time.Hour)
	a, b := ks[0], ks[1]
	if err := a.use(t, context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := a.fake.OpenSessions(); got != 1 {
		t.Fatalf("open sessions after a use = %d, want the kept one", got)
	}
	a.devs.Suspend(true)
	<-a.closed
	if got := a.fake.OpenSessions(); got != 0 {
		t.Errorf("open sessions after Suspend = %d, want 0", got)
	}
	// The slot was let go: the other process gets it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.use(t, ctx); err != nil {
		t.Fatalf("the other process after Suspend: %v", err)
	}
	if err := b.devs.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// While suspended, a use closes its session at Release.
	if err := a.use(t, ctx); err != nil {
		t.Fatal(err)
	}
	<-a.closed
	if got := a.fake.OpenSessions(); got != 0 {
		t.Errorf("open sessions after a use while suspended = %d, want 0", got)
	}
	// Back: sessions are kept again, until one is discarded.
	a.devs.Suspend(false)
	s, err := a.devs.Take(ctx, "sw1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Routes(ctx); err != nil {
		t.Fatal(err)
	}
	s.Discard()
	if got := a.fake.OpenSessions(); got != 0 {
		t.Errorf("open sessions after Discard = %d, want 0", got)
	}
	s.Release()
	if err := a.use(t, ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.fake.OpenSessions(); got != 1 {
		t.Errorf("open sessions after a use with the database back = %d, want the kept one", got)
	}
	wantCloses(t, a.metrics, map[string]float64{session.CloseSuspended: 2, session.CloseDiscard: 1})
	wantCloses(t, b.metrics, map[string]float64{session.CloseShutdown: 1})
}
