package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// get sends GET url with an optional bearer token and returns the status.
func get(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := apitest.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsProtection starts Main with each metrics setting and checks who gets /metrics
// where: on the API's listener unless metrics.listen moves it, behind any live token when
// metrics.require_token asks for one.
func TestMetricsProtection(t *testing.T) {
	tests := []struct {
		name    string
		metrics string // the config's metrics section
		// statuses of GET /metrics without a token on the API listener and on metrics.listen,
		// and with a bootstrap token where /metrics is served
		apiNoToken, ownNoToken, withToken int
	}{
		{name: "default: open on the API listener", metrics: "",
			apiNoToken: 200, withToken: 200},
		{name: "require_token", metrics: "metrics:\n  require_token: true\n",
			apiNoToken: 401, withToken: 200},
		{name: "own listener", metrics: "metrics:\n  listen: \"localhost:0\"\n",
			apiNoToken: 404, ownNoToken: 200, withToken: 200},
		{name: "own listener with token", metrics: "metrics:\n  listen: \"localhost:0\"\n  require_token: true\n",
			apiNoToken: 404, ownNoToken: 401, withToken: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _ := startMain(t, testConfig+tt.metrics)
			token, err := m.DB.CreateToken(context.Background(), "test", fabric.Token{Name: "scraper", Role: fabric.RoleBootstrap}, nil)
			if err != nil {
				t.Fatal(err)
			}
			api := "http://" + m.Addr() + "/metrics"
			if got := get(t, api, ""); got != tt.apiNoToken {
				t.Errorf("API listener, no token: /metrics = %d, want %d", got, tt.apiNoToken)
			}
			served := api
			if tt.ownNoToken != 0 {
				if m.MetricsAddr() == "" {
					t.Fatal("metrics.listen is set but MetricsAddr() is empty")
				}
				served = "http://" + m.MetricsAddr() + "/metrics"
				if got := get(t, served, ""); got != tt.ownNoToken {
					t.Errorf("metrics listener, no token: /metrics = %d, want %d", got, tt.ownNoToken)
				}
				// Not through the contract's client: this listener is not the API.
				resp, err := http.Get("http://" + m.MetricsAddr() + "/v1/hosts")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 404 {
					t.Errorf("metrics listener serves the API: /v1/hosts = %d, want 404", resp.StatusCode)
				}
			}
			if got := get(t, served, token); got != tt.withToken {
				t.Errorf("with a token: %s = %d, want %d", served, got, tt.withToken)
			}
		})
	}
}

// TestWriteTimeoutOutlastsLongestWait: the longest long-poll must end before the server's
// write timeout does, or the client gets an empty reply instead of the host.
func TestWriteTimeoutOutlastsLongestWait(t *testing.T) {
	m, _, _ := startMain(t, testConfig)
	if wt := m.server.WriteTimeout; wt < httpapi.MaxWait+10*time.Second {
		t.Errorf("WriteTimeout = %s, want at least 10s more than the longest wait (%s)", wt, httpapi.MaxWait)
	}
}

// TestServeRevocationIsImmediate: a token revoked by another process (the CLI) is refused by
// the running service as soon as its hub has heard of it.
func TestServeRevocationIsImmediate(t *testing.T) {
	m, _, cfgPath := startMain(t, testConfig)
	waitCondition(t, "the hub connects", m.Hub.Connected)
	token, err := m.DB.CreateToken(context.Background(), "test", fabric.Token{Name: "ci", Role: fabric.RoleViewer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hosts := "http://" + m.Addr() + "/v1/hosts"
	if got := get(t, hosts, token); got != 200 {
		t.Fatalf("/v1/hosts = %d, want 200", got)
	}
	heard := m.Hub.Subscribe(postgres.ChannelTokens, "ci")
	defer heard.Close()
	if out, err := run(t, "token", "revoke", "ci", "--config", cfgPath); err != nil {
		t.Fatalf("token revoke: %v\n%s", err, out)
	}
	select {
	case <-heard.C:
	case <-time.After(10 * time.Second):
		t.Fatal("the service's hub did not hear the revocation within 10s")
	}
	if got := get(t, hosts, token); got != 401 {
		t.Errorf("/v1/hosts with the revoked token = %d, want 401", got)
	}
}

// TestServeStartsAndStopsItsListener: Main.Listen starts the hub's LISTEN connection and
// Main.Close ends it.
func TestServeStartsAndStopsItsListener(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	ctx := context.Background()
	url := pgtest.URL(t)
	cfg, err := loadConfig(writeConfig(t, strings.ReplaceAll(testConfig, "%DB%", url)), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Log: slog.New(slog.DiscardHandler), Migrate: true}
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(ctx); err != nil {
		m.DB.Close()
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	listeners := func() int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = 'returnpath-listener' AND state = 'idle'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitCondition(t, "one listener", func() bool { return listeners() == 1 })
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "no listener after Close", func() bool { return listeners() == 0 })
}

// waitCondition waits up to 10 s for cond to hold.
func waitCondition(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoggerWritesDurationsForPeople: the service's JSON log never writes a duration as bare
// nanoseconds; whatever logs a time.Duration gets a Go duration string.
func TestLoggerWritesDurationsForPeople(t *testing.T) {
	var b strings.Builder
	newLoggerTo(&b, "info").Info("x", "retry_in", 1500*time.Millisecond, slog.Group("g", slog.Duration("wait", 2*time.Minute)))
	var got map[string]any
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if got["retry_in"] != "1.5s" || got["g"].(map[string]any)["wait"] != "2m0s" {
		t.Errorf("logged %s, want durations as Go duration strings", b.String())
	}
}
