// Package apply is the apply engine: River jobs on Postgres that push approved route ops to
// devices. All approved ops for one device go out in one session (coalescing), one session per
// device at a time across every process (an advisory lock), devices in parallel otherwise,
// adds inside-out and deletes outside-in (stages), only the difference from what the device
// has (idempotent), read back before an op counts as applied, and all or nothing per change.
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/session"
)

// Config tunes the engine.
type Config struct {
	Concurrency   int           // devices worked at once by this process (default 8)
	RetryDeadline time.Duration // how long an unreachable device is retried before its ops fail (default 5m)
	BatchSize     int           // most ops in one session (default 5000)
	KickInterval  time.Duration // how often to look for work nobody queued (default 15s)
	// SessionWait bounds how long a job waits for one of the device's session slots (held by
	// a verification or the drift check) before it tries again later (default 30s).
	SessionWait time.Duration
	// AfterSession, when set, is called after each session the engine had with a device
	// (the verifier forgets its reading of the device).
	AfterSession func(device string)
	// SettleInterval is the least gap between the two readings of a device whose last
	// session's outcome is unknown: nothing is resent until they agree (default 1s). The gap
	// is at least the device's op timeout too: see settled.
	SettleInterval time.Duration
	// GatherWindow is how long a job woken by a device's first ready op waits before it
	// reads the ready ops, so that ops approved in the same instant go out in its first
	// batch (apply.gather_window, default 10ms; negative: none). Ops that become ready
	// while a batch is pushed go out in the next batch on the same session without waiting.
	GatherWindow time.Duration
	// Periodic are tasks run on an interval by one process of the cluster (River's leader),
	// however many serve processes share the database.
	Periodic []Periodic
	// Register adds other packages' River workers (the webhook deliveries) to the engine's
	// client, and Queues their queues. A process runs one River client: River elects one
	// leader among all clients on a database, and only the leader runs the periodic jobs
	// (the kicker, the drift check), so a second client could leave them unrun.
	Register func(*river.Workers) error
	Queues   map[string]river.QueueConfig
}

// DefaultGatherWindow is Config.GatherWindow's default.
const DefaultGatherWindow = 10 * time.Millisecond

