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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// clock is a settable clock for the rate limit.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// limitEnv is a server over two segments, rack1 (10.10.10.0/24) and rack2 (10.10.11.0/24),
// with the given limits and a token per name.
type limitEnv struct {
	url    string
	db     *postgres.DB
	client *http.Client
	clock  *clock
	tokens map[string]string
}

func newLimitEnv(t *testing.T, cfg httpapi.Config, pendingCap int, tokens ...fabric.Token) *limitEnv {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t)
	inv := inventory()
	rack2 := inv.Segments[0]
	rack2.Name, rack2.Hosts = "rack2", netip.MustParsePrefix("10.10.11.0/24")
	inv.Segments = append(inv.Segments, rack2)
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	e := &limitEnv{db: db, client: apitest.Client(t), clock: &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}, tokens: map[string]string{}}
	cfg.Now = e.clock.Now
	hosts := postgres.NewHosts(db, inv)
	hosts.SetPendingCap(pendingCap)
	srv := httpapi.New(cfg, inv, hosts, db, slog.New(slog.DiscardHandler))
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e.url = ts.URL
	for _, tok := range tokens {
		secret, err := db.CreateToken(ctx, "test", tok, inv)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[tok.Name] = secret
	}
	return e
}

type answer struct {
	status     int
	retryAfter string
	code       string
	detail     string
}

// send makes one request as token and returns what the tests look at; errors are returned,
// not reported, so that any goroutine or subtest may call it.
func (e *limitEnv) send(method, path, token, body string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens[token])
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &p); err != nil {
			return answer{}, fmt.Errorf("problem body %q: %w", b, err)
		}
	}
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), code: p.Code, detail: p.Detail}, nil
}

func (e *limitEnv) register(token, name, address string) (answer, error) {
	return e.send("POST", "/v1/hosts", token, fmt.Sprintf(`{"name":%q,"address":%q}`, name, address))
}

func (e *limitEnv) hostCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM hosts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRegistrationRateLimit: a burst past limits.registrations_per_minute gets 429 with
// Retry-After and writes nothing; other tokens are not affected; the bucket refills.
func TestRegistrationRateLimit(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, httpapi.Config{RegistrationsPerMinute: 3}, 0,
		fabric.Token{Name: "boot", Role: fabric.RoleBootstrap}, fabric.Token{Name: "other", Role: fabric.RoleBootstrap})
	for i := range 3 {
		a, err := e.register("boot", fmt.Sprintf("d%d", i), fmt.Sprintf("10.10.10.%d", i+1))
		if err != nil || a.status != http.StatusCreated {
			t.Fatalf("registration %d within the limit = %+v, %v", i, a, err)
		}
	}
	for i := 3; i < 6; i++ {
		a, err := e.register("boot", fmt.Sprintf("d%d", i), fmt.Sprintf("10.10.10.%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		// 3 a minute: one comes back every 20 s.
		if a.status != http.StatusTooManyRequests || a.code != fabric.ETOOMANY || a.retryAfter != "20" {
			t.Errorf("registration %d past the limit = %+v, want 429 too_many_requests with Retry-After 20", i, a)
		}
	}
	if n := e.hostCount(t); n != 3 {
		t.Errorf("hosts after the burst = %d, want 3: refused requests must write nothing", n)
	}
	if a, err := e.register("other", "o1", "10.10.10.50"); err != nil || a.status != http.StatusCreated {
		t.Errorf("another token's registration = %+v, %v; want 201", a, err)
	}
	e.clock.Add(19 * time.Second)
	if a, err := e.register("boot", "d3", "10.10.10.4"); err != nil || a.status != http.StatusTooManyRequests || a.retryAfter != "1" {
		t.Errorf("registration 19 s later = %+v, %v; want 429 with Retry-After 1", a, err)
	}
	e.clock.Add(time.Second)
	if a, err := e.register("boot", "d3", "10.10.10.4"); err != nil || a.status != http.StatusCreated {
		t.Errorf("registration once a place refilled = %+v, %v; want 201", a, err)
	}
	if a, err := e.register("boot", "d4", "10.10.10.5"); err != nil || a.status != http.StatusTooManyRequests {
		t.Errorf("the next registration = %+v, %v; want 429 again", a, err)
	}
	e.clock.Add(time.Hour)
	for i := range 3 {
		if a, err := e.register("boot", fmt.Sprintf("r%d", i), fmt.Sprintf("10.10.10.%d", 100+i)); err != nil || a.status != http.StatusCreated {
			t.Errorf("registration %d after an idle hour = %+v, %v; want 201 (a full bucket)", i, a, err)
		}
	}
}

func TestRegistrationRateLimitOff(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, httpapi.Config{}, 0, fabric.Token{Name: "boot", Role: fabric.RoleBootstrap})
	for i := range 20 {
		if a, err := e.register("boot", fmt.Sprintf("d%d", i), fmt.Sprintf("10.10.10.%d", i+1)); err != nil || a.status != http.StatusCreated {
			t.Fatalf("registration %d without a limit = %+v, %v", i, a, err)
		}
	}
}

