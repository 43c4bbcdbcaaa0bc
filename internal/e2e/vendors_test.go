package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/eos"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/panos"
	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// kernelMirror copies the routes an emulated device committed into a lab namespace's kernel
// table, so that the lab's packets follow what the emulation holds: the emulated switch
// stands in for sw1, the emulated firewall for fw1. Routes carry protocol 203 so that the
// mirror only ever replaces or deletes its own (returnpath's Linux driver uses 202 on fw1).
type kernelMirror struct {
	l    *lab.Lab
	role string // "sw1" or "fw1"
	pool netip.Prefix

	mu   sync.Mutex
	have map[netip.Prefix]netip.Addr
	errs []error
}

func newKernelMirror(l *lab.Lab, role string, pool netip.Prefix) *kernelMirror {
	return &kernelMirror{l: l, role: role, pool: pool, have: map[netip.Prefix]netip.Addr{}}
}

// sync makes the namespace hold exactly want (inside the pool), by "ip route replace" and
// "ip route del" of protocol 203 routes inside the lab namespace.
func (m *kernelMirror) sync(want map[netip.Prefix]netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for p, nh := range want {
		if !m.pool.Contains(p.Addr()) || m.have[p] == nh {
			continue
		}
		if out, err := m.l.Exec(ctx, m.role, "ip", "route", "replace", p.String(), "via", nh.String(), "proto", "203"); err != nil {
			m.errs = append(m.errs, fmt.Errorf("%s: route replace %s via %s: %v %s", m.role, p, nh, err, out))
			continue
		}
		m.have[p] = nh
	}
	for p := range m.have {
		if _, ok := want[p]; ok {
			continue
		}
		if out, err := m.l.Exec(ctx, m.role, "ip", "route", "del", p.String(), "proto", "203"); err != nil {
			m.errs = append(m.errs, fmt.Errorf("%s: route del %s: %v %s", m.role, p, err, out))
			continue
		}
		delete(m.have, p)
	}
}

// clear removes every route the mirror added.
func (m *kernelMirror) clear() { m.sync(nil) }

func (m *kernelMirror) failures() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]error(nil), m.errs...)
}

