package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/apply"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
	"github.com/returnpath/returnpath/internal/session"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
	boot = fabric.Actor{Name: "boot", Role: fabric.RoleBootstrap}
	rev  = fabric.Actor{Name: "alice", Role: fabric.RoleReviewer}
)

func inventory() *fabric.Inventory {
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: pfx("10.210.0.0/16"), SubnetLength: 24}},
		Segments: []fabric.Segment{{Name: "rack1", Hosts: pfx("10.10.0.0/16"), Pool: "docker",
			RouteVia: []fabric.Hop{
				{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
				{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("10.10.20.1")}},
			}}},
		Devices: []fabric.Device{
			{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"},
			{Name: "fw1", Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.12:22"), VRF: "default"},
		},
	}
}

// timeline records, across devices, the order in which ops reached them.
type timeline struct {
	mu      sync.Mutex
	log     []string
	batches map[string]int // Apply calls by device
	// onApply, when set, runs at the start of each Apply (before the ops reach the device).
	onApply func(device string, ops []fabric.RouteOp)
}

func (tl *timeline) factory(fakes ...*drivertest.Fake) drivers.Factory {
	f := drivertest.FakeFactory(fakes...)
	open := f.Open
	f.Open = func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
		d, err := open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &recording{Driver: d, name: cfg.Name, tl: tl}, nil
	}
	return f
}

type recording struct {
	drivers.Driver
	name string
	tl   *timeline
}

func (r *recording) Apply(ctx context.Context, ops []fabric.RouteOp) error {
	r.tl.mu.Lock()
	for _, o := range ops {
		r.tl.log = append(r.tl.log, fmt.Sprintf("%s %s %s", r.name, o.Action, o.Route.Prefix))
	}
	if r.tl.batches == nil {
		r.tl.batches = map[string]int{}
	}
	r.tl.batches[r.name]++
	hook := r.tl.onApply
	r.tl.mu.Unlock()
	if hook != nil {
		hook(r.name, ops)
	}
	return r.Driver.Apply(ctx, ops)
}

func (tl *timeline) entries() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]string(nil), tl.log...)
}

type env struct {
	db      *postgres.DB
	hosts   *postgres.Hosts
	changes *postgres.Changes
	sw, fw  *drivertest.Fake
	tl      *timeline
	logs    *logBuffer
	reg     *prometheus.Registry
	devs    *session.Devices
}

// logBuffer collects the engine's JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the logged records whose msg is msg.
func (l *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	text := l.b.String()
	l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// metrics returns the values of the series of the counter or gauge name, keyed by their
// labels as "k=v,k=v" in label order.
func (e *env) metrics(t *testing.T, name string) map[string]float64 {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

func newEnv(t *testing.T, policy fabric.ApprovalPolicy, opts ...func(*apply.Config)) *env {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t)
	inv := inventory()
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, sw: drivertest.NewFake("sw1"), fw: drivertest.NewFake("fw1"), tl: &timeline{}, logs: &logBuffer{}, reg: prometheus.NewRegistry()}
	fac := e.tl.factory(e.sw, e.fw)
	factories := map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac, fabric.PlatformLinux: fac}
	cfgs := map[string]drivers.Config{}
	for _, d := range inv.Devices {
		cfgs[d.Name] = drivers.Config{Name: d.Name, Platform: d.Platform, Address: d.Address, VRF: d.VRF, Managed: inv.ManagedPrefixes()}
	}
	preview := func(dev string, ops []fabric.RouteOp) ([]string, error) {
		return drivertest.FakePreview(cfgs[dev], ops)
	}
	e.changes = postgres.NewChanges(db, inv, preview, policy)
	e.hosts = postgres.NewHosts(db, inv)
	e.hosts.SetChanges(e.changes)
	cfg := apply.Config{RetryDeadline: time.Minute, KickInterval: time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	// Sessions are kept open between jobs, as serve keeps them; a process that waits for a
	// slot this one keeps asks for it through the Hub, as in serve.
	devs := &session.Devices{Configs: cfgs, Factories: factories, Budget: db,
		IdleTimeouts: map[string]time.Duration{"sw1": time.Hour, "fw1": time.Hour}, Metrics: session.NewMetrics()}
	e.devs = devs
	hub := postgres.NewHub(db.Pool.Config().ConnConfig, slog.New(slog.DiscardHandler))
	hub.Handle(postgres.ChannelSessionWant, func(ev postgres.Event) {
		if ev.Kind == postgres.Notified {
			devs.Yield(ev.Payload)
		}
	})
	hctx, hcancel := context.WithCancel(ctx)
	hub.Start(hctx)
	eng, err := apply.New(cfg, db.Pool, e.changes, db, devs, slog.New(slog.NewJSONHandler(e.logs, nil)), e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.changes.SetEnqueuer(eng)
	e.changes.SetRetryDeadline(eng.RetryDeadline())
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Stop(sctx)
		_ = devs.Close(sctx)
		hub.Close()
		hcancel()
	})
	return e
}