// Periodic is a task River runs on an interval, once across all processes.
type Periodic struct {
	Name     string
	Interval time.Duration
	Run      func(ctx context.Context) error
	// RunOnStart runs the task when a process becomes River's leader too, not only an
	// interval later.
	RunOnStart bool
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.RetryDeadline <= 0 {
		c.RetryDeadline = 5 * time.Minute
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.KickInterval <= 0 {
		c.KickInterval = 15 * time.Second
	}
	if c.SessionWait <= 0 {
		c.SessionWait = 30 * time.Second
	}
	if c.SettleInterval <= 0 {
		c.SettleInterval = time.Second
	}
	if c.GatherWindow == 0 {
		c.GatherWindow = DefaultGatherWindow
	}
}

// Store is what the engine needs of the change store (postgres.Changes implements it).
type Store interface {
	ReadyOps(ctx context.Context, device string, limit int) ([]postgres.ReadyOp, error)
	StartApplying(ctx context.Context, device string, changeIDs []int64) (applying []int64, err error)
	Record(ctx context.Context, device string, results []postgres.OpResult) ([]fabric.Ended, error)
	BeginDeviceWork(ctx context.Context, device string) (postgres.DeviceWork, error)
	DeviceUnreachable(ctx context.Context, device, reason string, unsettled bool) (time.Time, error)
	DeviceReachable(ctx context.Context, device string) error
	WakeDevicesWithWork(ctx context.Context, jobKind string) error
	DeviceSchedules(ctx context.Context) ([]postgres.DeviceSchedule, error)
	ChangesByStatus(ctx context.Context) (map[fabric.ChangeStatus]int64, error)
}

// Locker gives one apply job at a time a device, across processes (postgres.DB implements it).
type Locker interface {
	TryLockDevice(ctx context.Context, device string) (unlock func(), ok bool, err error)
}

// Engine applies approved changes.
type Engine struct {
	cfg     Config
	store   Store
	locker  Locker
	devices *session.Devices
	log     *slog.Logger
	river   *river.Client[pgx.Tx]

	sessionSeconds *prometheus.HistogramVec
	sessionErrors  *prometheus.CounterVec
	opsSettled     *prometheus.CounterVec
	opAttempts     *prometheus.CounterVec
}

type applyArgs struct {
	Device string `json:"device"`
}

func (applyArgs) Kind() string { return "returnpath_apply_device" }

type periodicArgs struct {
	Name string `json:"name"`
}

func (periodicArgs) Kind() string { return "returnpath_periodic" }

type kickArgs struct{}

func (kickArgs) Kind() string { return "returnpath_apply_kick" }

const queue = "returnpath_apply"

// New builds the engine; its jobs live in the database behind pool. Connect it to the change
// store (postgres.Changes.SetEnqueuer) so that approvals queue work in their own transaction.
func New(cfg Config, pool *pgxpool.Pool, store Store, locker Locker, devices *session.Devices,
	log *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	cfg.defaults()
	e := &Engine{cfg: cfg, store: store, locker: locker, devices: devices, log: log,
		sessionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "returnpath_apply_session_seconds", Help: "Duration of one apply session (read, push, read back) per device.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"device"}),
		sessionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "returnpath_device_session_errors_total", Help: "Device session failures by kind."}, []string{"device", "kind"}),
		opsSettled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "returnpath_ops_total",
			Help: "Route ops of the changes the apply engine ended, each counted once by its final status (applied, failed, rolled_back, skipped)."},
			[]string{"device", "outcome"}),
		opAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "returnpath_op_attempts_total",
			Help: "Times the apply engine sent a route op to a device, or tried to and could not reach it (retries included)."},
			[]string{"device"}),
	}
	if reg != nil {
		reg.MustRegister(e.sessionSeconds, e.sessionErrors, e.opsSettled, e.opAttempts, &changeCollector{store: store})
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, river.WorkFunc(e.work)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, river.WorkFunc(e.kick)); err != nil {
		return nil, err
	}
	periodic := []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.KickInterval),
		func() (river.JobArgs, *river.InsertOpts) { return kickArgs{}, &river.InsertOpts{Queue: queue} },
		&river.PeriodicJobOpts{RunOnStart: true})}
	tasks := map[string]Periodic{}
	for _, p := range cfg.Periodic {
		if p.Interval <= 0 {
			continue
		}
		tasks[p.Name] = p
		name := p.Name
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(p.Interval),
			func() (river.JobArgs, *river.InsertOpts) {
				return periodicArgs{Name: name}, &river.InsertOpts{Queue: queue, MaxAttempts: 1}
			}, &river.PeriodicJobOpts{RunOnStart: p.RunOnStart}))
	}
	if err := river.AddWorkerSafely(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[periodicArgs]) error {
		t, ok := tasks[j.Args.Name]
		if !ok {
			return nil // a task another version of returnpath had: nothing to do
		}
		return t.Run(ctx)
	})); err != nil {
		return nil, err
	}
	if cfg.Register != nil {
		if err := cfg.Register(workers); err != nil {
			return nil, err
		}
	}
	queues := map[string]river.QueueConfig{queue: {MaxWorkers: cfg.Concurrency}}
	maps.Copy(queues, cfg.Queues)
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            log.With("component", "river"),
		Queues:            queues,
		Workers:           workers,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 250 * time.Millisecond,
		// A process killed mid-job leaves its job "running"; the kicker queues a fresh one
		// at the next start, so rescue can wait.
		JobTimeout:           5 * time.Minute,
		RescueStuckJobsAfter: 6 * time.Minute,
		PeriodicJobs:         periodic,
	})
	if err != nil {
		return nil, err
	}
	e.river = rc
	return e, nil
}

// Start starts working jobs.
func (e *Engine) Start(ctx context.Context) error { return e.river.Start(ctx) }

// Stop finishes the jobs in hand and stops.
func (e *Engine) Stop(ctx context.Context) error { return e.river.Stop(ctx) }

