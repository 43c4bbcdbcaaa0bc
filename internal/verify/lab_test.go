package verify_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/ssh"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/session"
	"github.com/returnpath/returnpath/internal/verify"
)

// The lab tests read a real FRR switch (sw1) and a real Linux firewall (fw1) over SSH in the
// network-namespace lab. Without root or the Debian packages they skip, or fail when
// RETURNPATH_REQUIRE_LAB=1. The unit tests of this package run in the lab's mgmt namespace
// too, which changes nothing for them.
func TestMain(m *testing.M) { os.Exit(labtest.Main(m, lab.Options{})) }

// labPool is the lab's docker pool; labOutside is never managed.
var (
	labPool    = netip.MustParsePrefix("10.210.0.0/16")
	labOutside = netip.MustParsePrefix("10.200.0.0/24")
)

// labInventory is the lab's fabric: segment rack1 behind sw1 (next hop: the host) and fw1
// (next hop 10.10.20.1), with subnets of the given length.
func labInventory(l *lab.Lab, subnetLength int) *fabric.Inventory {
	sw, fw := l.Devices["sw1"], l.Devices["fw1"]
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: labPool, SubnetLength: subnetLength}},
		Segments: []fabric.Segment{{Name: "rack1", Hosts: l.Hosts["host1"].Segment, Pool: "docker", RouteVia: []fabric.Hop{
			{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
			{Device: "fw1", NextHop: fabric.NextHop{Addr: netip.MustParseAddr("10.10.20.1")}},
		}}},
		Devices: []fabric.Device{
			{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: sw.Mgmt, VRF: fabric.DefaultVRF},
			{Name: "fw1", Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH, Address: fw.Mgmt, VRF: fabric.DefaultVRF},
		},
	}
}

// labDrivers returns the driver settings of both lab devices: rpfrr with its password on sw1,
// rplinux with sudo and the route protocol 202 on fw1.
func labDrivers(l *lab.Lab) map[string]drivers.Config {
	sw, fw := l.Devices["sw1"], l.Devices["fw1"]
	return map[string]drivers.Config{
		"sw1": {Name: "sw1", Platform: fabric.PlatformFRR, Address: sw.Mgmt, VRF: fabric.DefaultVRF, Managed: []netip.Prefix{labPool},
			Username: sw.Username, Password: drivers.Secret(sw.Password),
			SSH: drivers.SSHConfig{KnownHosts: sw.KnownHosts, HostKey: drivers.HostKeyStrict}},
		"fw1": {Name: "fw1", Platform: fabric.PlatformLinux, Address: fw.Mgmt, VRF: fabric.DefaultVRF, Managed: []netip.Prefix{labPool},
			Username: fw.Username, Password: drivers.Secret(fw.Password),
			SSH:   drivers.SSHConfig{KnownHosts: fw.KnownHosts, HostKey: drivers.HostKeyStrict},
			Linux: drivers.LinuxConfig{Proto: ssh.DefaultLinuxProto, Sudo: true}},
	}
}

func labFactories() map[fabric.Platform]drivers.Factory {
	return map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: ssh.FRRFactory(), fabric.PlatformLinux: ssh.LinuxFactory()}
}

func labVerifier(l *lab.Lab, inv *fabric.Inventory, hosts ...fabric.Host) *verify.Verifier {
	return &verify.Verifier{Inv: inv, Devices: &session.Devices{Configs: labDrivers(l), Factories: labFactories()}, Hosts: &hostList{hosts: hosts}}
}

// apply pushes ops to one lab device through its real driver.
func apply(tb testing.TB, l *lab.Lab, device string, ops []fabric.RouteOp) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := labDrivers(l)[device]
	cfg.OpTimeout = 5 * time.Minute // 5,000-route batches take seconds, not the default's 30
	d, err := labFactories()[cfg.Platform].Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	if err := d.Apply(ctx, ops); err != nil {
		tb.Fatalf("apply %d ops on %s: %v", len(ops), device, err)
	}
}

