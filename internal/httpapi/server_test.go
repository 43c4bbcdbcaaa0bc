package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/buildinfo"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func inventory() *fabric.Inventory {
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: netip.MustParsePrefix("10.210.0.0/16"), SubnetLength: 24}},
		Segments: []fabric.Segment{{Name: "rack1", Hosts: netip.MustParsePrefix("10.10.10.0/24"), Pool: "docker",
			RouteVia: []fabric.Hop{
				{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
				{Device: "fw1", NextHop: fabric.NextHop{Addr: netip.MustParseAddr("10.10.20.1")}},
			}}},
		Devices: []fabric.Device{
			{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"},
			{Name: "fw1", Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.12:22"), VRF: "default"},
		},
	}
}

type env struct {
	url    string
	db     *postgres.DB
	tokens map[fabric.Role]string
	// changes is the server's change store (nil in a verify env).
	changes *postgres.Changes
	// unchecked sends requests without holding the responses to api/openapi.yaml.
	unchecked bool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvFor(t, inventory())
}

// newEnvFor is newEnv serving inventory inv.
func newEnvFor(t *testing.T, inv *fabric.Inventory) *env {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t)
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, tokens: map[fabric.Role]string{}}
	e.url, e.changes = serve(t, db, inv)
	for _, role := range []fabric.Role{fabric.RoleViewer, fabric.RoleBootstrap, fabric.RoleReviewer, fabric.RoleAdmin} {
		secret, err := db.CreateToken(ctx, "test", fabric.Token{Name: string(role) + "-token", Role: role, Owner: string(role)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = secret
	}
	return e
}

// serve serves the API for inv on db, with the change workflow (four eyes, nothing
// auto-approved) and no apply engine: tests play the engine's part through the change store.
func serve(t *testing.T, db *postgres.DB, inv *fabric.Inventory) (string, *postgres.Changes) {
	t.Helper()
	preview := func(_ string, ops []fabric.RouteOp) ([]string, error) { return []string{ops[0].String()}, nil }
	changes := postgres.NewChanges(db, inv, preview, fabric.ApprovalPolicy{FourEyes: true})
	hosts := postgres.NewHosts(db, inv)
	hosts.SetChanges(changes)
	srv := httpapi.New(httpapi.Config{MaxBodyBytes: 4096}, inv, hosts, db, slog.New(slog.DiscardHandler))
	srv.SetChanges(changes)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, changes
}

// do sends a request for test t (a subtest passes its own t) and stops the test if it cannot
// be sent; body is sent as is unless empty. The response is held to api/openapi.yaml.
func (e *env) do(t *testing.T, method, path string, role fabric.Role, body string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	resp, out, err := e.send(t, method, path, role, body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// send is do for goroutines other than the test's: it reports a failure to send as an error.
func (e *env) send(t testing.TB, method, path string, role fabric.Role, body string, header ...string) (*http.Response, map[string]any, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := apitest.Client(t)
	if e.unchecked {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp, out, nil
}

func TestRegisterHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"docker-01","address":"10.10.10.101"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/hosts = %d %v", resp.StatusCode, body)
	}
	want := map[string]any{"name": "docker-01", "address": "10.10.10.101", "segment": "rack1", "subnet": "10.210.0.0/24",
		"gateway": "10.210.0.1", "state": "pending", "docker": map[string]any{"bip": "10.210.0.1/24", "ip-masq": false}}
	for k, v := range want {
		if fmt.Sprint(body[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
	if got := resp.Header.Get("Location"); got != "/v1/hosts/docker-01" {
		t.Errorf("Location = %q", got)
	}
	// A retrying bootstrap gets the same allocation with 200.
	resp, again := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"docker-01","address":"10.10.10.101"}`)
	if resp.StatusCode != http.StatusOK || again["subnet"] != "10.210.0.0/24" {
		t.Errorf("repeat = %d %v", resp.StatusCode, again)
	}
	resp, got := e.do(t, "GET", "/v1/hosts/docker-01", fabric.RoleViewer, "")
	if resp.StatusCode != http.StatusOK || got["subnet"] != "10.210.0.0/24" {
		t.Errorf("GET = %d %v", resp.StatusCode, got)
	}
	resp, list := e.do(t, "GET", "/v1/hosts?state=pending&limit=10", fabric.RoleViewer, "")
	if resp.StatusCode != http.StatusOK || len(list["items"].([]any)) != 1 || list["next"] != nil {
		t.Errorf("list = %d %v", resp.StatusCode, list)
	}
	// Its add change was never approved, so nothing of it is on any device: it goes at once.
	resp, del := e.do(t, "DELETE", "/v1/hosts/docker-01", fabric.RoleBootstrap, "")
	if resp.StatusCode != http.StatusOK || del["state"] != "removed" {
		t.Errorf("DELETE = %d %v", resp.StatusCode, del)
	}
	resp, audit := e.do(t, "GET", "/v1/audit?object=host/docker-01", fabric.RoleViewer, "")
	items, _ := audit["items"].([]any)
	if resp.StatusCode != http.StatusOK || len(items) != 3 {
		t.Fatalf("audit = %d %v", resp.StatusCode, audit)
	}
	for i, want := range []string{"host.removed", "host.remove", "host.register"} {
		if e := items[i].(map[string]any); e["action"] != want || e["actor"] != "bootstrap-token" {
			t.Errorf("audit entry %d = %v, want %s by bootstrap-token", i, e, want)
		}
	}
}

// TestBadInput sends every kind of bad request the issue names: each gets a 4xx problem
// naming the field, and nothing is written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if resp, _ := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"taken","address":"10.10.10.50","subnet":"10.210.10.0/24"}`); resp.StatusCode != 201 {
		t.Fatal("setup registration failed")
	}
	tests := []struct {
		name      string
		role      fabric.Role
		body      string
		header    []string
		status    int
		wantField string
	}{
		{"malformed JSON", fabric.RoleBootstrap, `{"name":`, nil, 400, ""},
		{"not an object", fabric.RoleBootstrap, `[1,2]`, nil, 400, ""},
		{"two objects", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.1"}{}`, nil, 400, ""},
		{"unknown field", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.1","color":"red"}`, nil, 400, "color"},
		{"wrong type", fabric.RoleBootstrap, `{"name":5,"address":"10.10.10.1"}`, nil, 400, "name"},
		{"body over the limit", fabric.RoleBootstrap, `{"name":"` + strings.Repeat("a", 5000) + `","address":"10.10.10.1"}`, nil, 413, ""},
		{"missing name", fabric.RoleBootstrap, `{"address":"10.10.10.1"}`, nil, 422, "name"},
		{"name with spaces", fabric.RoleBootstrap, `{"name":"a b","address":"10.10.10.1"}`, nil, 422, "name"},
		{"name with newline", fabric.RoleBootstrap, `{"name":"a\nexit","address":"10.10.10.1"}`, nil, 422, "name"},
		{"name with shell", fabric.RoleBootstrap, `{"name":"a;$(reboot)","address":"10.10.10.1"}`, nil, 422, "name"},
		{"name with CLI metacharacter", fabric.RoleBootstrap, `{"name":"a|include","address":"10.10.10.1"}`, nil, 422, "name"},
		{"300-char name", fabric.RoleBootstrap, `{"name":"` + strings.Repeat("a", 300) + `","address":"10.10.10.1"}`, nil, 422, "name"},
		{"missing address", fabric.RoleBootstrap, `{"name":"a"}`, nil, 422, "address"},
		{"octet 300", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.300"}`, nil, 422, "address"},
		{"IPv6", fabric.RoleBootstrap, `{"name":"a","address":"2001:db8::1"}`, nil, 422, "address"},
		{"network address", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.0"}`, nil, 422, "address"},
		{"broadcast", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.255"}`, nil, 422, "address"},
		{"address in no segment", fabric.RoleBootstrap, `{"name":"a","address":"10.99.0.1"}`, nil, 422, "address"},
		{"subnet host bits", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.1","subnet":"10.210.10.5/24"}`, nil, 422, "subnet"},
		{"subnet /33", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.1","subnet":"10.210.10.0/33"}`, nil, 422, "subnet"},
		{"subnet outside every pool", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.1","subnet":"192.168.0.0/24"}`, nil, 422, "subnet"},
		{"subnet taken", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.1","subnet":"10.210.10.0/24"}`, nil, 409, "subnet"},
		{"same name other address", fabric.RoleBootstrap, `{"name":"taken","address":"10.10.10.1"}`, nil, 409, "address"},
		{"wrong content type", fabric.RoleBootstrap, `{"name":"a","address":"10.10.10.1"}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"missing token", "", `{"name":"a","address":"10.10.10.1"}`, nil, 401, ""},
		{"unknown token", "", `{"name":"a","address":"10.10.10.1"}`, []string{"Authorization", "Bearer rp_nope"}, 401, ""},
		{"viewer token on POST", fabric.RoleViewer, `{"name":"a","address":"10.10.10.1"}`, nil, 403, ""},
		{"reviewer token on POST", fabric.RoleReviewer, `{"name":"a","address":"10.10.10.1"}`, nil, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, "POST", "/v1/hosts", tt.role, tt.body, tt.header...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d: %v", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != httpapi.ProblemContentType {
				t.Errorf("Content-Type = %q", ct)
			}
			if body["field"] != nil && fmt.Sprint(body["field"]) != tt.wantField || body["field"] == nil && tt.wantField != "" {
				t.Errorf("field = %v, want %q (%v)", body["field"], tt.wantField, body["detail"])
			}
			if body["detail"] == "" || body["request_id"] == "" {
				t.Errorf("problem lacks detail or request_id: %v", body)
			}
		})
	}
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM hosts`).Scan(&n); err != nil || n != 1 {
		t.Errorf("hosts after bad input = %d, %v; want only the setup host", n, err)
	}
}

func TestRevokedToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.db.RevokeToken(context.Background(), "test", "viewer-token"); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(t, "GET", "/v1/hosts", fabric.RoleViewer, "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("revoked token: %d %v", resp.StatusCode, body)
	}
}

func TestInventoryEndpointsNeverShowSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range []string{"/v1/pools", "/v1/segments", "/v1/devices"} {
		resp, body := e.do(t, "GET", p, fabric.RoleViewer, "")
		if resp.StatusCode != 200 || len(body["items"].([]any)) == 0 {
			t.Errorf("GET %s = %d %v", p, resp.StatusCode, body)
		}
		b, _ := json.Marshal(body)
		if strings.Contains(strings.ToLower(string(b)), "password") {
			t.Errorf("GET %s shows a password field: %s", p, b)
		}
	}
	_, pools := e.do(t, "GET", "/v1/pools", fabric.RoleViewer, "")
	pool := pools["items"].([]any)[0].(map[string]any)
	if pool["size"] != float64(256) || pool["private"] != true { // 10.210.0.0/16 is RFC 1918 space
		t.Errorf("pool = %v", pool)
	}
}

func TestQueryValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, q := range []struct{ path, field string }{
		{"/v1/hosts?limit=0", "limit"}, {"/v1/hosts?limit=abc", "limit"}, {"/v1/hosts?state=gone", "state"},
		{"/v1/hosts?segment=nope", "segment"}, {"/v1/audit?before=-1", "before"},
	} {
		resp, body := e.do(t, "GET", q.path, fabric.RoleViewer, "")
		if resp.StatusCode != 422 || body["field"] != q.field {
			t.Errorf("GET %s = %d %v, want 422 on %s", q.path, resp.StatusCode, body, q.field)
		}
	}
	if resp, _ := e.do(t, "GET", "/v1/hosts/nope", fabric.RoleViewer, ""); resp.StatusCode != 404 {
		t.Errorf("unknown host = %d", resp.StatusCode)
	}
}

// TestConcurrentRegistrationOverHTTP registers hosts from many clients at once: no 5xx, no
// overlap.
func TestConcurrentRegistrationOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 100
	subnets := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, body, err := e.send(t, "POST", "/v1/hosts", fabric.RoleBootstrap, fmt.Sprintf(`{"name":"h%d","address":"10.10.10.%d"}`, i, i+1))
			if err != nil {
				t.Errorf("h%d: %v", i, err)
				return
			}
			if resp.StatusCode != 201 {
				t.Errorf("h%d: %d %v", i, resp.StatusCode, body)
			}
			subnets[i], _ = body["subnet"].(string)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, s := range subnets {
		if seen[s] {
			t.Errorf("h%d got %s twice", i, s)
		}
		seen[s] = true
	}
}

func TestOperationsEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, body := e.do(t, "GET", p, "", ""); resp.StatusCode != 200 {
			t.Errorf("GET %s = %d %v", p, resp.StatusCode, body)
		}
	}
	e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"m1","address":"10.10.10.7"}`)
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`returnpath_hosts{state="pending"} 1`,
		`returnpath_pool_allocated_subnets{pool="docker"} 1`,
		`returnpath_http_request_duration_seconds_count{code="201",method="POST",route="/v1/hosts"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	t.Parallel()
	db := pgtest.Open(t)
	inv := inventory()
	build := buildinfo.Info{Version: "v1.2.3", Commit: "0123abcd", Date: "2026-02-03T04:05:06Z", GoVersion: "go1.26.8"}
	srv := httpapi.New(httpapi.Config{Build: build}, inv, postgres.NewHosts(db, inv), db, slog.New(slog.DiscardHandler))
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e := &env{url: ts.URL}

	resp, body := e.do(t, "GET", "/healthz", "", "")
	want := map[string]any{"status": "ok", "version": "v1.2.3", "commit": "0123abcd", "build_date": "2026-02-03T04:05:06Z", "go_version": "go1.26.8"}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d", resp.StatusCode)
	}
	if diff := cmp.Diff(body, want); diff != "" {
		t.Errorf("GET /healthz (-got +want):\n%s", diff)
	}

	mresp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if line := `returnpath_build_info{commit="0123abcd",go_version="go1.26.8",version="v1.2.3"} 1`; !strings.Contains(string(b), line) {
		t.Errorf("/metrics lacks %s", line)
	}
}
