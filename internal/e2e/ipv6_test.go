package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// dualStackConfig is the lab's fabric with both families: host1's segment names hosts and
// hosts6, pool and pool6; the switch routes each family via the host's address of that
// family, the firewall via the switch's address of each family (the per-family next_hop form).
// Adds are reviewed by hand, removals auto-approved.
func dualStackConfig(tb testing.TB, l *lab.Lab, dbURL, listen string) string {
	tb.Helper()
	cfg := fmt.Sprintf(`listen: %q
database_url: %q
log_level: warn
pools:
  - {name: docker, prefix: 172.16.0.0/12, subnet_length: 24}
  - {name: docker6, prefix: "fd00:210::/48", subnet_length: 64}
segments:
  - name: rack1
    hosts: 10.10.10.0/24
    hosts6: "fd00:10:10:10::/64"
    pool: docker
    pool6: docker6
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: {ipv4: 10.10.20.1, ipv6: "fd00:10:10:20::1"}}
`, listen, dbURL) + reviewedLabTail(l)
	return writeConfig(tb, cfg)
}

// TestIPv6ReturnPath is the dual-stack story on the lab: host register --address6 on the
// Docker host allocates both subnets and writes ipv6 and fixed-cidr-v6 into daemon.json; until
// the change is approved the container's IPv6 address cannot be reached from the internet host
// (the firewall has no way back); after approval both devices hold the route of each family and
// the ping works both ways, verify is in sync; removing the host takes the IPv6 routes away and
// the ping fails again.
func TestIPv6ReturnPath(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8094"
	cfg := dualStackConfig(t, l, dbURL, l.Service.String()+":8094")
	svc := startService(t, cfg, url)
	defer svc.stop()
	boot, rev, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "alice", "reviewer"), token(t, cfg, "ci", "viewer")
	host := l.Hosts["host1"]
	client := []string{"--server", url, "--token", boot}

	dj := filepath.Join(t.TempDir(), "daemon.json")
	out, code := inNS(t, l, "host1", append([]string{"host", "register", "--name", "host1", "--address", host.Uplink.String(),
		"--address6", host.Uplink6.String(), "--daemon-json", dj, "-o", "json"}, client...)...)
	if code != 0 {
		t.Fatalf("host register --address6: exit %d\n%s", code, out)
	}
	var reg struct {
		Host struct {
			Subnet, Subnet6 string
			Change          struct{ ID int64 }
		}
	}
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&reg); err != nil {
		t.Fatalf("host register -o json: %v\n%s", err, out)
	}
	subnet6, err := netip.ParsePrefix(reg.Host.Subnet6)
	if err != nil || subnet6.Bits() != 64 || !netip.MustParsePrefix("fd00:210::/48").Contains(subnet6.Addr()) {
		t.Fatalf("subnet6 %q: want a /64 of fd00:210::/48 (%v)\n%s", reg.Host.Subnet6, err, out)
	}
	var daemon map[string]any
	if b, err := os.ReadFile(dj); err != nil || json.Unmarshal(b, &daemon) != nil {
		t.Fatalf("daemon.json: %v", err)
	}
	if daemon["ipv6"] != true || daemon["fixed-cidr-v6"] != subnet6.String() || daemon["ip-masq"] != false {
		t.Fatalf("daemon.json = %v, want ipv6 true, fixed-cidr-v6 %s, ip-masq false", daemon, subnet6)
	}
	ctr6 := dockerdWithIPv6(t, l, dj, subnet6)

	// The change holds both families on both devices, IPv6 in FRR's and Linux's own syntax.
	var c changeOps
	get(t, fmt.Sprintf("%s/v1/changes/%d", url, reg.Host.Change.ID), viewer, &c)
	want6 := map[string]string{"sw1": host.Uplink6.String(), "fw1": "fd00:10:10:20::1"}
	seen := map[string]int{}
	for _, op := range c.Ops {
		p := netip.MustParsePrefix(op.Prefix)
		if p.Addr().Is4() {
			seen[op.Device+"/4"]++
			continue
		}
		seen[op.Device+"/6"]++
		if p != subnet6 || op.NextHop != want6[op.Device] || op.Action != "add" {
			t.Errorf("IPv6 op %+v: want add %s via %s", op, subnet6, want6[op.Device])
		}
	}
	if len(c.Ops) != 4 || seen["sw1/4"] != 1 || seen["sw1/6"] != 1 || seen["fw1/4"] != 1 || seen["fw1/6"] != 1 {
		t.Fatalf("change ops %+v: want one route of each family on sw1 and fw1", c.Ops)
	}

	code, body := send(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", url, reg.Host.Change.ID), rev, `{"plan_hash":"`+c.PlanHash+`"}`)
	if code != 200 {
		t.Fatalf("approve: %d %v", code, body)
	}
	if ch := waitChange(t, url, viewer, reg.Host.Change.ID, 90*time.Second); ch.Status != "applied" {
		t.Fatalf("change %d ended %s, want applied", reg.Host.Change.ID, ch.Status)
	}

	// The devices hold the IPv6 routes, as they say themselves.
	run, err := l.Vtysh(ctx, "sw1", "show running-config staticd")
	if err != nil {
		t.Fatal(err)
	}
	if line := "ipv6 route " + subnet6.String() + " " + host.Uplink6.String(); !strings.Contains(run, line) {
		t.Errorf("sw1's running config lacks %q:\n%s", line, run)
	}
	fwRoutes, err := l.Exec(ctx, "fw1", "ip", "-6", "route", "show", "proto", "202")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(fwRoutes), subnet6.String()+" via fd00:10:10:20::1") {
		t.Errorf("fw1's IPv6 routes lack %s via fd00:10:10:20::1:\n%s", subnet6, fwRoutes)
	}

	// Now the container's IPv6 address answers from outside, and its own pings come back.
	if err := l.Ping(ctx, "inet", ctr6); err != nil {
		t.Errorf("ping %s from the internet host after approval: %v", ctr6, err)
	}
	if err := l.Ping(ctx, "ctr1", l.Internet6); err != nil {
		t.Errorf("ping %s from the container after approval: %v", l.Internet6, err)
	}
	if err := l.Ping(ctx, "ctr1", l.Internet); err != nil {
		t.Errorf("IPv4 ping %s from the container after approval: %v", l.Internet, err)
	}
	if out, err := runBinary(t, "verify", "--server", url, "--token", viewer); err != nil {
		t.Errorf("verify with both families in place: %v, want exit 0\n%s", err, out)
	}

	// Removing the host takes both families' routes away (auto-approved): the ping fails again.
	if code, body := send(t, "DELETE", url+"/v1/hosts/host1", boot, ""); code/100 != 2 {
		t.Fatalf("DELETE host1: %d %v", code, body)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		run, err := l.Vtysh(ctx, "sw1", "show running-config staticd")
		if err != nil {
			t.Fatal(err)
		}
		fwRoutes, err := l.Exec(ctx, "fw1", "ip", "-6", "route", "show", "proto", "202")
		if err != nil {
			t.Fatal(err)
		}
		sw, fw := deviceRoutes(t, l)
		if !strings.Contains(run, "ipv6 route fd00:210:") && !strings.Contains(string(fwRoutes), "fd00:210:") && sw+fw == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes left after removing host1:\n%s\n%s", run, fwRoutes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := l.Ping(ctx, "inet", ctr6); err == nil {
		t.Errorf("ping %s from the internet host worked after the host was removed", ctr6)
	}
}

