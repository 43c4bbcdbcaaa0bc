package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// countingHosts counts host reads and signals each one.
type countingHosts struct {
	httpapi.HostRegistry
	reads atomic.Int64
	read  chan struct{}
}

func (c *countingHosts) Host(ctx context.Context, name string) (fabric.Host, error) {
	h, err := c.HostRegistry.Host(ctx, name)
	c.reads.Add(1)
	select {
	case c.read <- struct{}{}:
	default:
	}
	return h, err
}

// waitRead waits for the next host read.
func (c *countingHosts) waitRead(t *testing.T) {
	t.Helper()
	select {
	case <-c.read:
	case <-time.After(10 * time.Second):
		t.Fatal("no host read within 10s")
	}
}

// waitEnv is an API whose long-polls wake on a real notification hub. The safety re-read is
// an hour away: a long-poll that answers within the test was woken by the hub.
type waitEnv struct {
	*env
	hosts     *countingHosts
	connected chan struct{} // one per hub (re)connect
}

func newWaitEnv(t *testing.T, cfg httpapi.Config) *waitEnv {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t)
	inv := inventory()
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	we := &waitEnv{hosts: &countingHosts{HostRegistry: postgres.NewHosts(db, inv), read: make(chan struct{}, 100)},
		connected: make(chan struct{}, 10)}
	hub := postgres.NewHub(db.Pool.Config().ConnConfig, slog.New(slog.DiscardHandler))
	hub.Handle(postgres.ChannelHost, func(e postgres.Event) {
		if e.Kind == postgres.Connected {
			we.connected <- struct{}{}
		}
	})
	hub.Start(ctx)
	t.Cleanup(hub.Close)
	we.waitConnected(t)

	cfg.LongPollRecheck = time.Hour
	srv := httpapi.New(cfg, inv, we.hosts, db, slog.New(slog.DiscardHandler))
	srv.SetHostWatcher(hub)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	we.env = &env{url: ts.URL, db: db, tokens: map[fabric.Role]string{}}
	for _, role := range []fabric.Role{fabric.RoleViewer, fabric.RoleBootstrap, fabric.RoleReviewer, fabric.RoleAdmin} {
		secret, err := db.CreateToken(ctx, "test", fabric.Token{Name: string(role) + "-token", Role: role, Owner: string(role)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		we.tokens[role] = secret
	}
	if resp, body := we.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"docker-01","address":"10.10.10.101"}`); resp.StatusCode != 201 {
		t.Fatalf("register = %d %v", resp.StatusCode, body)
	}
	return we
}

func (we *waitEnv) waitConnected(t *testing.T) {
	t.Helper()
	select {
	case <-we.connected:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub did not connect within 10s")
	}
}

type pollResult struct {
	status int
	body   map[string]any
}

// startPoll sends GET /v1/hosts/docker-01?wait=active in the background and waits until the
// server has read the host once (so the long-poll is waiting).
func (we *waitEnv) startPoll(t *testing.T, role fabric.Role) <-chan pollResult {
	t.Helper()
	out := make(chan pollResult, 1)
	req, err := http.NewRequest("GET", we.url+"/v1/hosts/docker-01?wait=active&timeout=60s", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+we.tokens[role])
	client := apitest.Client(t)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			out <- pollResult{status: -1}
			return
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		out <- pollResult{status: resp.StatusCode, body: body}
	}()
	we.hosts.waitRead(t)
	return out
}

func (we *waitEnv) activate(t *testing.T, quietly bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := we.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if quietly {
		// Triggers off for this transaction: a change the hub cannot hear of.
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE hosts SET state = 'active' WHERE name = 'docker-01'`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func pollDone(t *testing.T, c <-chan pollResult) pollResult {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the long-poll did not answer within 20s")
		return pollResult{}
	}
}

// TestLongPollWakesOnNotification: a waiting long-poll reads the host once, then once more
// when notified that it became active: no polling.
func TestLongPollWakesOnNotification(t *testing.T) {
	t.Parallel()
	we := newWaitEnv(t, httpapi.Config{})
	poll := we.startPoll(t, fabric.RoleViewer)
	we.activate(t, false)
	r := pollDone(t, poll)
	if r.status != 200 || r.body["state"] != "active" {
		t.Fatalf("long-poll = %d %v, want 200 and state active", r.status, r.body)
	}
	if n := we.hosts.reads.Load(); n != 2 {
		t.Errorf("the long-poll read the host %d times, want 2 (once at first, once when notified)", n)
	}
}

// TestLongPollSurvivesListenerReconnect: the host becomes active while the hub cannot hear it;
// when the hub's connection is dropped and comes back, the waiter re-reads and answers.
func TestLongPollSurvivesListenerReconnect(t *testing.T) {
	t.Parallel()
	we := newWaitEnv(t, httpapi.Config{})
	poll := we.startPoll(t, fabric.RoleViewer)
	we.activate(t, true)
	var n int
	err := we.db.Pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'returnpath-listener'`).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminate the listener: %d, %v", n, err)
	}
	we.waitConnected(t)
	r := pollDone(t, poll)
	if r.status != 200 || r.body["state"] != "active" {
		t.Fatalf("long-poll = %d %v, want 200 and state active", r.status, r.body)
	}
	if n := we.hosts.reads.Load(); n != 2 {
		t.Errorf("the long-poll read the host %d times, want 2 (once at first, once on the resync)", n)
	}
}

// TestLongPollCaps: beyond the per-token and the overall cap a long-poll is refused with 429
// and Retry-After, before the host is read; slots free up when long-polls end.
func TestLongPollCaps(t *testing.T) {
	t.Parallel()
	we := newWaitEnv(t, httpapi.Config{LongPollsPerToken: 1, LongPolls: 2})
	first := we.startPoll(t, fabric.RoleViewer)
	second := we.startPoll(t, fabric.RoleReviewer)
	tests := []struct {
		name  string
		role  fabric.Role
		field string
	}{
		{name: "the same token again", role: fabric.RoleViewer, field: "limits.long_polls_per_token"},
		{name: "a third token", role: fabric.RoleAdmin, field: "limits.long_polls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reads := we.hosts.reads.Load()
			e := we.env
			resp, body := e.do(t, "GET", "/v1/hosts/docker-01?wait=active&timeout=60s", tt.role, "")
			if resp.StatusCode != http.StatusTooManyRequests || body["code"] != fabric.ETOOMANY || body["field"] != tt.field {
				t.Fatalf("GET = %d %v, want 429 %s on %s", resp.StatusCode, body, fabric.ETOOMANY, tt.field)
			}
			if ra := resp.Header.Get("Retry-After"); ra == "" {
				t.Error("no Retry-After header")
			}
			if we.hosts.reads.Load() != reads {
				t.Error("a refused long-poll read the host")
			}
			// A plain read is no long-poll: never capped.
			if resp, _ := e.do(t, "GET", "/v1/hosts/docker-01", tt.role, ""); resp.StatusCode != 200 {
				t.Errorf("plain GET = %d, want 200", resp.StatusCode)
			}
		})
	}
	we.activate(t, false)
	for _, c := range []<-chan pollResult{first, second} {
		if r := pollDone(t, c); r.status != 200 {
			t.Errorf("a waiting long-poll answered %d, want 200", r.status)
		}
	}
	if resp, body := we.do(t, "GET", "/v1/hosts/docker-01?wait=active", fabric.RoleViewer, ""); resp.StatusCode != 200 {
		t.Errorf("after the long-polls ended, a new one = %d %v, want 200", resp.StatusCode, body)
	}
}
