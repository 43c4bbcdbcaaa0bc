package main

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/client"
)

// leaseTestConfig is testConfig with leases on. Nothing approves a registration there, so
// hosts stay pending and the reaper (which removes only active hosts) leaves them alone: a
// host set back past its lease stays listed as stale.
const leaseTestConfig = testConfig + `leases: {ttl: 1h, grace: 10m, on_expiry: propose}
`

// cliTokens creates a token of each role with the CLI, as an operator would.
func cliTokens(t *testing.T, cfgPath string, roles ...string) map[string]string {
	t.Helper()
	tokens := map[string]string{}
	for _, role := range roles {
		out, err := run(t, "token", "create", "--config", cfgPath, "--name", role+"-tok", "--role", role, "--owner", role+"-owner")
		if err != nil {
			t.Fatalf("token create: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		tokens[role] = lines[len(lines)-1]
	}
	return tokens
}

// hostListRows returns the rows `host list` printed (without its header), each as its fields.
func hostListRows(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("host list printed no header:\n%s", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

// TestHostRenewAndListStaleRealServer drives `host renew` and `host list [--stale]` against a
// real server with leases on: a host whose renewal is set back past ttl+grace is listed as
// stale (and only with --stale), its renewal makes it live again with an expiry an hour out,
// and renewing a host that does not exist, or with a viewer's token, fails with the server's
// problem.
func TestHostRenewAndListStaleRealServer(t *testing.T) {
	m, _, cfgPath := startMain(t, leaseTestConfig)
	url := "http://" + m.Addr()
	tokens := cliTokens(t, cfgPath, "bootstrap", "viewer")
	t.Setenv("RETURNPATH_SERVER", url)
	t.Setenv("RETURNPATH_TOKEN", tokens["bootstrap"])
	t.Chdir(t.TempDir())
	for _, h := range []struct{ name, addr string }{{"docker-01", "10.10.10.101"}, {"docker-02", "10.10.10.102"}} {
		if out, err := run(t, "host", "register", "--name", h.name, "--address", h.addr); err != nil {
			t.Fatalf("register %s: %v\n%s", h.name, err, out)
		}
	}

	// docker-02 last renewed two hours ago: past its 1h lease and 10m grace.
	ctx := context.Background()
	if _, err := m.DB.Pool.Exec(ctx, `UPDATE hosts SET lease_renewed_at = now() - interval '2 hours' WHERE name = 'docker-02'`); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "host", "list", "--stale")
	if err != nil {
		t.Fatalf("host list --stale: %v\n%s", err, out)
	}
	rows := hostListRows(t, out)
	if len(rows) != 1 || rows[0][0] != "docker-02" || rows[0][len(rows[0])-1] != "(stale)" {
		t.Errorf("host list --stale printed %q, want docker-02 alone, marked stale", rows)
	}
	out, err = run(t, "host", "list", "-o", "json")
	if err != nil {
		t.Fatalf("host list -o json: %v\n%s", err, out)
	}
	var all []client.Host
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatalf("host list -o json is not JSON: %v\n%s", err, out)
	}
	stale := map[string]bool{}
	for _, h := range all {
		if h.Lease == nil {
			t.Fatalf("host %s has no lease with leases on: %+v", h.Name, h)
		}
		stale[h.Name] = h.Lease.Stale
	}
	if want := map[string]bool{"docker-01": false, "docker-02": true}; !maps.Equal(stale, want) {
		t.Errorf("host list -o json: stale %v, want %v", stale, want)
	}

	// docker-02 renews: its lease runs an hour from now and it leaves the stale list.
	before := time.Now().Truncate(time.Second)
	out, err = run(t, "host", "renew", "--name", "docker-02")
	after := time.Now()
	if err != nil {
		t.Fatalf("host renew: %v\n%s", err, out)
	}
	match := regexp.MustCompile(`^host docker-02 renewed: its lease expires at (\S+)\n$`).FindStringSubmatch(out)
	if match == nil {
		t.Fatalf("host renew printed %q", out)
	}
	exp, err := time.Parse(time.RFC3339, match[1])
	if err != nil {
		t.Fatalf("host renew's expiry %q: %v", match[1], err)
	}
	if exp.Before(before.Add(time.Hour)) || exp.After(after.Add(time.Hour)) {
		t.Errorf("docker-02 renewed between %s and %s expires at %s, want an hour after", before, after, exp)
	}
	out, err = run(t, "host", "list", "--stale", "-o", "json")
	if err != nil {
		t.Fatalf("host list --stale -o json: %v\n%s", err, out)
	}
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("host list --stale after the renewal printed %s, want []", out)
	}

	out, err = run(t, "host", "renew", "--name", "docker-01", "-o", "json")
	if err != nil {
		t.Fatalf("host renew -o json: %v\n%s", err, out)
	}
	var h client.Host
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("host renew -o json is not JSON: %v\n%s", err, out)
	}
	if h.Name != "docker-01" || h.Lease == nil || h.Lease.Stale || h.Lease.ExpiresAt.Sub(h.Lease.RenewedAt) != time.Hour {
		t.Errorf("host renew -o json = %+v, lease %+v; want docker-01 with an hour's live lease", h, h.Lease)
	}

	// The server's refusals come through as its problems.
	_, err = run(t, "host", "renew", "--name", "docker-99")
	if !client.IsNotFound(err) {
		t.Errorf("renewing a host that does not exist = %v, want not found", err)
	}
	_, err = run(t, "host", "renew", "--name", "docker-01", "--token", tokens["viewer"])
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 403 {
		t.Errorf("renewing with a viewer's token = %v, want 403", err)
	}
	if _, err := run(t, "host", "renew"); err == nil || !strings.Contains(err.Error(), `"name"`) {
		t.Errorf("host renew without --name = %v, want the required flag named", err)
	}
}

// TestHostRenewAndListStaleLeasesOff: without leases a renewal is still recorded and says
// nothing expires, and --stale is refused by the server naming the parameter.
func TestHostRenewAndListStaleLeasesOff(t *testing.T) {
	url, _, tokens := startServer(t)
	t.Setenv("RETURNPATH_SERVER", url)
	t.Setenv("RETURNPATH_TOKEN", tokens["bootstrap"])
	t.Chdir(t.TempDir())
	if out, err := run(t, "host", "register", "--name", "docker-01", "--address", "10.10.10.101"); err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
	out, err := run(t, "host", "renew", "--name", "docker-01")
	if err != nil || out != "host docker-01 renewed (the server has no leases configured: nothing expires)\n" {
		t.Errorf("host renew with leases off = %q, %v", out, err)
	}
	out, err = run(t, "host", "list")
	if err != nil {
		t.Fatalf("host list: %v\n%s", err, out)
	}
	if rows := hostListRows(t, out); len(rows) != 1 || rows[0][0] != "docker-01" || rows[0][len(rows[0])-1] != "-" {
		t.Errorf("host list with leases off printed %q, want docker-01 with no expiry", rows)
	}
	_, err = run(t, "host", "list", "--stale")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != 422 || p.Field != "stale" {
		t.Errorf("host list --stale with leases off = %v, want 422 naming stale", err)
	}
}