// converge puts the hosts' routes on the lab devices with the drivers, as the apply engine
// would, and registers a cleanup that takes every managed route away again.
func converge(tb testing.TB, l *lab.Lab, inv *fabric.Inventory, hosts []fabric.Host) {
	tb.Helper()
	intent, _ := inv.Intent(hosts)
	for _, dev := range []string{"sw1", "fw1"} {
		var ops []fabric.RouteOp
		for _, w := range intent[dev] {
			ops = append(ops, fabric.RouteOp{Action: fabric.ActionAdd, Route: w.Route})
		}
		apply(tb, l, dev, ops)
	}
	tb.Cleanup(func() { clearManaged(tb, l) })
}

// clearManaged deletes every managed route the drivers see on both devices.
func clearManaged(tb testing.TB, l *lab.Lab) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for name, cfg := range labDrivers(l) {
		cfg.OpTimeout = 5 * time.Minute
		d, err := labFactories()[cfg.Platform].Open(ctx, cfg)
		if err != nil {
			tb.Errorf("cleanup %s: %v", name, err)
			continue
		}
		rs, err := d.Routes(ctx)
		if err == nil && len(rs) > 0 {
			ops := make([]fabric.RouteOp, len(rs))
			for i, r := range rs {
				ops[i] = fabric.RouteOp{Action: fabric.ActionDelete, Route: r}
			}
			err = d.Apply(ctx, ops)
		}
		if err != nil {
			tb.Errorf("cleanup %s: %v", name, err)
		}
		d.Close()
	}
}

func labHosts(l *lab.Lab) []fabric.Host {
	return []fabric.Host{
		{Name: "docker-01", Address: l.Hosts["host1"].Uplink, Segment: "rack1", Subnet: netip.MustParsePrefix("10.210.1.0/24"), State: fabric.HostActive},
		{Name: "docker-02", Address: netip.MustParseAddr("10.10.10.102"), Segment: "rack1", Subnet: netip.MustParsePrefix("10.210.2.0/24"), State: fabric.HostActive},
	}
}

