package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// haConfig writes a configuration whose return paths start with the switch pair sw1 and sw2 in
// one stage, then fw1: segment pair (10.10.0.0/17) via the firewall's working next hop,
// segment refused (10.10.128.0/17) via one the firewall refuses. sw2Password is the file sw2's
// password is read from.
func haConfig(tb testing.TB, l *lab.Lab, dbURL, listen, sw2Password string) string {
	tb.Helper()
	sw, sw2, fw := l.Devices["sw1"], l.Devices["sw2"], l.Devices["fw1"]
	cfg := fmt.Sprintf(`listen: %q
database_url: %q
log_level: warn
pools:
  - {name: docker, prefix: 172.16.0.0/12, subnet_length: 24}
segments:
  - name: pair
    hosts: 10.10.0.0/17
    pool: docker
    route_via:
      - {devices: [sw1, sw2], next_hop: host}
      - {device: fw1, next_hop: 10.10.20.1}
  - name: refused
    hosts: 10.10.128.0/17
    pool: docker
    route_via:
      - {devices: [sw1, sw2], next_hop: host}
      - {device: fw1, next_hop: 10.99.99.1}
devices:
  - {name: sw1, platform: frr, transport: ssh, address: %q, username: %s, password_file: %q, known_hosts: %q, connect_timeout: 5s}
  - {name: sw2, platform: frr, transport: ssh, address: %q, username: %s, password_file: %q, known_hosts: %q, connect_timeout: 5s}
  - {name: fw1, platform: linux, transport: ssh, address: %q, username: %s, private_key_file: %q, known_hosts: %q, connect_timeout: 5s, linux: {sudo: true, proto: 202}}
approval:
  four_eyes: true
  auto_approve: [{action: add}, {action: remove}]
apply:
  retry_deadline: 2m
`, listen, dbURL, sw.Mgmt.String(), sw.Username, sw.PasswordFile, l.KnownHosts,
		sw2.Mgmt.String(), sw2.Username, sw2Password, l.KnownHosts,
		fw.Mgmt.String(), fw.Username, fw.KeyFile, l.KnownHosts)
	p := filepath.Join(tb.TempDir(), "returnpath.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// registerHost registers one host and returns its change's id.
func registerHost(tb testing.TB, url, tok, name, address string) int64 {
	tb.Helper()
	body := fmt.Sprintf(`{"name":%q,"address":%q}`, name, address)
	req, _ := http.NewRequest("POST", url+"/v1/hosts", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 201 {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("register %s: %d %s", name, resp.StatusCode, b)
	}
	var h struct {
		Change struct{ ID int64 } `json:"change"`
	}
	get(tb, url+"/v1/hosts/"+name, tok, &h)
	return h.Change.ID
}

// staticRoutes returns the pool's routes in an FRR device's running configuration.
func staticRoutes(tb testing.TB, l *lab.Lab, dev string) []string {
	tb.Helper()
	out, err := l.Vtysh(context.Background(), dev, "show running-config staticd")
	if err != nil {
		tb.Fatal(err)
	}
	var rs []string
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "ip route 172.") {
			rs = append(rs, line)
		}
	}
	return rs
}

// opsOf renders a change's ops as "stage device action status", in apply order.
func opsOf(c haChange) string {
	var out []string
	for _, o := range c.Ops {
		out = append(out, fmt.Sprintf("%d %s %s %s", o.Stage, o.Device, o.Action, o.Status))
	}
	return strings.Join(out, ", ")
}

type haChange struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	Ops    []struct {
		Device string `json:"device"`
		Stage  int    `json:"stage"`
		Action string `json:"action"`
		Status string `json:"status"`
	} `json:"ops"`
}