// vendorConfig writes a returnpath.yaml whose return path is the emulated EOS switch (next hop:
// the host) and the emulated PAN-OS firewall (next hop: the lab switch's address towards the
// firewall), both listening on the management namespace's loopback.
func vendorConfig(t *testing.T, dbURL, listen string, sw *eos.Device, fw *panos.Device, pwFile, knownHosts string) string {
	t.Helper()
	cfg := fmt.Sprintf(`listen: %q
database_url: %q
log_level: warn
pools:
  - {name: docker, prefix: 10.210.0.0/16, subnet_length: 24}
segments:
  - name: rack1
    hosts: 10.10.10.0/24
    pool: docker
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: 10.10.20.1}
devices:
  - {name: sw1, platform: arista_eos, address: %q, username: admin, password_file: %q, known_hosts: %q, connect_timeout: 5s}
  - {name: fw1, platform: paloalto_panos, address: %q, username: admin, password_file: %q, known_hosts: %q, connect_timeout: 5s, timeout: 2m, panos: {virtual_router: default, interface: ethernet1/2}}
approval:
  four_eyes: true
  auto_approve: [{action: add}, {action: remove}]
apply:
  retry_deadline: 2m
limits:
  registrations_per_minute: 0
`, listen, dbURL, sw.Addr().String(), pwFile, knownHosts, fw.Addr().String(), pwFile, knownHosts)
	p := filepath.Join(t.TempDir(), "returnpath.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEmulatedEOSAndPANOS runs the product end to end through the real binary and the API with
// an emulated arista_eos switch and an emulated paloalto_panos firewall on the return path:
// registering the lab's host plans and applies the route on both (switch via the host,
// firewall via the switch, in the default VRF and virtual router), verify reports in sync,
// device check reads both, and deregistering removes the routes. Each emulation's commits are
// mirrored into the lab's sw1 and fw1 kernel tables, so the container's ping to the internet
// proves the return path works while the routes are there, and fails once they are gone.
func TestEmulatedEOSAndPANOS(t *testing.T) {
	l := labtest.Require(t)
	ctx := t.Context()
	pool := netip.MustParsePrefix("10.210.0.0/16")
	swMirror, fwMirror := newKernelMirror(l, "sw1", pool), newKernelMirror(l, "fw1", pool)
	t.Cleanup(func() { swMirror.clear(); fwMirror.clear() })

	const password = "s3cret-vendor-lab"
	sw, err := eos.Start(eos.Options{Username: "admin", Password: password, OnCommit: func(rs []eos.Route) {
		want := map[netip.Prefix]netip.Addr{}
		for _, r := range rs {
			if r.VRF == "default" && r.Name == "returnpath" {
				want[r.Prefix] = r.NextHop
			}
		}
		swMirror.sync(want)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	fw, err := panos.Start(panos.Options{Username: "admin", Password: password, OnCommit: func(rs []panos.Route) {
		want := map[netip.Prefix]netip.Addr{}
		for _, r := range rs {
			if r.VR == "default" && strings.HasPrefix(r.Name, "rp-") && r.NextHop.IsValid() {
				want[r.Prefix] = r.NextHop
			}
		}
		fwMirror.sync(want)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()

	dir := t.TempDir()
	pwFile, kh := filepath.Join(dir, "password"), filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	var khText strings.Builder
	for _, d := range []struct {
		addr netip.AddrPort
		key  ssh.PublicKey
	}{{sw.Addr(), sw.HostKey()}, {fw.Addr(), fw.HostKey()}} {
		khText.WriteString(knownhosts.Line([]string{knownhosts.Normalize(d.addr.String())}, d.key) + "\n")
	}
	if err := os.WriteFile(kh, []byte(khText.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	host := l.Hosts["host1"]
	url := "http://" + l.Service.String() + ":8099"
	cfg := vendorConfig(t, pgtest.URL(t), l.Service.String()+":8099", sw, fw, pwFile, kh)
	svc := startService(t, cfg, url)
	defer svc.stop()
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")

	// The container's traffic has no way back before returnpath acts.
	bip := netip.MustParsePrefix("10.210.0.1/24")
	if _, err := l.SetDockerBridge(ctx, "host1", bip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the lab's host1 starts with docker0 and the container unaddressed
		_, _ = l.Exec(context.Background(), "host1", "ip", "addr", "flush", "dev", "docker0")
		_, _ = l.Exec(context.Background(), "ctr1", "ip", "addr", "flush", "dev", "eth0")
	})
	if err := l.Ping(ctx, "ctr1", l.Internet); err == nil {
		t.Fatal("the container reaches the internet before any return route")
	}

	body := fmt.Sprintf(`{"name":"host1","address":%q}`, host.Uplink.String())
	req, _ := http.NewRequest("POST", url+"/v1/hosts", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+boot)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/hosts = %d %s", resp.StatusCode, b)
	}
	var h struct {
		Subnet string             `json:"subnet"`
		Change struct{ ID int64 } `json:"change"`
	}
	get(t, url+"/v1/hosts/host1", viewer, &h)
	if h.Subnet != bip.Masked().String() {
		t.Fatalf("host1's subnet = %q, want %s (the docker0 the lab set up)", h.Subnet, bip.Masked())
	}
	if c := waitChange(t, url, viewer, h.Change.ID, 90*time.Second); c.Status != "applied" {
		t.Fatalf("add change = %s (%s), want applied", c.Status, c.Reason)
	}
	subnet := netip.MustParsePrefix(h.Subnet)

	// Each device holds exactly the route of its hop, where returnpath says it puts it.
	if got, want := fmt.Sprint(sw.Routes()), fmt.Sprint([]eos.Route{{VRF: "default", Prefix: subnet, NextHop: host.Uplink, Name: "returnpath"}}); got != want {
		t.Errorf("switch routes = %s, want %s", got, want)
	}
	fwWant := []panos.Route{{VR: "default", Name: "rp-10_210_0_0-24", Prefix: subnet, NextHop: netip.MustParseAddr("10.10.20.1"), Interface: "ethernet1/2"}}
	if got, want := fmt.Sprint(fw.Routes()), fmt.Sprint(fwWant); got != want {
		t.Errorf("firewall routes = %s, want %s", got, want)
	}
	if sw.Commits() != 1 || fw.Commits() != 1 {
		t.Errorf("commits: switch %d, firewall %d; want one each", sw.Commits(), fw.Commits())
	}

	// The committed routes, mirrored into the lab's kernels, carry the container's replies.
	var pingErr error
	for range 5 {
		if pingErr = l.Ping(ctx, "ctr1", l.Internet); pingErr == nil {
			break
		}
	}
	if pingErr != nil {
		t.Errorf("ping from the container to the internet with the return path applied: %v", pingErr)
	}

	if r := verifyInSync(t, url, viewer, 30*time.Second); !r.InSync || len(r.Devices) != 2 {
		t.Errorf("GET /v1/verify = %+v, want both devices in sync", r)
	}
	out, err := runBinary(t, "verify", "--server", url, "--token", viewer)
	if err != nil || !strings.Contains(out, "sw1") || !strings.Contains(out, "fw1") {
		t.Errorf("returnpath verify: %v\n%s", err, out)
	}

	out, stderr, code := deviceCheckRun(t, "--all", "--config", cfg)
	t.Logf("device check --all:\n%s%s", out, stderr)
	for _, w := range []string{
		"version:  Arista vEOS-lab, software image version 4.28.3M",
		"version:  Palo Alto Networks PA-VM, PAN-OS 10.1.3",
		subnet.String() + " via " + host.Uplink.String() + " vrf default",
		subnet.String() + " via 10.10.20.1 vrf default",
		"set network virtual-router default routing-table ip static-route rp-10_210_255_0-24 destination 10.210.255.0/24 nexthop ip-address 10.10.20.1 interface ethernet1/2",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("device check output lacks %q", w)
		}
	}
	if code != 0 {
		t.Errorf("device check --all: exit %d, want 0", code)
	}
	if sw.Commits() != 1 || fw.Commits() != 1 {
		t.Errorf("device check committed something: switch %d, firewall %d commits", sw.Commits(), fw.Commits())
	}

	req, _ = http.NewRequest("DELETE", url+"/v1/hosts/host1", nil)
	req.Header.Set("Authorization", "Bearer "+boot)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("DELETE /v1/hosts/host1 = %d", resp.StatusCode)
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(sw.Routes())+len(fw.Routes()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("routes left after deregistering: switch %v, firewall %v", sw.Routes(), fw.Routes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := verifyInSync(t, url, viewer, 30*time.Second); !r.InSync {
		t.Errorf("verify after deregistering: %+v", r)
	}
	if err := l.Ping(ctx, "ctr1", l.Internet); err == nil {
		t.Error("the container still reaches the internet after its routes were removed")
	}
	for _, err := range append(swMirror.failures(), fwMirror.failures()...) {
		t.Error(err)
	}
}

// runBinary runs the returnpath binary with args and returns its combined output.
func runBinary(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), args...).CombinedOutput()
	return string(out), err
}
