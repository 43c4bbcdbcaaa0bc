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

// v6OnlyConfig is the lab's fabric with host1's segment IPv6-only: hosts6 and pool6, no hosts
// or pool; the switch routes via the host's IPv6 address, the firewall via the switch's (the
// plain next_hop form, IPv6 here). Adds are reviewed by hand, removals auto-approved.
func v6OnlyConfig(tb testing.TB, l *lab.Lab, dbURL, listen string) string {
	tb.Helper()
	cfg := fmt.Sprintf(`listen: %q
database_url: %q
log_level: warn
pools:
  - {name: docker6, prefix: "fd00:210::/48", subnet_length: 64}
segments:
  - name: rack1
    hosts6: "fd00:10:10:10::/64"
    pool6: docker6
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: "fd00:10:10:20::1"}
`, listen, dbURL) + reviewedLabTail(l)
	return writeConfig(tb, cfg)
}

// TestV6OnlyReturnPath is the IPv6-only story on the lab: host register --address6 alone on
// the Docker host allocates an IPv6 subnet only and writes daemon.json without bip; until the
// change is approved the container's IPv6 address cannot be reached from the internet host;
// after approval both devices hold the IPv6 route (and no IPv4 one), the ping works both ways
// and verify is in sync; removing the host takes the routes away and the ping fails again.
func TestV6OnlyReturnPath(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8115"
	cfg := v6OnlyConfig(t, l, dbURL, l.Service.String()+":8115")
	svc := startService(t, cfg, url)
	defer svc.stop()
	boot, rev, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "alice", "reviewer"), token(t, cfg, "ci", "viewer")
	host := l.Hosts["host1"]
	client := []string{"--server", url, "--token", boot}

	dj := filepath.Join(t.TempDir(), "daemon.json")
	out, code := inNS(t, l, "host1", append([]string{"host", "register", "--name", "host1",
		"--address6", host.Uplink6.String(), "--daemon-json", dj, "-o", "json"}, client...)...)
	if code != 0 {
		t.Fatalf("host register --address6 alone: exit %d\n%s", code, out)
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
	if err != nil || reg.Host.Subnet != "" || !netip.MustParsePrefix("fd00:210::/48").Contains(subnet6.Addr()) {
		t.Fatalf("subnet %q, subnet6 %q: want no IPv4 subnet and a /64 of fd00:210::/48\n%s", reg.Host.Subnet, reg.Host.Subnet6, out)
	}
	var daemon map[string]any
	if b, err := os.ReadFile(dj); err != nil || json.Unmarshal(b, &daemon) != nil {
		t.Fatalf("daemon.json: %v", err)
	}
	if _, has := daemon["bip"]; has || daemon["ipv6"] != true || daemon["fixed-cidr-v6"] != subnet6.String() || daemon["ip-masq"] != false {
		t.Fatalf("daemon.json = %v, want no bip, ipv6 true, fixed-cidr-v6 %s, ip-masq false", daemon, subnet6)
	}
	ctr6 := dockerdWithIPv6(t, l, dj, subnet6)

	var c changeOps
	get(t, fmt.Sprintf("%s/v1/changes/%d", url, reg.Host.Change.ID), viewer, &c)
	want := map[string]string{"sw1": host.Uplink6.String(), "fw1": "fd00:10:10:20::1"}
	for _, op := range c.Ops {
		if op.Prefix != subnet6.String() || op.NextHop != want[op.Device] || op.Action != "add" {
			t.Errorf("op %+v: want add %s via %s", op, subnet6, want[op.Device])
		}
	}
	if len(c.Ops) != 2 {
		t.Fatalf("change ops %+v: want one IPv6 route on sw1 and one on fw1, nothing else", c.Ops)
	}
	code, body := send(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", url, reg.Host.Change.ID), rev, `{"plan_hash":"`+c.PlanHash+`"}`)
	if code != 200 {
		t.Fatalf("approve: %d %v", code, body)
	}
	if ch := waitChange(t, url, viewer, reg.Host.Change.ID, 90*time.Second); ch.Status != "applied" {
		t.Fatalf("change %d ended %s, want applied", reg.Host.Change.ID, ch.Status)
	}
	run, err := l.Vtysh(ctx, "sw1", "show running-config staticd")
	if err != nil {
		t.Fatal(err)
	}
	if line := "ipv6 route " + subnet6.String() + " " + host.Uplink6.String(); !strings.Contains(run, line) {
		t.Errorf("sw1's running config lacks %q:\n%s", line, run)
	}
	if err := l.Ping(ctx, "inet", ctr6); err != nil {
		t.Errorf("ping %s from the internet host after approval: %v", ctr6, err)
	}
	if err := l.Ping(ctx, "ctr1", l.Internet6); err != nil {
		t.Errorf("ping %s from the container after approval: %v", l.Internet6, err)
	}
	if out, err := runBinary(t, "verify", "--server", url, "--token", viewer); err != nil {
		t.Errorf("verify with the IPv6-only host's routes in place: %v, want exit 0\n%s", err, out)
	}

	// Removing the host takes its routes away (auto-approved): the ping fails again.
	code, body = send(t, "DELETE", url+"/v1/hosts/host1", boot, "")
	rm, _ := body["change"].(map[string]any)
	if code/100 != 2 || rm == nil {
		t.Fatalf("DELETE host1: %d %v, want its remove change", code, body)
	}
	if ch := waitChange(t, url, viewer, int64(rm["id"].(float64)), 90*time.Second); ch.Status != "applied" {
		t.Fatalf("remove change %v ended %s, want applied", rm["id"], ch.Status)
	}
	if run, err = l.Vtysh(ctx, "sw1", "show running-config staticd"); err != nil || strings.Contains(run, "ipv6 route fd00:210:") {
		t.Errorf("sw1 after the removal (%v):\n%s", err, run)
	}
	if fwRoutes, err := l.Exec(ctx, "fw1", "ip", "-6", "route", "show", "proto", "202"); err != nil || strings.Contains(string(fwRoutes), "fd00:210:") {
		t.Errorf("fw1 after the removal (%v):\n%s", err, fwRoutes)
	}
	if err := l.Ping(ctx, "inet", ctr6); err == nil {
		t.Errorf("ping %s from the internet host worked after the host was removed", ctr6)
	}
}
