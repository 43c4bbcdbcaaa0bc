package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// twoRackConfig is testConfig with a second segment, rack2, on a migrated database.
func twoRackConfig(t *testing.T) string {
	t.Helper()
	const rack2 = `  - name: rack2
    hosts: 10.10.11.0/24
    pool: docker
    route_via:
      - device: sw1
        next_hop: host
devices:`
	cfg := strings.ReplaceAll(testConfig, "%DB%", pgtest.URL(t))
	return writeConfig(t, strings.Replace(cfg, "devices:", rack2, 1))
}

// TestTokenCreateAndList: tokens get owners and segment scopes, shown by token list; the
// secret is alone on the last line; bad owners, scopes and reserved names are refused naming
// the flag, and write nothing.
func TestTokenCreateAndList(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	cfg := twoRackConfig(t)
	created := []struct {
		args []string
		want string // what the confirmation line says
	}{
		{args: []string{"--name", "rack-boot", "--role", "bootstrap", "--segments", "rack1,rack2"}, want: "segments rack1,rack2"},
		{args: []string{"--name", "any-boot", "--role", "bootstrap"}, want: "segments all"},
		{args: []string{"--name", "alice-rev", "--role", "reviewer", "--owner", "alice"}, want: "owner alice"},
		{args: []string{"--name", "root", "--role", "admin", "--owner", "bob"}, want: "owner bob"},
	}
	for _, tt := range created {
		out, err := run(t, append([]string{"token", "create", "--config", cfg}, tt.args...)...)
		if err != nil {
			t.Fatalf("token create %v: %v\n%s", tt.args, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if secret := lines[len(lines)-1]; !strings.HasPrefix(secret, "rp_") || strings.ContainsAny(secret, " \t") {
			t.Errorf("token create %v: last line %q, want the secret alone", tt.args, secret)
		}
		if !strings.Contains(out, tt.want) {
			t.Errorf("token create %v said %q, want it to mention %q", tt.args, out, tt.want)
		}
	}

	refused := []struct {
		name string
		args []string
		flag string // the flag the error must name
	}{
		{name: "reviewer without owner", args: []string{"--name", "r2", "--role", "reviewer"}, flag: "--owner"},
		{name: "admin without owner", args: []string{"--name", "a2", "--role", "admin"}, flag: "--owner"},
		{name: "reserved apply", args: []string{"--name", "apply", "--role", "viewer"}, flag: "--name"},
		{name: "reserved drift-check", args: []string{"--name", "drift-check", "--role", "reviewer", "--owner", "carol"}, flag: "--name"},
		{name: "reserved system", args: []string{"--name", "system", "--role", "bootstrap"}, flag: "--name"},
		{name: "reserved cli", args: []string{"--name", "cli", "--role", "bootstrap"}, flag: "--name"},
		{name: "unknown segment", args: []string{"--name", "b2", "--role", "bootstrap", "--segments", "rack1,rack9"}, flag: "--segments"},
		{name: "scoped reviewer", args: []string{"--name", "r3", "--role", "reviewer", "--owner", "carol", "--segments", "rack1"}, flag: "--segments"},
		{name: "empty scope", args: []string{"--name", "b3", "--role", "bootstrap", "--segments", ""}, flag: "--segments"},
	}
	for _, tt := range refused {
		out, err := run(t, append([]string{"token", "create", "--config", cfg}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("%s: token create = %v (%s), want an error naming %s", tt.name, err, out, tt.flag)
		}
		if strings.Contains(out, "rp_") {
			t.Errorf("%s: a refused create printed a secret: %s", tt.name, out)
		}
	}

	out, err := run(t, "token", "list", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+len(created) {
		t.Fatalf("token list has %d lines, want a header and %d tokens (refused ones write nothing):\n%s", len(lines), len(created), out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME ROLE OWNER SEGMENTS CREATED REVOKED" {
		t.Errorf("header = %q", lines[0])
	}
	want := map[string][]string{ // name -> role, owner, segments
		"alice-rev": {"reviewer", "alice", "all"},
		"any-boot":  {"bootstrap", "-", "all"},
		"rack-boot": {"bootstrap", "-", "rack1,rack2"},
		"root":      {"admin", "bob", "all"},
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		w, ok := want[f[0]]
		if !ok || len(f) < 4 || strings.Join(f[1:4], " ") != strings.Join(w, " ") {
			t.Errorf("token list row %q, want role, owner, segments %v", l, w)
		}
	}
}

// TestServeWiresLimits: the limits section of the configuration reaches the running service.
func TestServeWiresLimits(t *testing.T) {
	m, _, cfgPath := startMain(t, testConfig+"limits:\n  registrations_per_minute: 3\n  pending_per_segment: 2\n")
	out, err := run(t, "token", "create", "--config", cfgPath, "--name", "boot", "--role", "bootstrap")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	client := apitest.Client(t)
	tests := []struct {
		name      string
		host      string
		want      int
		wantLimit string // the configuration key the refusal names
	}{
		{name: "first", host: "10.10.10.1", want: http.StatusCreated},
		{name: "second", host: "10.10.10.2", want: http.StatusCreated},
		{name: "past the pending cap", host: "10.10.10.3", want: http.StatusTooManyRequests, wantLimit: "limits.pending_per_segment"},
		{name: "past the rate limit", host: "10.10.10.4", want: http.StatusTooManyRequests, wantLimit: "limits.registrations_per_minute"},
	}
	for i, tt := range tests {
		body := fmt.Sprintf(`{"name":"d%d","address":%q}`, i, tt.host)
		req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/v1/hosts", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: POST /v1/hosts = %d %s, want %d", tt.name, resp.StatusCode, b, tt.want)
			continue
		}
		if tt.wantLimit != "" && (resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), tt.wantLimit)) {
			t.Errorf("%s: %s (Retry-After %q), want a refusal naming %s with Retry-After", tt.name, b, resp.Header.Get("Retry-After"), tt.wantLimit)
		}
	}
}