var autoAll = fabric.ApprovalPolicy{FourEyes: true, AutoApprove: []fabric.AutoApproveRule{{Kind: fabric.ChangeAdd}, {Kind: fabric.ChangeRemove}}}

// waitChange polls until the change reaches a final status.
func (e *env) waitChange(t *testing.T, id int64) fabric.Change {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.changes.Change(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status.Final() {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("change %d still %s after 30s: %+v", id, c.Status, c.Ops)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitApplied polls until n changes are applied.
func (e *env) waitApplied(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		by, err := e.changes.ChangesByStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if by[fabric.ChangeApplied] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes by status after %s: %v", within, by)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) latestChange(t *testing.T, h fabric.Host) int64 {
	t.Helper()
	id, _, _, ok := e.changes.HostChange(context.Background(), h.ID)
	if !ok {
		t.Fatalf("host %s has no change", h.Name)
	}
	return id
}

func route(p, nh string) fabric.Route {
	return fabric.Route{VRF: "default", Prefix: pfx(p), NextHop: addr(nh)}
}

func TestAddThenRemoveInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, autoAll)
	ctx := context.Background()
	h, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")})
	if err != nil {
		t.Fatal(err)
	}
	c := e.waitChange(t, e.latestChange(t, h))
	if c.Status != fabric.ChangeApplied || c.ApprovedBy != "policy:auto_approve[0]" {
		t.Fatalf("add change = %s by %q (%s)", c.Status, c.ApprovedBy, c.Reason)
	}
	if got, _ := e.hosts.Host(ctx, "d1"); got.State != fabric.HostActive {
		t.Errorf("host state = %s, want active", got.State)
	}
	if e.sw.OpsApplied(route("10.210.0.0/24", "10.10.10.101")) != 1 || e.fw.OpsApplied(route("10.210.0.0/24", "10.10.20.1")) != 1 {
		t.Errorf("routes not on both devices: sw %v fw %v", e.sw.AllRoutes(), e.fw.AllRoutes())
	}
	if _, err := e.hosts.Remove(ctx, boot, "d1"); err != nil {
		t.Fatal(err)
	}
	rc := e.waitChange(t, e.latestChange(t, h))
	if rc.Kind != fabric.ChangeRemove || rc.Status != fabric.ChangeApplied {
		t.Fatalf("remove change = %s %s (%s)", rc.Kind, rc.Status, rc.Reason)
	}
	if len(e.sw.AllRoutes()) != 0 || len(e.fw.AllRoutes()) != 0 {
		t.Errorf("routes left: sw %v fw %v", e.sw.AllRoutes(), e.fw.AllRoutes())
	}
	want := "[sw1 add 10.210.0.0/24 fw1 add 10.210.0.0/24 fw1 delete 10.210.0.0/24 sw1 delete 10.210.0.0/24]"
	if got := fmt.Sprint(e.tl.entries()); got != want {
		t.Errorf("order on the devices = %s, want %s (adds inside-out, deletes outside-in)", got, want)
	}
	// The subnet is free again: the next host gets it.
	h2, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: "d2", Address: addr("10.10.10.102")})
	if err != nil || h2.Subnet != pfx("10.210.0.0/24") {
		t.Errorf("next registration got %v, %v; want the released 10.210.0.0/24", h2.Subnet, err)
	}
}

func TestRollbackWhenFirewallRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, autoAll)
	e.fw.Set(drivertest.WithReject(pfx("10.210.0.0/24"), "% Invalid route: table is read-only"))
	h, _, err := e.hosts.Register(context.Background(), boot, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")})
	if err != nil {
		t.Fatal(err)
	}
	c := e.waitChange(t, e.latestChange(t, h))
	if c.Status != fabric.ChangeRolledBack || !strings.Contains(c.Reason, "table is read-only") {
		t.Fatalf("change = %s (%s), want rolled_back with the firewall's text", c.Status, c.Reason)
	}
	if len(e.sw.AllRoutes()) != 0 {
		t.Errorf("switch keeps %v after the rollback", e.sw.AllRoutes())
	}
	want := "[sw1 add 10.210.0.0/24 fw1 add 10.210.0.0/24 sw1 delete 10.210.0.0/24]"
	if got := fmt.Sprint(e.tl.entries()); got != want {
		t.Errorf("device log = %s, want %s", got, want)
	}
	if got, _ := e.hosts.Host(context.Background(), "d1"); got.State != fabric.HostPending {
		t.Errorf("host = %s, want still pending", got.State)
	}
	// One log line tells what became of the change; durations are whole milliseconds.
	recs := e.logs.records(t, "change settled")
	if len(recs) != 1 {
		t.Fatalf("%d 'change settled' lines, want 1: %v", len(recs), recs)
	}
	got := recs[0]
	took, isNumber := got["took_ms"].(float64)
	if !isNumber || took < 0 || took != float64(int64(took)) {
		t.Errorf("took_ms = %v, want whole milliseconds", got["took_ms"])
	}
	delete(got, "time")
	delete(got, "took_ms")
	want2 := map[string]any{"level": "INFO", "msg": "change settled", "change": float64(c.ID), "host": "d1", "action": "add",
		"status": "rolled_back", "devices": "sw1,fw1", "ops": float64(3), "reason": c.Reason}
	if diff := cmp.Diff(want2, got); diff != "" {
		t.Errorf("change settled line (-want +got):\n%s", diff)
	}
	// Each op counted once in its final status; the switch's add was applied, then undone by
	// its rollback op.
	wantOps := map[string]float64{"device=sw1,outcome=rolled_back": 1, "device=sw1,outcome=applied": 1, "device=fw1,outcome=failed": 1}
	if diff := cmp.Diff(wantOps, e.metrics(t, "returnpath_ops_total")); diff != "" {
		t.Errorf("returnpath_ops_total (-want +got):\n%s", diff)
	}
	wantAttempts := map[string]float64{"device=sw1": 2, "device=fw1": 1}
	if diff := cmp.Diff(wantAttempts, e.metrics(t, "returnpath_op_attempts_total")); diff != "" {
		t.Errorf("returnpath_op_attempts_total (-want +got):\n%s", diff)
	}
}

func TestUnreachableDeviceThenUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, autoAll)
	e.sw.Set(drivertest.WithUnreachable(true))
	h, _, err := e.hosts.Register(context.Background(), boot, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")})
	if err != nil {
		t.Fatal(err)
	}
	id := e.latestChange(t, h)
	// Wait until the engine has tried and is backing off.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _ := e.changes.Change(context.Background(), id)
		if c.Ops[0].Attempts >= 1 {
			if c.Status != fabric.ChangeApplying {
				t.Fatalf("change = %s while the switch is down, want applying", c.Status)
			}
			// The op says until when it is retried (first error + the retry deadline), when
			// the device is next tried, and why.
			op := c.Ops[0]
			if op.FirstErrorAt.IsZero() || !op.GivesUpAt.Equal(op.FirstErrorAt.Add(time.Minute)) {
				t.Errorf("op first error %v, gives up at %v; want the first error plus the 1m retry deadline", op.FirstErrorAt, op.GivesUpAt)
			}
			if op.NextAttemptAt.IsZero() {
				t.Error("op shows no next attempt while its device backs off")
			}
			if !strings.Contains(op.Error, "unreachable") {
				t.Errorf("op error = %q, want the last error naming the unreachable device", op.Error)
			}
			// Retries are attempts, not settled ops.
			if got := e.metrics(t, "returnpath_ops_total"); len(got) != 0 {
				t.Errorf("returnpath_ops_total = %v while the change is still applying, want no series", got)
			}
			if got := e.metrics(t, "returnpath_op_attempts_total")["device=sw1"]; got < 1 {
				t.Errorf("returnpath_op_attempts_total{device=sw1} = %v, want at least 1", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no attempt on the unreachable switch")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.sw.Set(drivertest.WithUnreachable(false))
	c := e.waitChange(t, id)
	if c.Status != fabric.ChangeApplied {
		t.Fatalf("change = %s (%s) after the switch came back", c.Status, c.Reason)
	}
	for _, op := range c.Ops {
		if !op.GivesUpAt.IsZero() || !op.NextAttemptAt.IsZero() {
			t.Errorf("applied op on %s still shows a retry window (%v, %v)", op.Device, op.NextAttemptAt, op.GivesUpAt)
		}
	}
	wantOps := map[string]float64{"device=sw1,outcome=applied": 1, "device=fw1,outcome=applied": 1}
	if diff := cmp.Diff(wantOps, e.metrics(t, "returnpath_ops_total")); diff != "" {
		t.Errorf("returnpath_ops_total (-want +got):\n%s", diff)
	}
}

func TestUnreachableUntilDeadlineFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, autoAll, func(c *apply.Config) { c.RetryDeadline = 300 * time.Millisecond })
	e.fw.Set(drivertest.WithUnreachable(true))
	h, _, err := e.hosts.Register(context.Background(), boot, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")})
	if err != nil {
		t.Fatal(err)
	}
	c := e.waitChange(t, e.latestChange(t, h))
	if c.Status != fabric.ChangeRolledBack || !strings.Contains(c.Reason, "unreachable") {
		t.Fatalf("change = %s (%s), want rolled_back naming the unreachable firewall", c.Status, c.Reason)
	}
	if len(e.sw.AllRoutes()) != 0 {
		t.Errorf("switch keeps %v", e.sw.AllRoutes())
	}
}

func TestIdempotentAndCoalesced(t *testing.T) {
	t.Parallel()
	e := newEnv(t, autoAll)
	ctx := context.Background()
	// A route already on the switch is recorded as applied without being typed again.
	e.sw.Plant(route("10.210.0.0/24", "10.10.10.1"))
	const n = 150
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: fmt.Sprintf("h%d", i), Address: addr(fmt.Sprintf("10.10.10.%d", i+1))})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.waitApplied(t, n, 60*time.Second)
	if got := e.sw.OpsApplied(route("10.210.0.0/24", "10.10.10.1")); got != 0 {
		t.Errorf("the planted route was typed %d times, want 0", got)
	}
	for _, f := range []*drivertest.Fake{e.sw, e.fw} {
		if f.MaxConcurrentSessions() > 1 {
			t.Errorf("%s had %d sessions at once", f.Name(), f.MaxConcurrentSessions())
		}
		if s := f.Sessions(); s != 1 {
			t.Errorf("%s: %d logins for %d changes, want 1: the session is kept across batches and jobs", f.Name(), s, n)
		}
		for _, r := range f.AllRoutes() {
			if c := f.OpsApplied(r); c > 1 {
				t.Errorf("%s: %s applied %d times", f.Name(), r, c)
			}
		}
	}
	t.Logf("sessions for %d changes: sw1 %d, fw1 %d", n, e.sw.Sessions(), e.fw.Sessions())
}

func TestReviewFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fabric.ApprovalPolicy{FourEyes: true})
	ctx := context.Background()
	h, _, err := e.hosts.Register(ctx, rev, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")})
	if err != nil {
		t.Fatal(err)
	}
	id := e.latestChange(t, h)
	c, err := e.changes.Change(ctx, id)
	if err != nil || c.Status != fabric.ChangePending || len(c.Ops) != 2 || c.Ops[0].Preview == "" {
		t.Fatalf("pending change = %+v, %v", c, err)
	}
	if _, err := e.changes.Approve(ctx, rev, id, c.PlanHash); fabric.ErrorCode(err) != fabric.EFORBIDDEN {
		t.Errorf("self-approval = %v, want forbidden (four eyes)", err)
	}
	bob := fabric.Actor{Name: "bob", Role: fabric.RoleReviewer}
	if _, err := e.changes.Approve(ctx, bob, id, "0000"); fabric.ErrorCode(err) != fabric.ECONFLICT {
		t.Errorf("approve with a wrong plan_hash = %v, want conflict", err)
	}
	if len(e.sw.AllRoutes()) != 0 {
		t.Fatal("routes pushed before approval")
	}
	if _, err := e.changes.Approve(ctx, bob, id, c.PlanHash); err != nil {
		t.Fatal(err)
	}
	if done := e.waitChange(t, id); done.Status != fabric.ChangeApplied || done.ApprovedBy != "bob" {
		t.Errorf("change = %s approved by %q", done.Status, done.ApprovedBy)
	}
	// Reject needs a reason and ends the change.
	h2, _, _ := e.hosts.Register(ctx, boot, fabric.Registration{Name: "d2", Address: addr("10.10.10.102")})
	id2 := e.latestChange(t, h2)
	if _, err := e.changes.Reject(ctx, bob, id2, ""); fabric.ErrorCode(err) != fabric.EINVALID {
		t.Errorf("reject without reason = %v", err)
	}
	rc, err := e.changes.Reject(ctx, bob, id2, "not this rack")
	if err != nil || rc.Status != fabric.ChangeRejected || rc.Reason != "not this rack" {
		t.Errorf("reject = %+v %v", rc, err)
	}
}

// TestTwoEnginesShareTheDatabase runs two engines (as two serve processes would) on one
// database and one set of devices: every change is applied, no device is ever in two sessions
// at once, and no op reaches a device twice.
func TestTwoEnginesShareTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, autoAll)
	ctx := context.Background()
	// The second engine: same database and devices, its own River client.
	cfgs := map[string]drivers.Config{}
	inv := inventory()
	for _, d := range inv.Devices {
		cfgs[d.Name] = drivers.Config{Name: d.Name, Platform: d.Platform, Address: d.Address, VRF: d.VRF, Managed: inv.ManagedPrefixes()}
	}
	fac := e.tl.factory(e.sw, e.fw)
	otherChanges := postgres.NewChanges(e.db, inv, nil, autoAll)
	other, err := apply.New(apply.Config{KickInterval: time.Second}, e.db.Pool, otherChanges, e.db,
		&session.Devices{Configs: cfgs, Factories: map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac, fabric.PlatformLinux: fac}, Budget: e.db},
		slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	otherChanges.SetEnqueuer(other)
	if err := other.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Stop(context.Background()) })
	e.sw.Set(drivertest.WithLatency(5*time.Millisecond, 0))
	e.fw.Set(drivertest.WithLatency(5*time.Millisecond, 0))
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: fmt.Sprintf("h%d", i), Address: addr(fmt.Sprintf("10.10.%d.%d", 11+i/200, 1+i%200))}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	e.waitApplied(t, n, 90*time.Second)
	for _, f := range []*drivertest.Fake{e.sw, e.fw} {
		if f.MaxConcurrentSessions() > 1 {
			t.Errorf("%s was in %d sessions at once", f.Name(), f.MaxConcurrentSessions())
		}
		if got := len(f.AllRoutes()); got != n {
			t.Errorf("%s holds %d routes, want %d", f.Name(), got, n)
		}
		for _, r := range f.AllRoutes() {
			if c := f.OpsApplied(r); c != 1 {
				t.Errorf("%s: %s applied %d times", f.Name(), r, c)
			}
		}
	}
}