// TestPendingCapOverHTTP: past limits.pending_per_segment, 429 with Retry-After; the
// idempotent repeat still answers 200.
func TestPendingCapOverHTTP(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, httpapi.Config{}, 1, fabric.Token{Name: "boot", Role: fabric.RoleBootstrap})
	if a, err := e.register("boot", "d1", "10.10.10.1"); err != nil || a.status != http.StatusCreated {
		t.Fatalf("first registration = %+v, %v", a, err)
	}
	a, err := e.register("boot", "d2", "10.10.10.2")
	if err != nil || a.status != http.StatusTooManyRequests || a.code != fabric.ETOOMANY {
		t.Errorf("registration past the cap = %+v, %v; want 429", a, err)
	}
	if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
		t.Errorf("Retry-After = %q, want whole seconds", a.retryAfter)
	}
	if a, err := e.register("boot", "d1", "10.10.10.1"); err != nil || a.status != http.StatusOK {
		t.Errorf("repeat registration past the cap = %+v, %v; want 200", a, err)
	}
	if a, err := e.register("boot", "d3", "10.10.11.3"); err != nil || a.status != http.StatusCreated {
		t.Errorf("registration in the other segment = %+v, %v; want 201", a, err)
	}
}

// TestSegmentScopeOverHTTP: a bootstrap token scoped to rack1 gets 403 (forbidden, naming
// the segment) for registering or removing hosts in rack2.
func TestSegmentScopeOverHTTP(t *testing.T) {
	t.Parallel()
	e := newLimitEnv(t, httpapi.Config{}, 0,
		fabric.Token{Name: "rack1-boot", Role: fabric.RoleBootstrap, Segments: []string{"rack1"}},
		fabric.Token{Name: "any-boot", Role: fabric.RoleBootstrap})
	if a, err := e.register("any-boot", "r2", "10.10.11.2"); err != nil || a.status != http.StatusCreated {
		t.Fatalf("unscoped registration in rack2 = %+v, %v", a, err)
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		want   int
	}{
		{name: "register in scope", method: "POST", path: "/v1/hosts", body: `{"name":"r1","address":"10.10.10.1"}`, want: http.StatusCreated},
		{name: "register out of scope", method: "POST", path: "/v1/hosts", body: `{"name":"x2","address":"10.10.11.9"}`, want: http.StatusForbidden},
		{name: "remove out of scope", method: "DELETE", path: "/v1/hosts/r2", want: http.StatusForbidden},
		{name: "remove in scope", method: "DELETE", path: "/v1/hosts/r1", want: http.StatusAccepted},
	}
	for _, tt := range tests {
		a, err := e.send(tt.method, tt.path, "rack1-boot", tt.body)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != tt.want {
			t.Errorf("%s: status %d (%s), want %d", tt.name, a.status, a.detail, tt.want)
		}
		if tt.want == http.StatusForbidden && (a.code != fabric.EFORBIDDEN || !strings.Contains(a.detail, "rack2")) {
			t.Errorf("%s: %+v, want code forbidden naming rack2", tt.name, a)
		}
	}
	var state string
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT state FROM hosts WHERE name = 'r2'`).Scan(&state); err != nil || state != "pending" {
		t.Errorf("host r2 after the refused removal: %s, %v", state, err)
	}
	if n := e.hostCount(t); n != 2 {
		t.Errorf("hosts = %d, want 2 (r2 and r1): the refused registration must write nothing", n)
	}
}
