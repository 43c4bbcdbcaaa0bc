package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// leaseEnv is newEnv with leases on (a one-hour ttl, ten minutes' grace) and a clock the test
// moves.
func leaseEnv(t *testing.T) (*env, *atomic.Pointer[time.Time]) {
	t.Helper()
	return leaseEnvFor(t, inventory())
}

// leaseEnvFor is leaseEnv serving inventory inv.
func leaseEnvFor(t *testing.T, inv *fabric.Inventory) (*env, *atomic.Pointer[time.Time]) {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t)
	var now atomic.Pointer[time.Time]
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	now.Store(&start)
	db.Now = func() time.Time { return *now.Load() }
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	preview := func(_ string, ops []fabric.RouteOp) ([]string, error) { return []string{ops[0].String()}, nil }
	changes := postgres.NewChanges(db, inv, preview, fabric.ApprovalPolicy{FourEyes: true})
	hosts := postgres.NewHosts(db, inv)
	hosts.SetChanges(changes)
	hosts.SetLeases(fabric.LeasePolicy{TTL: time.Hour, Grace: 10 * time.Minute, OnExpiry: fabric.LeasePropose})
	srv := httpapi.New(httpapi.Config{MaxBodyBytes: 4096}, inv, hosts, db, slog.New(slog.DiscardHandler))
	srv.SetChanges(changes)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e := &env{url: ts.URL, db: db, changes: changes, tokens: map[fabric.Role]string{}}
	for _, role := range []fabric.Role{fabric.RoleViewer, fabric.RoleBootstrap, fabric.RoleReviewer, fabric.RoleAdmin} {
		secret, err := db.CreateToken(ctx, "test", fabric.Token{Name: string(role) + "-token", Role: role, Owner: string(role)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = secret
	}
	return e, &now
}

func TestLeasesOverHTTP(t *testing.T) {
	e, now := leaseEnv(t)
	advance := func(d time.Duration) { n := now.Load().Add(d); now.Store(&n) }
	resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d1","address":"10.10.10.101"}`)
	lease, _ := body["lease"].(map[string]any)
	if resp.StatusCode != http.StatusCreated || lease == nil || lease["stale"] != false || lease["expires_at"] != "2026-12-02T11:00:00Z" {
		t.Fatalf("POST /v1/hosts = %d, lease %v; want 201 with a lease expiring at 11:00", resp.StatusCode, body["lease"])
	}
	e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d2","address":"10.10.10.102"}`)

	advance(71 * time.Minute) // both past ttl + grace
	resp, body = e.do(t, "POST", "/v1/hosts/d1/renew", fabric.RoleBootstrap, "")
	lease, _ = body["lease"].(map[string]any)
	if resp.StatusCode != http.StatusOK || lease == nil || lease["stale"] != false || lease["renewed_at"] != "2026-12-02T11:11:00Z" {
		t.Fatalf("POST /v1/hosts/d1/renew = %d, lease %v; want 200, renewed at 11:11", resp.StatusCode, body["lease"])
	}
	resp, body = e.do(t, "GET", "/v1/hosts?stale=true&limit=1", fabric.RoleViewer, "")
	items, _ := body["items"].([]any)
	if resp.StatusCode != http.StatusOK || len(items) != 1 || items[0].(map[string]any)["name"] != "d2" {
		t.Fatalf("GET /v1/hosts?stale=true = %d %v; want d2 alone", resp.StatusCode, body)
	}
	if got := staleGauge(t, e); got != "1" {
		t.Errorf("returnpath_hosts_stale = %s, want 1", got)
	}

	for _, tt := range []struct {
		name, method, path string
		role               fabric.Role
		status             int
		field              string
	}{
		{name: "stale not a boolean", method: "GET", path: "/v1/hosts?stale=yes", role: fabric.RoleViewer, status: http.StatusUnprocessableEntity, field: "stale"},
		{name: "renew an unknown host", method: "POST", path: "/v1/hosts/nope/renew", role: fabric.RoleBootstrap, status: http.StatusNotFound},
		{name: "renew as a viewer", method: "POST", path: "/v1/hosts/d1/renew", role: fabric.RoleViewer, status: http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, tt.method, tt.path, tt.role, "")
			if resp.StatusCode != tt.status || (tt.field != "" && body["field"] != tt.field) {
				t.Errorf("%s %s = %d, field %v; want %d naming %q", tt.method, tt.path, resp.StatusCode, body["field"], tt.status, tt.field)
			}
		})
	}
}

// TestNoLeaseFieldWithLeasesOff: without leases, host JSON has no lease and ?stale=true is
// refused naming the parameter.
func TestNoLeaseFieldWithLeasesOff(t *testing.T) {
	e := newEnv(t)
	_, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d1","address":"10.10.10.101"}`)
	if _, ok := body["lease"]; ok {
		t.Errorf("host JSON with leases off has lease %v", body["lease"])
	}
	resp, body := e.do(t, "GET", "/v1/hosts?stale=true", fabric.RoleViewer, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || body["field"] != "stale" {
		t.Errorf("GET /v1/hosts?stale=true with leases off = %d %v; want 422 naming stale", resp.StatusCode, body)
	}
}

func staleGauge(t *testing.T, e *env) string {
	t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "returnpath_hosts_stale "); ok {
			return v
		}
	}
	t.Fatalf("/metrics has no returnpath_hosts_stale:\n%s", b)
	return ""
}