// EnqueueTx queues one apply job per device inside tx.
func (e *Engine) EnqueueTx(ctx context.Context, tx pgx.Tx, devices []string) error {
	params := make([]river.InsertManyParams, 0, len(devices))
	for _, d := range devices {
		params = append(params, river.InsertManyParams{Args: applyArgs{Device: d}, InsertOpts: &river.InsertOpts{Queue: queue, MaxAttempts: 25}})
	}
	if len(params) == 0 {
		return nil
	}
	_, err := e.river.InsertManyTx(ctx, tx, params)
	return err
}

// InsertManyTx queues other packages' jobs (see Config.Register) inside tx.
func (e *Engine) InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	return e.river.InsertManyTx(ctx, tx, params)
}

// kick queues devices that have work and no job: after a crash, or a job River discarded.
func (e *Engine) kick(ctx context.Context, _ *river.Job[kickArgs]) error {
	return e.store.WakeDevicesWithWork(ctx, applyArgs{}.Kind())
}

// work runs one device's sessions until it has no ready ops. It is the device's one queued
// job (postgres returnpath_wake): until BeginDeviceWork lets it start, it stays that job, and
// snoozes rather than returning, so that no second job is queued behind it.
func (e *Engine) work(ctx context.Context, job *river.Job[applyArgs]) error {
	dev := job.Args.Device
	unlock, ok, err := e.locker.TryLockDevice(ctx, dev)
	if err != nil {
		return err
	}
	if !ok {
		// Another job works the device; it takes these ops too if they are ready. Come
		// back shortly in case it finished its last read before they arrived.
		return river.JobSnooze(100*time.Millisecond + rand.N(100*time.Millisecond))
	}
	defer unlock()
	wctx, cancel := context.WithTimeout(ctx, e.cfg.SessionWait)
	sess, sessErr := e.devices.Take(wctx, dev)
	cancel()
	switch {
	case session.IsBusy(sessErr):
		e.log.Info("device sessions all in use; apply waits", "device", dev)
		return river.JobSnooze(time.Second + rand.N(time.Second))
	case sessErr != nil && !errors.As(sessErr, new(*drivers.Error)):
		return sessErr // the database: River retries the job
	}
	if sess != nil {
		defer sess.Release()
	}
	begun, err := e.store.BeginDeviceWork(ctx, dev)
	if err != nil {
		return err
	}
	if begun.Wait > 0 {
		return river.JobSnooze(begun.Wait) // the device's login backoff
	}
	// The job was woken by the first ready op: give the ops approved in the same instant
	// (a burst of registrations) a moment to commit, so that they go out in this batch.
	if e.cfg.GatherWindow > 0 && !begun.Unsettled {
		t := time.NewTimer(e.cfg.GatherWindow)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	// known is the device's routes as the last read-back on this session showed them: the
	// next batch on the same session starts from it instead of reading the device again (this
	// job holds the device, so nothing of returnpath's changed it since).
	var known []fabric.Route
	unsettled := begun.Unsettled
	for {
		ops, err := e.store.ReadyOps(ctx, dev, e.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return nil
		}
		ids := make([]int64, 0, len(ops))
		for _, o := range ops {
			ids = append(ids, o.ChangeID)
		}
		applying, err := e.store.StartApplying(ctx, dev, ids)
		if err != nil {
			return err
		}
		// A change rejected since ReadyOps (a lease-expiry removal its host's renewal
		// cancelled) must not reach the device.
		ops = slices.DeleteFunc(ops, func(o postgres.ReadyOp) bool { return !slices.Contains(applying, o.ChangeID) })
		if len(ops) == 0 {
			continue
		}
		var results []postgres.OpResult
		var out outcome
		if sess == nil {
			results = e.failAll(ops, safe(sessErr)) // no configuration or driver for the device
		} else {
			results, out, known = e.session(ctx, sess, dev, ops, unsettled, known)
		}
		rctx := context.WithoutCancel(ctx)
		if out.retry != nil {
			// Before Record, so that the job Record may queue for the device's pending ops
			// waits for the new backoff.
			next, err := e.store.DeviceUnreachable(rctx, dev, safe(out.retry), out.unsettled)
			if err != nil {
				return err
			}
			e.log.Warn("device session failed; the device's next login waits", "device", dev,
				"kind", drivers.KindOf(out.retry).String(), "next_login", next.Format(time.RFC3339Nano), "err", out.retry)
		} else if out.reached {
			if err := e.store.DeviceReachable(rctx, dev); err != nil {
				return err
			}
			unsettled = false
		}
		ended, err := e.store.Record(rctx, dev, results)
		if err != nil {
			if sess != nil {
				// What the session did is not recorded, and the slot it holds may be gone with
				// the database: it ends here, and the next one reads the device first.
				sess.Discard()
			}
			return err
		}
		if e.cfg.AfterSession != nil && sess != nil {
			e.cfg.AfterSession(dev)
		}
		for _, r := range results {
			if r.Attempted {
				e.opAttempts.WithLabelValues(dev).Inc()
			}
		}
		for _, end := range ended {
			e.ended(end)
		}
		if out.retry != nil {
			return nil // DeviceUnreachable queued the device's next job
		}
	}
}

// ended logs a change the engine finished, one info line whatever its status (a failure
// already had its warnings from the sessions), and counts its ops,
// each once, in its final status: an op retried ten times is one op and ten attempts.
func (e *Engine) ended(end fabric.Ended) {
	for _, o := range end.Ops {
		e.opsSettled.WithLabelValues(o.Device, string(o.Status)).Inc()
	}
	attrs := []any{"change", end.ID, "host", end.Host, "action", string(end.Kind), "status", string(end.Status),
		"devices", strings.Join(end.Devices, ","), "ops", len(end.Ops), "took_ms", end.Took.Milliseconds()}
	if end.Reason != "" {
		attrs = append(attrs, "reason", end.Reason)
	}
	e.log.Info("change settled", attrs...)
}

// RetryDeadline is how long the engine retries an unreachable device's ops before failing
// them (Config.RetryDeadline with its default): what the change store shows as GivesUpAt.
func (e *Engine) RetryDeadline() time.Duration { return e.cfg.RetryDeadline }

// outcome is what a session says about the device beyond each op's result.
type outcome struct {
	reached   bool  // a session was opened
	retry     error // the device must be tried again after its backoff: unreachable, or sent with an unknown outcome
	unsettled bool  // lines were sent whose outcome is unknown: the device may still be working through them
}

// session pushes ops to the device on its session (the one kept open from earlier work, or
// a new login), only what differs from what the device has, reads back, and says what
// happened to each op. known, when not nil, is the device's routes as this session's last
// read-back showed them: the session starts from it instead of reading the device again. The
// routes it returns are this batch's read-back, or nil when the next batch must read.
//
// When the device is unsettled (an earlier session sent lines and lost sight of them), the
// device may still be typing them: a stalled CLI that resumes works through its buffered lines
// even after the session that sent them is gone. Resending what a reading lacks would then type
// lines twice, so the session reads the device twice, SettleInterval apart, and sends nothing
// until two readings agree.
func (e *Engine) session(ctx context.Context, sess *session.Session, dev string, ops []postgres.ReadyOp, unsettled bool, known []fabric.Route) ([]postgres.OpResult, outcome, []fabric.Route) {
	start := time.Now()
	defer func() { e.sessionSeconds.WithLabelValues(dev).Observe(time.Since(start).Seconds()) }()
	drv, err := sess.Driver(ctx)
	if err != nil {
		rs, out := e.notSent(dev, ops, err) // the login failed
		return rs, out, nil
	}
	reused := sess.Reused()
	have := known
	if known == nil || unsettled {
		have, err = sess.Routes(ctx) // a kept session that broke is replaced: a read changes nothing
		if err == nil && unsettled {
			have, err = e.settled(ctx, sess.Current(), dev, have, max(e.cfg.SettleInterval, sess.Config().OpTimeout))
		}
		if err != nil {
			sess.Failed(err)
			rs, out := e.notSent(dev, ops, err)
			out.reached, out.unsettled = true, unsettled
			return rs, out, nil
		}
		drv, reused = sess.Current(), reused && sess.Reused()
	}
	results := make([]postgres.OpResult, len(ops))
	var push []fabric.RouteOp
	var pushIdx []int
	present := routeSet(have)
	for i, o := range ops {
		results[i] = postgres.OpResult{OpID: o.ID, ChangeID: o.ChangeID}
		if reflected(o.Op, present) {
			results[i].Status = fabric.OpApplied // already so on the device: nothing to type
			continue
		}
		push = append(push, o.Op)
		pushIdx = append(pushIdx, i)
	}
	if len(push) == 0 {
		return results, outcome{reached: true}, have
	}
	applyErr := drv.Apply(ctx, push)
	kind := drivers.KindOf(applyErr)
	if applyErr != nil {
		e.sessionErrors.WithLabelValues(dev, kind.String()).Inc()
		e.log.Warn("apply", "device", dev, "kind", kind.String(), "err", applyErr, "kept_session", reused)
	}
	if applyErr != nil && kind == drivers.KindUnreachable {
		if reused && ctx.Err() == nil {
			// A kept session that broke before anything was sent: log in again and start
			// over (a new session is never reused, so this happens once).
			sess.Reopened()
			return e.session(ctx, sess, dev, ops, unsettled, nil)
		}
		sess.Failed(applyErr)
		// Nothing was sent: retry as a whole.
		rs, out := e.notSent(dev, ops, applyErr)
		for i := range results {
			if results[i].Status == fabric.OpApplied {
				rs[i] = results[i]
			}
		}
		out.reached = true
		return rs, out, nil
	}
	rejected := map[int]drivers.Rejection{}
	var derr *drivers.Error
	if errors.As(applyErr, &derr) {
		for _, r := range derr.Rejections {
			rejected[r.Index] = r
		}
	}
	// Read back: an op is applied only when the device shows it. Then the session is
	// dropped if the push or the read-back broke it (drivers.Reusable): a session that broke
	// after lines were sent leaves their outcome unknown, and the next session reads the
	// device (twice, until it settles) before deciding anything.
	after, rerr := drv.Routes(ctx)
	if rerr != nil {
		e.sessionErrors.WithLabelValues(dev, drivers.KindOf(rerr).String()).Inc()
	}
	sess.Failed(applyErr)
	sess.Failed(rerr)
	now := routeSet(after)
	out := outcome{reached: true}
	for j, i := range pushIdx {
		r := &results[i]
		r.Attempted = true
		if rej, ok := rejected[j]; ok {
			r.Status, r.Error, r.Output = fabric.OpFailed, "the device refused it", rej.Output
			continue
		}
		switch {
		case rerr != nil:
			r.Status, r.Error, out.retry, out.unsettled = fabric.OpPending, "sent, but the read-back failed: "+safe(rerr), rerr, true
		case reflected(ops[i].Op, now):
			r.Status = fabric.OpApplied
		case applyErr != nil && (kind == drivers.KindIndeterminate || kind == drivers.KindInternal):
			r.Status, r.Error, out.retry, out.unsettled = fabric.OpPending,
				"outcome unknown, not on the device yet: the device is read again until it settles, then what it lacks is sent: "+safe(applyErr), applyErr, true
		case applyErr != nil:
			r.Status, r.Error = fabric.OpFailed, safe(applyErr)
		default:
			r.Status, r.Error = fabric.OpFailed, "accepted, but not on the device when read back"
		}
	}
	if rerr != nil {
		after = nil
	}
	return results, out, after
}

// settled reads the device again gap after first and returns the reading if the two agree;
// otherwise an indeterminate error: the device is still changing. The gap is at least the
// device's op timeout: a CLI that took a batch in a configuration transaction (FRR's bulk
// wrapper) shows none of its lines until it reaches the end of what it was sent, so two
// quick readings can agree while it is still working through them. Given as long as the lost
// session had, it has finished (and its lines show) by the second reading.
func (e *Engine) settled(ctx context.Context, drv drivers.Driver, dev string, first []fabric.Route, gap time.Duration) ([]fabric.Route, error) {
	t := time.NewTimer(gap)
	select {
	case <-ctx.Done():
		t.Stop()
		return nil, &drivers.Error{Kind: drivers.KindIndeterminate, Device: dev, Op: "read", Err: ctx.Err()}
	case <-t.C:
	}
	second, err := drv.Routes(ctx)
	if err != nil {
		return nil, err
	}
	if !maps.Equal(routeSet(first), routeSet(second)) {
		return nil, drivers.Errorf(drivers.KindIndeterminate, dev, "read",
			"the device's routes are still changing after a session whose outcome is unknown (%d, then %d routes): nothing is sent until two readings agree", len(first), len(second))
	}
	return second, nil
}

// notSent handles a session that could not send anything: unreachable devices are retried
// with exponential backoff until the deadline; auth and host-key failures fail at once.
func (e *Engine) notSent(dev string, ops []postgres.ReadyOp, err error) ([]postgres.OpResult, outcome) {
	kind := drivers.KindOf(err)
	e.sessionErrors.WithLabelValues(dev, kind.String()).Inc()
	if kind != drivers.KindUnreachable && kind != drivers.KindIndeterminate {
		e.log.Warn("device session failed", "device", dev, "kind", kind.String(), "err", err)
		return e.failAll(ops, safe(err)), outcome{}
	}
	results := make([]postgres.OpResult, len(ops))
	out := outcome{}
	for i, o := range ops {
		results[i] = postgres.OpResult{OpID: o.ID, ChangeID: o.ChangeID, Status: fabric.OpPending, Unreachable: true,
			Error: "device unreachable, retrying: " + safe(err)}
		if o.FirstErrorAt != nil && time.Now().After(fabric.GivesUpAt(*o.FirstErrorAt, e.cfg.RetryDeadline)) {
			results[i].Status = fabric.OpFailed
			results[i].Error = fmt.Sprintf("device unreachable for more than %s: %s", e.cfg.RetryDeadline, safe(err))
			continue
		}
		out.retry = err
	}
	// Attempts count sessions tried, so that the backoff grows.
	for i := range results {
		results[i].Attempted = true
	}
	return results, out
}

func (e *Engine) failAll(ops []postgres.ReadyOp, msg string) []postgres.OpResult {
	out := make([]postgres.OpResult, len(ops))
	for i, o := range ops {
		out[i] = postgres.OpResult{OpID: o.ID, ChangeID: o.ChangeID, Status: fabric.OpFailed, Error: msg}
	}
	return out
}

// safe returns an error text fit for the API: driver errors never carry credentials.
func safe(err error) string { return err.Error() }

func routeSet(rs []fabric.Route) map[fabric.Route]bool {
	m := make(map[fabric.Route]bool, len(rs))
	for _, r := range rs {
		m[r] = true
	}
	return m
}

// reflected reports whether the device state already shows op done.
func reflected(op fabric.RouteOp, have map[fabric.Route]bool) bool {
	if op.Action == fabric.ActionAdd {
		return have[op.Route]
	}
	return !have[op.Route]
}

var (
	changesDesc  = prometheus.NewDesc("returnpath_changes", "Changes by status.", []string{"status"}, nil)
	failuresDesc = prometheus.NewDesc("returnpath_device_login_failures",
		"Consecutive apply sessions that could not reach the device (0 once one does), across all processes.", []string{"device"}, nil)
	nextLoginDesc = prometheus.NewDesc("returnpath_device_next_login_timestamp_seconds",
		"When the apply engine may next log in to a device that failed: the end of its backoff.", []string{"device"}, nil)
)

type changeCollector struct{ store Store }

func (c *changeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- changesDesc
	ch <- failuresDesc
	ch <- nextLoginDesc
}

func (c *changeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	by, err := c.store.ChangesByStatus(ctx)
	if err != nil {
		return
	}
	for _, s := range []fabric.ChangeStatus{fabric.ChangePending, fabric.ChangeApproved, fabric.ChangeApplying, fabric.ChangeApplied,
		fabric.ChangeRejected, fabric.ChangeFailed, fabric.ChangeRolledBack} {
		ch <- prometheus.MustNewConstMetric(changesDesc, prometheus.GaugeValue, float64(by[s]), string(s))
	}
	scheds, err := c.store.DeviceSchedules(ctx)
	if err != nil {
		return
	}
	for _, s := range scheds {
		ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.GaugeValue, float64(s.Failures), s.Device)
		if s.NextAttemptAt != nil {
			ch <- prometheus.MustNewConstMetric(nextLoginDesc, prometheus.GaugeValue, float64(s.NextAttemptAt.UnixMilli())/1000, s.Device)
		}
	}
}