// reviewedLabTail is the devices, approval and verify part of a lab configuration: sw1 and fw1
// as the lab has them, adds reviewed by hand, removals auto-approved, verify always fresh.
func reviewedLabTail(l *lab.Lab) string {
	sw, fw := l.Devices["sw1"], l.Devices["fw1"]
	return fmt.Sprintf(`devices:
  - {name: sw1, platform: frr, transport: ssh, address: %q, username: %s, password_file: %q, known_hosts: %q, connect_timeout: 5s}
  - {name: fw1, platform: linux, transport: ssh, address: %q, username: %s, private_key_file: %q, known_hosts: %q, connect_timeout: 5s, linux: {sudo: true, proto: 202}}
approval:
  four_eyes: true
  auto_approve: [{action: remove}]
verify:
  max_age: 0s
`, sw.Mgmt.String(), sw.Username, sw.PasswordFile, l.KnownHosts, fw.Mgmt.String(), fw.Username, fw.KeyFile, l.KnownHosts)
}

// writeConfig writes a configuration file for tb and returns its path.
func writeConfig(tb testing.TB, cfg string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "returnpath.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// dockerdWithIPv6 does on host1 what dockerd does at start with daemon.json dj (the lab's
// docker0 and container are cleaned after the test), and returns the container's IPv6 address
// in subnet6 once it has checked that the internet host cannot reach it yet: before approval,
// the container's reply dies at the firewall.
func dockerdWithIPv6(t *testing.T, l *lab.Lab, dj string, subnet6 netip.Prefix) netip.Addr {
	t.Helper()
	t.Cleanup(func() { // the lab's host1 starts with docker0 and the container unaddressed
		_, _ = l.Exec(context.Background(), "host1", "ip", "addr", "flush", "dev", "docker0", "scope", "global")
		_, _ = l.Exec(context.Background(), "ctr1", "ip", "addr", "flush", "dev", "eth0", "scope", "global")
	})
	if out, err := runBinary(t, "lab", "dockerd", "--dir", l.Dir, "--host", "host1", "--daemon-json", dj); err != nil {
		t.Fatalf("lab dockerd: %v\n%s", err, out)
	}
	ctr6 := subnet6.Addr().Next().Next() // dockerd: the bridge takes the first address, the container the next
	if err := l.Ping(context.Background(), "inet", ctr6); err == nil {
		t.Fatalf("ping %s from the internet host before approval worked; want no way back", ctr6)
	}
	return ctr6
}

// changeOps is the part of GET /v1/changes/{id} the IPv6 tests read.
type changeOps struct {
	PlanHash string `json:"plan_hash"`
	Ops      []struct {
		Device  string `json:"device"`
		Action  string `json:"action"`
		Prefix  string `json:"prefix"`
		NextHop string `json:"next_hop"`
	} `json:"ops"`
}