// TestLabVerify: with intent on both devices the fabric is in sync, routes outside the pool
// never count; then a route removed by hand on sw1 and a leftover added by hand inside the
// pool on fw1 are reported, and nothing else.
func TestLabVerify(t *testing.T) {
	l := labtest.Require(t)
	ctx := t.Context()
	inv := labInventory(l, 24)
	hosts := labHosts(l)
	converge(t, l, inv, hosts)
	v := labVerifier(l, inv, hosts...)

	// Routes outside the pool, on both devices: never reported.
	if _, err := l.Vtysh(ctx, "sw1", fmt.Sprintf("ip route %s 10.10.10.1", labOutside)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = l.Vtysh(context.Background(), "sw1", fmt.Sprintf("no ip route %s 10.10.10.1", labOutside))
	})
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "add", labOutside.String(), "via", "10.10.20.1", "proto", "202"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = l.Exec(context.Background(), "fw1", "ip", "route", "del", labOutside.String(), "via", "10.10.20.1")
	})

	r, err := v.Verify(ctx, verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.InSync {
		t.Fatalf("in sync = false after converging: %+v", r.Devices)
	}

	// By hand: sw1 loses docker-01's route; fw1 gains a leftover inside the pool with
	// returnpath's route protocol (what a decommissioned host's route looks like).
	if _, err := l.Vtysh(ctx, "sw1", "no ip route 10.210.1.0/24 "+l.Hosts["host1"].Uplink.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "add", "10.210.99.0/24", "via", "10.10.20.1", "proto", "202"); err != nil {
		t.Fatal(err)
	}
	r, err = v.Verify(ctx, verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if r.InSync {
		t.Error("in sync = true after drift by hand")
	}
	type diffs struct {
		Status     verify.Status
		Missing    []string
		Unexpected []string
		Wrong      int
	}
	got := map[string]diffs{}
	for _, d := range r.Devices {
		x := diffs{Status: d.Status, Wrong: len(d.WrongNextHop)}
		for _, m := range d.Missing {
			x.Missing = append(x.Missing, m.String())
		}
		for _, u := range d.Unexpected {
			x.Unexpected = append(x.Unexpected, u.String())
		}
		got[d.Device] = x
	}
	want := map[string]diffs{
		"sw1": {Status: verify.StatusDrift, Missing: []string{"10.210.1.0/24 via " + l.Hosts["host1"].Uplink.String() + " vrf default (host docker-01)"}},
		"fw1": {Status: verify.StatusDrift, Unexpected: []string{"10.210.99.0/24 via 10.10.20.1 vrf default"}},
	}
	if diff := gocmp.Diff(got, want); diff != "" {
		t.Errorf("report (-got +want):\n%s", diff)
	}
}

// TestLabVerifyUnreachable: sw1 cannot be reached (nothing listens on the port), and fw1's
// drift is still reported in full.
func TestLabVerifyUnreachable(t *testing.T) {
	l := labtest.Require(t)
	ctx := t.Context()
	inv := labInventory(l, 24)
	hosts := labHosts(l)
	converge(t, l, inv, hosts)
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "del", "10.210.2.0/24", "via", "10.10.20.1", "proto", "202"); err != nil {
		t.Fatal(err)
	}
	v := labVerifier(l, inv, hosts...)
	sw := v.Devices.Configs["sw1"]
	sw.Address = netip.AddrPortFrom(sw.Address.Addr(), 1)
	v.Devices.Configs["sw1"] = sw
	r, err := v.Verify(ctx, verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	sw1, fw1 := device(r, "sw1"), device(r, "fw1")
	if sw1.Status != verify.StatusUnreachable || sw1.ErrorKind != "unreachable" {
		t.Errorf("sw1 = %+v, want unreachable", sw1)
	}
	if fw1.Status != verify.StatusDrift || len(fw1.Missing) != 1 || fw1.Missing[0].Host != "docker-02" || len(fw1.Unexpected) != 0 {
		t.Errorf("fw1 = %+v, want drift: docker-02's route missing", fw1)
	}
	if r.InSync {
		t.Error("in sync = true with sw1 unread")
	}
}

// BenchmarkLabVerify5000 is the target: two devices with 5,000 managed routes each,
// a full verify (both sessions opened, both read, compared) in under 2 s.
//
//	go test -run '^$' -bench BenchmarkLabVerify5000 -benchtime 5x ./internal/verify
func BenchmarkLabVerify5000(b *testing.B) {
	l := labtest.Require(b)
	const n = 5000
	inv := labInventory(l, 29) // 8,192 subnets of /29 in 10.210.0.0/16
	pool := inv.Pools[0]
	hosts := make([]fabric.Host, n)
	for i := range hosts {
		sub, _ := pool.Subnet(uint64(i))
		hosts[i] = fabric.Host{Name: fmt.Sprintf("docker-%05d", i), Address: netip.AddrFrom4([4]byte{10, 10, 10, byte(2 + i%250)}),
			Segment: "rack1", Subnet: sub, State: fabric.HostActive}
	}
	converge(b, l, inv, hosts)
	v := labVerifier(l, inv, hosts...)
	b.ResetTimer()
	var worst time.Duration
	sums := map[string]float64{}
	runs := 0
	for b.Loop() {
		start := time.Now()
		r, err := v.Verify(context.Background(), verify.Filter{})
		if err != nil {
			b.Fatal(err)
		}
		worst = max(worst, time.Since(start))
		if !r.InSync || len(r.Devices) != 2 {
			b.Fatalf("not in sync: %+v", r.Devices)
		}
		for _, d := range r.Devices {
			sums[d.Device] += d.TookMS
		}
		runs++
	}
	for dev, sum := range sums {
		b.ReportMetric(sum/float64(runs), dev+"-ms/op")
	}
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
	if worst > 2*time.Second {
		b.Errorf("slowest full verify took %v, want under 2 s", worst)
	}
}