// TestApprovalOfAStalePlan: the inventory changed after the change was filed (the firewall's
// routes now go into another VRF), so approving the plan the reviewer saw is refused and the
// new plan is stored for review; approving that one works.
func TestApprovalOfAStalePlan(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fabric.ApprovalPolicy{FourEyes: true})
	ctx := context.Background()
	h, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")})
	if err != nil {
		t.Fatal(err)
	}
	id := e.latestChange(t, h)
	seen, err := e.changes.Change(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory()
	inv.Devices[1].VRF = "blue"
	moved := postgres.NewChanges(e.db, inv, func(dev string, ops []fabric.RouteOp) ([]string, error) {
		return []string{ops[0].String()}, nil
	}, fabric.ApprovalPolicy{FourEyes: true})
	_, err = moved.Approve(ctx, rev, id, seen.PlanHash)
	var stale *fabric.StalePlanError
	if !errors.As(err, &stale) || fabric.ErrorCode(err) != fabric.ECONFLICT {
		t.Fatalf("Approve after the inventory changed = %v, want a stale-plan conflict", err)
	}
	if stale.Change.PlanHash == seen.PlanHash || stale.Change.Ops[1].Op.Route.VRF != "blue" {
		t.Fatalf("new plan = %+v", stale.Change.Ops)
	}
	if _, err := moved.Approve(ctx, rev, id, stale.Change.PlanHash); err != nil {
		t.Fatalf("approving the new plan: %v", err)
	}
}

// TestIndeterminateIsResolvedByReading: the firewall drops the session after taking the first
// op of a batch. The engine reads the device again: the op that landed is recorded applied and
// never sent again; the other is sent in a later session.
func TestIndeterminateIsResolvedByReading(t *testing.T) {
	t.Parallel()
	e := newEnv(t, autoAll)
	ctx := context.Background()
	e.fw.Set(drivertest.WithIndeterminateAfter(1))
	e.sw.Set(drivertest.WithLatency(0, 20*time.Millisecond)) // let both changes reach the firewall together
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if _, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: fmt.Sprintf("d%d", i), Address: addr(fmt.Sprintf("10.10.10.%d", i+1))}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Wait until the firewall has broken a session (the two ops may reach it in one batch or,
	// on the kept session, in two), then let it behave.
	deadline := time.Now().Add(20 * time.Second)
	for e.fw.Breaks() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the firewall never broke a session")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.fw.Set(drivertest.WithIndeterminateAfter(-1))
	e.waitApplied(t, 2, 30*time.Second)
	for _, r := range e.fw.AllRoutes() {
		if c := e.fw.OpsApplied(r); c != 1 {
			t.Errorf("fw1: %s sent %d times, want once", r, c)
		}
	}
	if got := len(e.fw.AllRoutes()); got != 2 {
		t.Errorf("fw1 holds %d routes, want 2", got)
	}
	// The session that broke mid-push was not used again: a new login read the device.
	if got := e.fw.Sessions(); got < 2 {
		t.Errorf("fw1 logins = %d, want at least 2: a session that broke after sending is dropped", got)
	}
}

// TestPeriodicTaskRuns: a periodic task (the drift check in serve) is run by River.
func TestPeriodicTaskRuns(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	newEnv(t, autoAll, func(c *apply.Config) {
		c.Periodic = []apply.Periodic{{Name: "count", Interval: 200 * time.Millisecond, Run: func(context.Context) error {
			runs.Add(1)
			return nil
		}}}
	})
	deadline := time.Now().Add(30 * time.Second)
	for runs.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the periodic task ran %d times in 30s, want at least 2", runs.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
