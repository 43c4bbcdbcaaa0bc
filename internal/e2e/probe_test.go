package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// probeConfig is the lab's fabric for one segment of host1's /24 (and an empty second segment
// for a scoped token), with adds reviewed by hand, removals auto-approved, and verify reading
// the devices on every call.
func probeConfig(tb testing.TB, l *lab.Lab, dbURL, listen string) string {
	tb.Helper()
	cfg := fmt.Sprintf(`listen: %q
database_url: %q
log_level: warn
pools:
  - {name: docker, prefix: 172.16.0.0/12, subnet_length: 24}
segments:
  - name: rack1
    hosts: 10.10.10.0/24
    pool: docker
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: 10.10.20.1}
  - name: rack2
    hosts: 10.10.30.0/24
    pool: docker
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: 10.10.20.1}
`, listen, dbURL) + reviewedLabTail(l) + fmt.Sprintf(`probes:
  targets: [%s]
  max_age: 15m
`, l.Internet)
	p := filepath.Join(tb.TempDir(), "returnpath.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// inNS runs the returnpath binary inside a lab namespace, as it runs on a Docker host, and
// returns its standard output and exit status.
func inNS(t *testing.T, l *lab.Lab, ns string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := l.Exec(ctx, ns, append([]string{binary(t)}, args...)...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("run %v in %s: %v", args, ns, err)
	return "", -1
}

type probeJSON struct {
	Result   string   `json:"result"`
	Source   string   `json:"source"`
	RTTMS    *float64 `json:"rtt_ms"`
	Recorded bool     `json:"recorded"`
	Error    string   `json:"error"`
}

func decodeProbe(t *testing.T, out string) probeJSON {
	t.Helper()
	// Errors go to standard error, which Exec mixes in after the JSON document.
	var p probeJSON
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&p); err != nil {
		t.Fatalf("host probe -o json: %v\n%s", err, out)
	}
	return p
}

// send makes an API request with a JSON body and returns the status and decoded answer.
func send(t *testing.T, method, url, tok, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestProbeProvesReturnPath runs host probe in host1's namespace, as on a Docker host: before
// approval no reply comes back (exit 1, recorded); after it the probe succeeds with a round
// trip; a firewall route deleted by hand fails the probe and verify reports the drift; an
// nftables rule dropping the return traffic fails the probe while config verify is in sync,
// and only verify --probes exits 1, naming the host. Bad reports are 4xx and record nothing.
func TestProbeProvesReturnPath(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8093"
	cfg := probeConfig(t, l, dbURL, l.Service.String()+":8093")
	svc := startService(t, cfg, url)
	defer svc.stop()
	boot, rev, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "alice", "reviewer"), token(t, cfg, "ci", "viewer")
	host := l.Hosts["host1"]
	client := []string{"--server", url, "--token", boot}
	probeArgs := append([]string{"host", "probe", "--name", "host1", "--target", l.Internet.String(), "--count", "2", "--timeout", "500ms", "-o", "json"}, client...)
	lastProbe := func(name string) string {
		t.Helper()
		var h struct {
			LastProbe *struct{ Target, Result string } `json:"last_probe"`
		}
		get(t, url+"/v1/hosts/"+name, viewer, &h)
		if h.LastProbe == nil {
			return "none"
		}
		return h.LastProbe.Result + " to " + h.LastProbe.Target
	}

	dj := filepath.Join(t.TempDir(), "daemon.json")
	out, code := inNS(t, l, "host1", append([]string{"host", "register", "--name", "host1", "--address", host.Uplink.String(), "--daemon-json", dj, "-o", "json"}, client...)...)
	if code != 0 {
		t.Fatalf("host register: exit %d\n%s", code, out)
	}
	var reg struct {
		Host struct {
			Subnet, Gateway string
			Change          struct{ ID int64 }
		}
	}
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&reg); err != nil {
		t.Fatalf("host register -o json: %v\n%s", err, out)
	}
	t.Cleanup(func() { // the lab's host1 starts with docker0 and the container unaddressed
		_, _ = l.Exec(context.Background(), "host1", "ip", "addr", "flush", "dev", "docker0")
		_, _ = l.Exec(context.Background(), "ctr1", "ip", "addr", "flush", "dev", "eth0")
	})

	// No docker0 address yet (dockerd has not started): it cannot test, and says so.
	if out, code := inNS(t, l, "host1", probeArgs...); code != 2 || decodeProbe(t, out).Recorded {
		t.Errorf("probe before dockerd: exit %d, want 2 and nothing recorded\n%s", code, out)
	}
	if out, err := runBinary(t, "lab", "dockerd", "--dir", l.Dir, "--host", "host1", "--daemon-json", dj); err != nil {
		t.Fatalf("lab dockerd: %v\n%s", err, out)
	}

	// Before approval: no way back. Exit 1, recorded as failed.
	out, code = inNS(t, l, "host1", probeArgs...)
	if p := decodeProbe(t, out); code != 1 || p.Result != "failed" || !p.Recorded || p.Source != reg.Host.Gateway {
		t.Fatalf("probe before approval: exit %d %+v, want 1, failed from %s, recorded\n%s", code, p, reg.Host.Gateway, out)
	}
	if got := lastProbe("host1"); got != "failed to "+l.Internet.String() {
		t.Errorf("host1's last_probe = %s, want the failed probe", got)
	}

	// Bad reports: 4xx, nothing recorded.
	var c struct {
		PlanHash string `json:"plan_hash"`
	}
	get(t, fmt.Sprintf("%s/v1/changes/%d", url, reg.Host.Change.ID), viewer, &c)
	ghostCode, _ := send(t, "POST", url+"/v1/hosts", boot, `{"name":"ghost","address":"10.10.10.150"}`)
	if ghostCode != http.StatusCreated {
		t.Fatalf("register ghost: %d", ghostCode)
	}
	scoped := tokenScoped(t, cfg, "rack2-boot", "rack2")
	report := func(target, source string) string {
		return fmt.Sprintf(`{"target":%q,"source":%q,"result":"failed","sent":1,"received":0,"at":%q}`, target, source, time.Now().UTC().Format(time.RFC3339))
	}
	for _, tt := range []struct {
		name, host, tok, body, field string
		want                         int
	}{
		{name: "target inside the pool", host: "host1", tok: boot, body: report("172.16.200.1", reg.Host.Gateway), want: 422, field: "target"},
		{name: "probing for another host's name", host: "ghost", tok: boot, body: report(l.Internet.String(), reg.Host.Gateway), want: 422, field: "source"},
		{name: "bootstrap token of another segment", host: "host1", tok: scoped, body: report(l.Internet.String(), reg.Host.Gateway), want: 403},
	} {
		code, body := send(t, "POST", url+"/v1/hosts/"+tt.host+"/probes", tt.tok, tt.body)
		if code != tt.want || (tt.field != "" && body["field"] != tt.field) {
			t.Errorf("%s: %d %v, want %d naming %q", tt.name, code, body, tt.want, tt.field)
		}
	}
	// Through the binary too: a target inside a pool is refused when it reports (exit 2).
	if out, code := inNS(t, l, "host1", append(append([]string{}, probeArgs...), "--target", "172.16.200.1")...); code != 2 || !strings.Contains(out, "target") {
		t.Errorf("probe of a pool address: exit %d, want 2 naming target\n%s", code, out)
	}
	var n int
	if err := pgxCount(ctx, dbURL, &n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || lastProbe("ghost") != "none" {
		t.Errorf("after refused reports: %d probes recorded, ghost's last probe %s; want only host1's first", n, lastProbe("ghost"))
	}

	// Approval: the routes are pushed and the probe comes back.
	code, body := send(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", url, reg.Host.Change.ID), rev, `{"plan_hash":"`+c.PlanHash+`"}`)
	if code != http.StatusOK {
		t.Fatalf("approve: %d %v", code, body)
	}
	if ch := waitChange(t, url, viewer, reg.Host.Change.ID, 90*time.Second); ch.Status != "applied" {
		t.Fatalf("add change %s: %s", ch.Status, ch.Reason)
	}
	out, code = inNS(t, l, "host1", probeArgs...)
	if p := decodeProbe(t, out); code != 0 || p.Result != "ok" || p.RTTMS == nil || *p.RTTMS <= 0 || !p.Recorded {
		t.Fatalf("probe after approval: exit %d %+v, want 0, ok with a round trip\n%s", code, p, out)
	}
	if out, err := runBinary(t, "verify", "--probes", "--server", url, "--token", viewer); err != nil {
		t.Errorf("verify --probes with the path working: %v\n%s", err, out)
	}
	// A TCP probe to a closed port: the target's RST coming back proves the path as well.
	tcpArgs := append(append([]string{}, probeArgs...), "--target", l.Internet.String()+":9")
	if out, code := inNS(t, l, "host1", tcpArgs...); code != 0 || decodeProbe(t, out).Result != "ok" {
		t.Errorf("tcp probe after approval: exit %d, want 0\n%s", code, out)
	}

	// The firewall's route deleted by hand: the probe fails, and config verify sees it too.
	subnet := reg.Host.Subnet
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "del", subnet, "proto", "202"); err != nil {
		t.Fatal(err)
	}
	if out, code := inNS(t, l, "host1", probeArgs...); code != 1 {
		t.Errorf("probe without the firewall's route: exit %d, want 1\n%s", code, out)
	}
	if out, err := runBinary(t, "verify", "--server", url, "--token", viewer); exitOf(err) != 1 || !strings.Contains(out, "missing") {
		t.Errorf("verify without the firewall's route: %v, want exit 1 reporting it missing\n%s", err, out)
	}
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "add", subnet, "via", "10.10.20.1", "proto", "202"); err != nil {
		t.Fatal(err)
	}

	// A firewall rule dropping the return traffic: config verify is in sync, the probe is not.
	rules := filepath.Join(t.TempDir(), "drop.nft")
	rule := fmt.Sprintf("table ip rp_probe_test {\n chain drop_return {\n  type filter hook forward priority 0; policy accept;\n  ip daddr %s drop\n }\n}\n", subnet)
	if err := os.WriteFile(rules, []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(ctx, "fw1", "nft", "-f", rules); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = l.Exec(context.Background(), "fw1", "nft", "delete", "table", "ip", "rp_probe_test") })
	if out, code := inNS(t, l, "host1", probeArgs...); code != 1 {
		t.Errorf("probe with the return traffic dropped: exit %d, want 1\n%s", code, out)
	}
	if out, err := runBinary(t, "verify", "--server", url, "--token", viewer); err != nil {
		t.Errorf("config verify with the routes in place: %v, want exit 0\n%s", err, out)
	}
	out, err := runBinary(t, "verify", "--probes", "--server", url, "--token", viewer, "-o", "junit")
	if exitOf(err) != 1 || !strings.Contains(out, `name="host1" classname="returnpath.probe"`) || !strings.Contains(out, "probe_failed") {
		t.Errorf("verify --probes with the return traffic dropped: %v, want exit 1 with host1 failing\n%s", err, out)
	}
	if _, err := l.Exec(ctx, "fw1", "nft", "delete", "table", "ip", "rp_probe_test"); err != nil {
		t.Fatal(err)
	}

	// Bootstrap on a host where dockerd runs: register --wait --probe ends once the host has
	// proved its return path; with an empty --probe, to the segment's probes.targets.
	out, code = inNS(t, l, "host1", append([]string{"host", "register", "--name", "host1", "--address", host.Uplink.String(),
		"--wait", "60s", "--probe", "", "--probe-timeout", "500ms"}, client...)...)
	if code != 0 || !strings.Contains(out, "host1 proved its return path") {
		t.Errorf("host register --wait --probe: exit %d\n%s", code, out)
	}
	if out, err := runBinary(t, "verify", "--probes", "--server", url, "--token", viewer); err != nil {
		t.Errorf("verify --probes at the end: %v\n%s", err, out)
	}

	// Clean the devices for the next test.
	for _, h := range []string{"host1", "ghost"} {
		if code, body := send(t, "DELETE", url+"/v1/hosts/"+h, boot, ""); code/100 != 2 {
			t.Errorf("DELETE %s: %d %v", h, code, body)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		sw, fw := deviceRoutes(t, l)
		if sw+fw == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes left after removing host1: sw1 %d, fw1 %d", sw, fw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func exitOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func tokenScoped(tb testing.TB, cfg, name, segment string) string {
	tb.Helper()
	out, err := exec.Command(binary(tb), "token", "create", "--config", cfg, "--name", name, "--role", "bootstrap", "--segments", segment).CombinedOutput()
	if err != nil {
		tb.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func pgxCount(ctx context.Context, dbURL string, n *int) error {
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	return db.QueryRow(ctx, `SELECT count(*) FROM host_probes`).Scan(n)
}
