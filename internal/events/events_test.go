package events_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/events"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
	boot = fabric.Actor{Name: "boot", Role: fabric.RoleBootstrap}
	rev  = fabric.Actor{Name: "alice", Role: fabric.RoleReviewer, Owner: "alice"}
)

const secret = "whsec-9f2c4e1b7d"

var allChangeEvents = []fabric.EventKind{fabric.EventChangePending, fabric.EventChangeApproved, fabric.EventChangeApplied,
	fabric.EventChangeRolledBack, fabric.EventChangeFailed}

func inventory() *fabric.Inventory {
	hops := []fabric.Hop{{Device: "sw1", NextHop: fabric.NextHop{Host: true}}, {Device: "fw1", NextHop: fabric.NextHop{Addr: addr("10.10.20.1")}}}
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: pfx("10.210.0.0/16"), SubnetLength: 24}},
		Segments: []fabric.Segment{
			{Name: "rack1", Hosts: pfx("10.10.10.0/24"), Pool: "docker", RouteVia: hops},
			{Name: "rack2", Hosts: pfx("10.10.11.0/24"), Pool: "docker", RouteVia: hops},
		},
		Devices: []fabric.Device{
			{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"},
			{Name: "fw1", Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.12:22"), VRF: "default"},
		},
	}
}

// request is one POST a receiver got.
type request struct {
	delivery, event string
	signed          bool // the signature matched the body under the secret
	body            payload
}

type payload struct {
	Event    string   `json:"event"`
	Time     string   `json:"time"`
	ChangeID int64    `json:"change_id"`
	Kind     string   `json:"kind"`
	Status   string   `json:"status"`
	Host     string   `json:"host"`
	Segment  string   `json:"segment"`
	Devices  []string `json:"devices"`
	Reason   string   `json:"reason"`
	Preview  []struct {
		Device string   `json:"device"`
		Lines  []string `json:"lines"`
	} `json:"preview"`
	URL string `json:"url"`
}

// receiver is an HTTPS webhook receiver that checks every signature. answer picks the status
// of the nth request (from 1); nil answers 200.
type receiver struct {
	srv    *httptest.Server
	answer func(n int, r *http.Request) int
	mu     sync.Mutex
	got    []request
	seen   chan struct{} // one send per request, before it is answered
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request) int) *receiver {
	rc := &receiver{answer: answer, seen: make(chan struct{}, 100)}
	rc.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(b)
		req := request{delivery: r.Header.Get(events.HeaderDelivery), event: r.Header.Get(events.HeaderEvent),
			signed: hmac.Equal([]byte(r.Header.Get(events.HeaderSignature)), []byte("sha256="+hex.EncodeToString(m.Sum(nil))))}
		if err := json.Unmarshal(b, &req.body); err != nil {
			t.Errorf("body is not JSON: %v: %s", err, b)
		}
		if !req.signed {
			t.Errorf("delivery %s: bad signature %q", req.delivery, r.Header.Get(events.HeaderSignature))
		}
		rc.mu.Lock()
		rc.got = append(rc.got, req)
		n := len(rc.got)
		rc.mu.Unlock()
		rc.seen <- struct{}{}
		code := http.StatusOK
		if rc.answer != nil {
			code = rc.answer(n, r)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *receiver) webhook(name string, kinds []fabric.EventKind, segments ...string) events.Webhook {
	pool := rc.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return events.Webhook{Name: name, URL: rc.srv.URL + "/hook", Format: events.FormatJSON, Secret: drivers.Secret(secret), RootCAs: pool,
		Subscription: fabric.Subscription{Events: kinds, Segments: segments}}
}

type env struct {
	db       *postgres.DB
	hosts    *postgres.Hosts
	changes  *postgres.Changes
	store    *postgres.Deliveries
	d        *events.Dispatcher
	inserter *river.Client[pgx.Tx]
	reg      *prometheus.Registry
	logs     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, cfg events.Config) *env {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t)
	inv := inventory()
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]drivers.Config{}
	for _, d := range inv.Devices {
		cfgs[d.Name] = drivers.Config{Name: d.Name, Platform: d.Platform, Address: d.Address, VRF: d.VRF, Managed: inv.ManagedPrefixes()}
	}
	preview := func(dev string, ops []fabric.RouteOp) ([]string, error) {
		return drivertest.FakePreview(cfgs[dev], ops)
	}
	e := &env{db: db, store: postgres.NewDeliveries(db), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	e.changes = postgres.NewChanges(db, inv, preview, fabric.ApprovalPolicy{FourEyes: true})
	e.hosts = postgres.NewHosts(db, inv)
	e.hosts.SetChanges(e.changes)
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if e.d, err = events.New(cfg, db.Pool, e.store, log, e.reg); err != nil {
		t.Fatal(err)
	}
	// The inserter is a client that never starts: jobs are queued whether or not a worker runs.
	e.inserter = e.newClient(t)
	e.d.SetInserter(e.inserter)
	e.changes.SetEventSink(e.d)
	return e
}