func waitHAChange(tb testing.TB, url, tok string, id int64, within time.Duration, done func(haChange) bool) haChange {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		var c haChange
		get(tb, fmt.Sprintf("%s/v1/changes/%d", url, id), tok, &c)
		if done(c) {
			return c
		}
		if time.Now().After(deadline) {
			tb.Fatalf("change %d not there after %s: %s (%s)", id, within, c.Status, opsOf(c))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func final(c haChange) bool {
	switch c.Status {
	case "applied", "rolled_back", "failed", "rejected":
		return true
	}
	return false
}

// TestHAStage runs a return path whose first stage is a switch pair on real FRR: both
// switches get the route in one stage, in parallel (sw2 applies while sw1 cannot be reached,
// and the firewall waits for both); a refusal on the firewall undoes both switches' routes;
// a failure on sw2 (its login refused) undoes what sw1 applied in the same stage.
func TestHAStage(t *testing.T) {
	l := labtest.Require(t)
	if _, ok := l.Devices["sw2"]; !ok {
		t.Skip("the lab has no sw2 (a lab brought up without SecondSwitch)")
	}
	dbURL := pgtest.URL(t)
	listen := l.Service.String() + ":8097"
	url := "http://" + listen
	cfg := haConfig(t, l, dbURL, listen, l.Devices["sw2"].PasswordFile)
	defer cleanDevices(t, l) // the last step leaves the first host's routes: the next test starts clean
	svc := startService(t, cfg, url)
	defer func() { svc.stop() }()
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")

	// 1. sw1 cannot be reached: sw2, in the same stage, applies anyway; fw1 waits for sw1.
	unblock := blockSSH(t, l, "sw1")
	id := registerHost(t, url, boot, "h0", "10.10.100.1")
	c := waitHAChange(t, url, viewer, id, 60*time.Second, func(c haChange) bool {
		return final(c) || strings.Contains(opsOf(c), "0 sw2 add applied")
	})
	if got, want := opsOf(c), "0 sw1 add pending, 0 sw2 add applied, 1 fw1 add pending"; got != want {
		t.Fatalf("with sw1 unreachable: ops %q, want %q", got, want)
	}
	unblock()
	c = waitHAChange(t, url, viewer, id, 90*time.Second, final)
	if got, want := opsOf(c), "0 sw1 add applied, 0 sw2 add applied, 1 fw1 add applied"; c.Status != "applied" || got != want {
		t.Fatalf("change %d = %s (%s), ops %q; want applied, %q", id, c.Status, c.Reason, got, want)
	}
	var h0 struct {
		Subnet string `json:"subnet"`
	}
	get(t, url+"/v1/hosts/h0", viewer, &h0)
	want := []string{"ip route " + h0.Subnet + " 10.10.100.1"}
	for _, dev := range []string{"sw1", "sw2"} {
		if got := staticRoutes(t, l, dev); strings.Join(got, ";") != strings.Join(want, ";") {
			t.Errorf("%s holds %q, want %q", dev, got, want)
		}
	}

	// 2. The firewall refuses: both switches' routes are undone, in one undo stage.
	id = registerHost(t, url, boot, "h1", "10.10.200.1")
	c = waitHAChange(t, url, viewer, id, 60*time.Second, final)
	if c.Status != "rolled_back" {
		t.Fatalf("change %d = %s (%s), want rolled_back", id, c.Status, c.Reason)
	}
	if got, want := opsOf(c), "0 sw1 add rolled_back, 0 sw2 add rolled_back, 1 fw1 add failed, 0 sw2 delete applied, 0 sw1 delete applied"; got != want {
		t.Errorf("ops %q, want %q", got, want)
	}
	for _, dev := range []string{"sw1", "sw2"} {
		if got := staticRoutes(t, l, dev); strings.Join(got, ";") != strings.Join(want, ";") {
			t.Errorf("after the firewall's refusal %s holds %q, want only h0's %q", dev, got, want)
		}
	}

	// 3. sw2 refuses the login: what sw1 applied in the same stage is undone.
	svc.stop()
	wrong := filepath.Join(t.TempDir(), "sw2.wrong")
	if err := os.WriteFile(wrong, []byte("not-the-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc = startService(t, haConfig(t, l, dbURL, listen, wrong), url)
	id = registerHost(t, url, boot, "h2", "10.10.100.2")
	c = waitHAChange(t, url, viewer, id, 60*time.Second, final)
	if c.Status != "rolled_back" {
		t.Fatalf("change %d = %s (%s), want rolled_back", id, c.Status, c.Reason)
	}
	if got, want := opsOf(c), "0 sw1 add rolled_back, 0 sw2 add failed, 1 fw1 add skipped, 0 sw1 delete applied"; got != want {
		t.Errorf("ops %q, want %q", got, want)
	}
	if got := staticRoutes(t, l, "sw1"); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("after sw2's failure sw1 holds %q, want only h0's %q", got, want)
	}
	if sw, fw := deviceRoutes(t, l); sw != 1 || fw != 1 {
		t.Errorf("sw1 holds %d and fw1 %d routes, want h0's alone", sw, fw)
	}
}