// newClient returns a River client working the delivery queue, like the apply engine's.
func (e *env) newClient(t *testing.T) *river.Client[pgx.Tx] {
	t.Helper()
	workers := river.NewWorkers()
	if err := e.d.Register(workers); err != nil {
		t.Fatal(err)
	}
	rc, err := river.NewClient(riverpgxv5.New(e.db.Pool), &river.Config{
		Logger:  slog.New(slog.NewJSONHandler(e.logs, nil)),
		Queues:  map[string]river.QueueConfig{events.Queue: e.d.QueueConfig()},
		Workers: workers, FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// start starts a new worker client, stopped at cleanup.
func (e *env) start(t *testing.T) *river.Client[pgx.Tx] {
	t.Helper()
	rc := e.newClient(t)
	if err := rc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rc.StopAndCancel(ctx)
	})
	return rc
}

// settled waits until no delivery is pending and no delivery job is left to run, and returns
// the deliveries, oldest first.
func (e *env) settled(t *testing.T, within time.Duration) []fabric.Delivery {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		list, _, err := e.store.List(context.Background(), fabric.DeliveryFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var jobs int
		err = e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE queue = $1
			AND state NOT IN ('completed', 'cancelled', 'discarded')`, events.Queue).Scan(&jobs)
		if err != nil {
			t.Fatal(err)
		}
		if jobs == 0 && !slices.ContainsFunc(list, func(d fabric.Delivery) bool { return d.Status == fabric.DeliveryPending }) {
			slices.Reverse(list)
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not settled after %s (%d jobs left): %+v", within, jobs, list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) register(t *testing.T, name, address string) fabric.Host {
	t.Helper()
	h, created, err := e.hosts.Register(context.Background(), boot, fabric.Registration{Name: name, Address: addr(address)})
	if err != nil || !created {
		t.Fatalf("register %s: %v (created %v)", name, err, created)
	}
	return h
}

// approve approves the host's pending change and returns it.
func (e *env) approve(t *testing.T, h fabric.Host) fabric.Change {
	t.Helper()
	ctx := context.Background()
	c, err := e.changes.Change(ctx, h.Change.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = e.changes.Approve(ctx, rev, c.ID, c.PlanHash); err != nil {
		t.Fatal(err)
	}
	return c
}

// session records, as an apply session on device would, the given status for every pending
// op of change c on device.
func (e *env) session(t *testing.T, c fabric.Change, device string, status fabric.OpStatus) {
	t.Helper()
	ctx := context.Background()
	c, err := e.changes.Change(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var results []postgres.OpResult
	for _, o := range c.Ops {
		if o.Device == device && o.Status == fabric.OpPending {
			r := postgres.OpResult{OpID: o.ID, ChangeID: c.ID, Status: status, Attempted: true}
			if status == fabric.OpFailed {
				r.Error = "refused"
			}
			results = append(results, r)
		}
	}
	if len(results) == 0 {
		t.Fatalf("change %d has no pending op on %s: %+v", c.ID, device, c.Ops)
	}
	if _, err := e.changes.Record(ctx, device, results); err != nil {
		t.Fatal(err)
	}
}

func TestEventsArriveOncePerStateChange(t *testing.T) {
	t.Parallel()
	all := newReceiver(t, nil)
	pendingRack2 := newReceiver(t, nil)
	e := newEnv(t, events.Config{BaseURL: "https://desk.example/", Webhooks: []events.Webhook{
		all.webhook("all", allChangeEvents),
		pendingRack2.webhook("rack2-pending", []fabric.EventKind{fabric.EventChangePending}, "rack2"),
	}})
	e.start(t)

	// d1: pending -> approved -> applied (two stages: sw1, then fw1).
	h1 := e.register(t, "d1", "10.10.10.101")
	c1 := e.approve(t, h1)
	e.session(t, c1, "sw1", fabric.OpApplied)
	e.session(t, c1, "fw1", fabric.OpApplied)
	// d2 (rack2): pending -> approved -> rolled_back (its first op refused: nothing applied).
	h2 := e.register(t, "d2", "10.10.11.102")
	c2 := e.approve(t, h2)
	e.session(t, c2, "sw1", fabric.OpFailed)
	// d3: pending -> approved -> sw1 applied, fw1 refused -> the undo on sw1 refused -> failed.
	h3 := e.register(t, "d3", "10.10.10.103")
	c3 := e.approve(t, h3)
	e.session(t, c3, "sw1", fabric.OpApplied)
	e.session(t, c3, "fw1", fabric.OpFailed)
	e.session(t, c3, "sw1", fabric.OpFailed)
	// A rejected change is no event.
	h4 := e.register(t, "d4", "10.10.10.104")
	if _, err := e.changes.Reject(context.Background(), rev, h4.Change.ID, "not today"); err != nil {
		t.Fatal(err)
	}

	list := e.settled(t, 30*time.Second)
	type ev struct {
		Change int64
		Event  string
	}
	want := []ev{
		{c1.ID, "change.pending"}, {c1.ID, "change.approved"}, {c1.ID, "change.applied"},
		{c2.ID, "change.pending"}, {c2.ID, "change.approved"}, {c2.ID, "change.rolled_back"},
		{c3.ID, "change.pending"}, {c3.ID, "change.approved"}, {c3.ID, "change.failed"},
		{h4.Change.ID, "change.pending"},
	}
	var got []ev
	for _, r := range all.requests() {
		got = append(got, ev{r.body.ChangeID, r.body.Event})
	}
	// Deliveries run concurrently: receivers order events by their time, not by arrival.
	byChangeAndEvent := func(a, b ev) int {
		if a.Change != b.Change {
			return int(a.Change - b.Change)
		}
		return strings.Compare(a.Event, b.Event)
	}
	slices.SortFunc(got, byChangeAndEvent)
	slices.SortFunc(want, byChangeAndEvent)
	if !slices.Equal(got, want) {
		t.Errorf("webhook all got\n%v\nwant\n%v", got, want)
	}
	ids := map[string]bool{}
	for _, r := range all.requests() {
		if ids[r.delivery] {
			t.Errorf("delivery %s arrived twice", r.delivery)
		}
		ids[r.delivery] = true
		if r.event != r.body.Event {
			t.Errorf("delivery %s: header event %q, body event %q", r.delivery, r.event, r.body.Event)
		}
	}
	if len(list) != len(want)+1 {
		t.Errorf("%d deliveries recorded, want %d", len(list), len(want)+1)
	}
	for _, d := range list {
		if d.Status != fabric.DeliveryDelivered || d.Attempts != 1 || d.ResponseStatus != 200 || d.DeliveredAt == nil {
			t.Errorf("delivery %+v, want delivered at the first attempt", d)
		}
	}

	// The body of a pending change: who, where, which devices, and each device's lines.
	got2 := pendingRack2.requests()
	if len(got2) != 1 {
		t.Fatalf("webhook rack2-pending got %d requests, want 1 (d2's pending change)", len(got2))
	}
	b := got2[0].body
	if b.Event != "change.pending" || b.ChangeID != c2.ID || b.Kind != "add" || b.Status != "pending" || b.Host != "d2" ||
		b.Segment != "rack2" || !slices.Equal(b.Devices, []string{"sw1", "fw1"}) || b.URL != "https://desk.example/changes/"+itoa(c2.ID) {
		t.Errorf("pending body = %+v", b)
	}
	if _, err := time.Parse(time.RFC3339Nano, b.Time); err != nil {
		t.Errorf("time %q: %v", b.Time, err)
	}
	if len(b.Preview) != 2 || b.Preview[0].Device != "sw1" || len(b.Preview[0].Lines) == 0 ||
		!strings.Contains(strings.Join(b.Preview[0].Lines, "\n"), "10.210.") {
		t.Errorf("pending preview = %+v", b.Preview)
	}
	if n := testutil.ToFloat64(outcomes(t, e, "all", "delivered")); n != float64(len(want)) {
		t.Errorf("returnpath_webhook_deliveries_total{webhook=all,outcome=delivered} = %v, want %d", n, len(want))
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Errorf("logs hold the secret:\n%s", e.logs.String())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// outcomes returns the counter returnpath_webhook_deliveries_total{webhook,outcome}.
func outcomes(t *testing.T, e *env, webhook, outcome string) prometheus.Collector {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != "returnpath_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["webhook"] == webhook && labels["outcome"] == outcome {
				c.Add(m.GetCounter().GetValue())
			}
		}
	}
	return c
}

func TestServerErrorRetriedOnceWithTheSameDeliveryID(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	e := newEnv(t, events.Config{Webhooks: []events.Webhook{rc.webhook("ops", []fabric.EventKind{fabric.EventChangePending})}})
	e.start(t)
	e.register(t, "d1", "10.10.10.101")
	list := e.settled(t, 30*time.Second)
	got := rc.requests()
	if len(got) != 2 || got[0].delivery != got[1].delivery || got[0].delivery != itoa(list[0].ID) {
		t.Fatalf("requests = %+v, want the same delivery twice", got)
	}
	if d := list[0]; len(list) != 1 || d.Status != fabric.DeliveryDelivered || d.Attempts != 2 || d.ResponseStatus != 200 {
		t.Errorf("deliveries = %+v, want one delivered at the second attempt", list)
	}
	for outcome, want := range map[string]float64{"retried": 1, "delivered": 1, "failed": 0} {
		if n := testutil.ToFloat64(outcomes(t, e, "ops", outcome)); n != want {
			t.Errorf("outcome %s = %v, want %v", outcome, n, want)
		}
	}
}

func TestClientErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		code  int
		tries int
	}{
		{name: "404", code: http.StatusNotFound, tries: 1},
		{name: "400", code: http.StatusBadRequest, tries: 1},
		{name: "redirect", code: http.StatusFound, tries: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, func(int, *http.Request) int { return tt.code })
			e := newEnv(t, events.Config{Webhooks: []events.Webhook{rc.webhook("ops", []fabric.EventKind{fabric.EventChangePending})}})
			e.start(t)
			e.register(t, "d1", "10.10.10.101")
			list := e.settled(t, 30*time.Second)
			if n := len(rc.requests()); n != tt.tries {
				t.Errorf("%d requests, want %d", n, tt.tries)
			}
			if d := list[0]; d.Status != fabric.DeliveryFailed || d.Attempts != 1 || d.ResponseStatus != tt.code || d.LastError == "" {
				t.Errorf("delivery = %+v, want failed at the first attempt with the status", d)
			}
		})
	}
}

func TestRetriesEndAtTheDeadline(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusBadGateway })
	e := newEnv(t, events.Config{RetryDeadline: 300 * time.Millisecond,
		Webhooks: []events.Webhook{rc.webhook("ops", []fabric.EventKind{fabric.EventChangePending})}})
	e.start(t)
	e.register(t, "d1", "10.10.10.101")
	list := e.settled(t, 30*time.Second)
	d := list[0]
	if d.Status != fabric.DeliveryFailed || d.Attempts < 2 || d.ResponseStatus != http.StatusBadGateway || !strings.Contains(d.LastError, "events.retry_deadline") {
		t.Errorf("delivery = %+v, want failed after retries, naming the deadline", d)
	}
	if n := len(rc.requests()); n != d.Attempts {
		t.Errorf("%d requests, %d attempts recorded", n, d.Attempts)
	}
}

// TestRestartResumesDeliveries stops a worker client mid-delivery, queues another event while
// none runs, and starts a new client on the same database, as a restarted serve process does.
func TestRestartResumesDeliveries(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 1 {
			// The first attempt hangs until the worker gives up on it.
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	e := newEnv(t, events.Config{Webhooks: []events.Webhook{rc.webhook("ops", []fabric.EventKind{fabric.EventChangePending})}})
	first := e.newClient(t)
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.register(t, "d1", "10.10.10.101")
	select {
	case <-rc.seen:
	case <-time.After(30 * time.Second):
		t.Fatal("the first delivery never reached the receiver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.StopAndCancel(ctx); err != nil {
		t.Fatal(err)
	}
	once.Do(func() { close(release) })
	e.register(t, "d2", "10.10.10.102") // queued while no worker runs
	if list, _, _ := e.store.List(ctx, fabric.DeliveryFilter{}); len(list) != 2 || list[0].Status != fabric.DeliveryPending || list[1].Status != fabric.DeliveryPending {
		t.Fatalf("before the restart: %+v, want two pending deliveries", list)
	}

	e.start(t)
	list := e.settled(t, 30*time.Second)
	got := rc.requests()
	ids := map[string]int{}
	for _, r := range got {
		ids[r.delivery]++
	}
	if len(list) != 2 || len(ids) != 2 || ids[itoa(list[0].ID)] != 2 || ids[itoa(list[1].ID)] != 1 {
		t.Errorf("requests per delivery = %v, deliveries %+v: want the interrupted one again and the queued one once", ids, list)
	}
	for _, d := range list {
		if d.Status != fabric.DeliveryDelivered {
			t.Errorf("delivery %d is %s after the restart", d.ID, d.Status)
		}
	}
}

// TestSecretNeverLeaves runs deliveries that succeed, time out and fail, and looks for the
// secret in the logs, the deliveries table and the River jobs.
func TestSecretNeverLeaves(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(n int, r *http.Request) int {
		switch n {
		case 1:
			<-r.Context().Done() // the client's timeout
			return http.StatusOK
		case 2:
			return http.StatusUnauthorized
		}
		return http.StatusOK
	})
	hook := rc.webhook("ops", []fabric.EventKind{fabric.EventChangePending, fabric.EventChangeApproved})
	e := newEnv(t, events.Config{Timeout: 200 * time.Millisecond, Webhooks: []events.Webhook{hook,
		{Name: "down", URL: "https://127.0.0.1:1/hook", Secret: drivers.Secret(secret), Format: events.FormatSlack,
			Subscription: fabric.Subscription{Events: []fabric.EventKind{fabric.EventChangePending}}}},
		RetryDeadline: 500 * time.Millisecond})
	e.start(t)
	h := e.register(t, "d1", "10.10.10.101")
	e.approve(t, h)
	list := e.settled(t, 30*time.Second)
	if len(list) != 3 {
		t.Fatalf("deliveries = %+v, want 3", list)
	}
	var dump string
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT (SELECT coalesce(string_agg(w::text, ' '), '') FROM webhook_deliveries w) ||
		(SELECT coalesce(string_agg(j::text, ' '), '') FROM river_job j)`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{"logs": e.logs.String(), "database": dump} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s hold the secret:\n%s", where, text)
		}
	}
	if !strings.Contains(e.logs.String(), "no answer") {
		t.Errorf("the logs do not show the failed attempts:\n%s", e.logs.String())
	}
}
