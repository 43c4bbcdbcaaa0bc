package ssh

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/eos"
)

// The arista_eos driver's tests run against drivers/ssh/emulate/eos, an in-process emulation
// of the EOS CLI built from Arista's documentation: no EOS image runs on this machine.

var eosNextHops = []netip.Addr{netip.MustParseAddr("10.10.10.101"), netip.MustParseAddr("10.10.10.102")}

// startEOS starts an emulated switch with VRF blue and returns it with a driver config that
// reaches it.
func startEOS(t testing.TB, opts eos.Options) (*eos.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "admin", "s3cret-eos"
	opts.VRFs = []string{"blue"}
	dev, err := eos.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev, emulatedConfig(t, dev, "sw1", route.PlatformAristaEOS, opts.Username, opts.Password)
}

func eosHarness(t *testing.T, opts eos.Options) drivertest.Harness {
	dev, cfg := startEOS(t, opts)
	other, err := eos.Start(eos.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	h := drivertest.Harness{
		Config:         cfg,
		Open:           EOSFactory().Open,
		Preview:        EOSFactory().Preview,
		NextHops:       eosNextHops,
		NextHops6:      v6NextHops,
		Unmanaged6:     v6Unmanaged,
		VRF:            "blue",
		Unmanaged:      labUnmanaged,
		MarksOwnership: true,
		Atomic:         true,
		SkipReasons:    map[string]string{"RepairForeignIndexedNextHop": "EOS keys static routes by prefix and next hop, not by an index"},
		List: func(context.Context) ([]route.Route, error) {
			var out []route.Route
			for _, r := range dev.Routes() {
				out = append(out, route.Route{VRF: r.VRF, Prefix: r.Prefix, NextHop: r.NextHop})
			}
			return out, nil
		},
		// A foreign route: the same prefix and next hop form, without returnpath's name.
		Plant: func(_ context.Context, r route.Route) error {
			dev.Set(eos.Route{VRF: r.VRF, Prefix: r.Prefix, NextHop: r.NextHop, Name: "ops-team"})
			return nil
		},
		// One line per next hop, each with returnpath's name, as someone editing returnpath's
		// routes by hand would leave them.
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				dev.Set(eos.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh, Name: eosOwner})
			}
			return nil
		},
		Remove: func(_ context.Context, r route.Route) error {
			dev.Delete(r.VRF, r.Prefix, r.NextHop)
			return nil
		},
		// EOS's parser refuses a multicast next hop.
		Reject: func(p netip.Prefix) (route.Route, string) {
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: multicastNextHop(p)}, "% Invalid input"
		},
	}
	withLoginFailures(t, &h, dev, other)
	return h
}

func TestEOSConformance(t *testing.T) {
	drivertest.Run(t, eosHarness(t, eos.Options{}))
}

// TestEOSConformancePagingOn runs the suite against a switch where "terminal length 0" does
// not turn paging off: every read longer than 10 lines stops at --More--.
func TestEOSConformancePagingOn(t *testing.T) {
	drivertest.Run(t, eosHarness(t, eos.Options{IgnoreTerminalLength: true, PageLines: 10}))
}

func eosAdds(n int, vrf string) []route.RouteOp {
	ops := make([]route.RouteOp, n)
	for i := range ops {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 210, byte(i >> 5), byte(i << 3)}), 29)
		ops[i] = route.RouteOp{Action: route.ActionAdd, Route: route.Route{VRF: vrf, Prefix: p, NextHop: eosNextHops[i%2]}}
	}
	return ops
}

func openEOSTest(t *testing.T, cfg drivers.Config) *EOSDriver {
	t.Helper()
	d, err := OpenEOS(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenEOS: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestEOSCommitFailsWhole: the switch refuses the commit itself; nothing of the batch lands,
// every op is reported with the switch's text, and the session is usable afterwards.
func TestEOSCommitFailsWhole(t *testing.T) {
	t.Parallel()
	dev, cfg := startEOS(t, eos.Options{})
	d := openEOSTest(t, cfg)
	batch := eosAdds(3, route.DefaultVRF)
	dev.FailNextCommit("% Cannot commit session: verification failed")
	err := d.Apply(t.Context(), batch)
	wantEveryOpRejected(t, err, batch, "% Cannot commit")
	if got := dev.Routes(); len(got) != 0 {
		t.Errorf("running-config after the failed commit = %v, want nothing", got)
	}
	if got := dev.Commits(); got != 0 {
		t.Errorf("commits = %d, want 0", got)
	}
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatalf("Apply after the failed commit: %v", err)
	}
	if got := len(dev.Routes()); got != len(batch) {
		t.Errorf("running-config holds %d routes, want %d", got, len(batch))
	}
}

// TestEOSDroppedDuringCommit: the connection drops while the switch commits (it did commit);
// the driver must say it cannot know, never that the batch failed or may be retried blindly.
func TestEOSDroppedDuringCommit(t *testing.T) {
	t.Parallel()
	dev, cfg := startEOS(t, eos.Options{})
	d := openEOSTest(t, cfg)
	batch := eosAdds(2, route.DefaultVRF)
	dev.DropNextCommit()
	err := d.Apply(t.Context(), batch)
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply = %v (kind %s), want indeterminate", err, k)
	}
	// Re-reading the switch tells the truth: this commit landed.
	got, err := openEOSTest(t, cfg).Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []route.Route{batch[0].Route, batch[1].Route}
	drivertest.SortRoutes(got)
	drivertest.SortRoutes(want)
	if diff := cmp.Diff(got, want, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("routes after the drop (-got +want):\n%s", diff)
	}
}

// TestEOSOneCommitPerBatch: a batch of adds and deletes across VRFs is one session and one
// commit; a batch with nothing to do (deletes of routes the switch does not hold) commits
// nothing.
func TestEOSOneCommitPerBatch(t *testing.T) {
	t.Parallel()
	dev, cfg := startEOS(t, eos.Options{})
	d := openEOSTest(t, cfg)
	batch := slices.Concat(eosAdds(40, route.DefaultVRF), eosAdds(40, "blue"))
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if got := dev.Commits(); got != 1 {
		t.Errorf("commits after one batch = %d, want 1", got)
	}
	missing := route.RouteOp{Action: route.ActionDelete, Route: mustRoute("default", "10.210.200.0/24", "10.10.10.101")}
	if err := d.Apply(t.Context(), []route.RouteOp{missing}); err != nil {
		t.Fatal(err)
	}
	if got := dev.Commits(); got != 1 {
		t.Errorf("commits after a batch with nothing to do = %d, want 1", got)
	}
}

func TestEOSPreviewGolden(t *testing.T) {
	t.Parallel()
	lines, err := Preview(previewConfig(route.PlatformAristaEOS), previewOps)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "eos_preview.golden", strings.Join(lines, "\n")+"\n")
}

// TestParseEOSRoutes reads running-config in the format EOS prints it: only the lines with
// exactly returnpath's form and name count.
func TestParseEOSRoutes(t *testing.T) {
	t.Parallel()
	golden(t, "eos_running_config.golden", routesText(parseEOSRoutes(string(readTestdata(t, "eos_running_config.txt")))))
}

// TestSplitEOSTranscript attributes EOS's answers to the lines sent, with paging markers
// removed.
func TestSplitEOSTranscript(t *testing.T) {
	t.Parallel()
	transcript := "configure session rp-1\r\nsw1(config-s-rp-1)#ip route 10.210.0.0/24 239.1.1.1 name returnpath\r\n" +
		"% Invalid input\r\nsw1(config-s-rp-1)#ip route 10.210.1.0/24 10.0.0.1 name returnpath\r\nsw1(config-s-rp-1)#"
	rs := splitEOSTranscript(transcript)
	if len(rs) != 4 {
		t.Fatalf("results = %+v, want 4", rs)
	}
	if got := eosRefusal(rs[1].Output); got != "% Invalid input" {
		t.Errorf("refusal of line 1 = %q", got)
	}
	if got := eosRefusal(rs[2].Output); got != "" {
		t.Errorf("refusal of line 2 = %q, want none", got)
	}
	paged := "ip route 10.210.0.0/24 10.0.0.1 name returnpath\r\n --More-- \r          \rip route 10.210.1.0/24 10.0.0.1 name returnpath\r\n"
	if got := len(parseEOSRoutes(stripPager(paged, string(eosPager)))); got != 2 {
		t.Errorf("routes read across a page break = %d, want 2", got)
	}
}

// FuzzParseEOSRoutes checks that any text yields only valid routes that render back to
// exactly the line they came from.
func FuzzParseEOSRoutes(f *testing.F) {
	f.Add("ip route 10.210.0.0/24 10.0.0.1 name returnpath\nip route vrf blue 10.210.1.0/24 10.0.0.2 name returnpath\n")
	f.Add("ipv6 route 2001:db8::/64 fe80::1 name returnpath\nip route 10.0.0.0/8 Ethernet1 name returnpath\n")
	f.Add("ip route vrf a\x00b 1.2.3.0/24 1.1.1.1 name returnpath\nip route 1.2.3.0/24 1.1.1.1 200 name returnpath\n")
	f.Add("ip route vrf\nip route\nip route 1.0.0.0/8 2001:db8::1 name returnpath\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range parseEOSRoutes(text) {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			line := eosRouteLine(r)
			noControl(t, "arista_eos", line)
			if got := parseEOSRoutes(line); len(got) != 1 || got[0] != r {
				t.Fatalf("%q reads back as %v, want %v", line, got, r)
			}
		}
	})
}

// BenchmarkEOSAdd1000 measures one 1,000-add Apply (one session, one commit) against the
// emulation, and reports the driver's time per route and the commits per batch.
//
//	go test ./drivers/ssh -run '^$' -bench BenchmarkEOS -benchtime 10x
func BenchmarkEOSAdd1000(b *testing.B) {
	dev, cfg := startEOS(b, eos.Options{})
	adds := eosAdds(1000, route.DefaultVRF)
	benchAdd1000(b, cfg, opener(OpenEOS), adds, func() {
		for _, op := range adds {
			dev.Delete(op.Route.VRF, op.Route.Prefix, op.Route.NextHop)
		}
	}, dev.Commits)
}

// BenchmarkEOSOpen measures opening a session (SSH, enable, terminal settings).
func BenchmarkEOSOpen(b *testing.B) {
	_, cfg := startEOS(b, eos.Options{})
	benchOpenClose(b, cfg, opener(OpenEOS))
}

// TestEOSVersion: device check's version line comes from "show version": the model and the
// software image version, read through the same session, with the routes still readable after.
func TestEOSVersion(t *testing.T) {
	t.Parallel()
	_, cfg := startEOS(t, eos.Options{})
	d := openEOSTest(t, cfg)
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != "Arista vEOS-lab, software image version 4.28.3M" {
		t.Errorf("Version = %q", v)
	}
	if _, err := d.Routes(t.Context()); err != nil {
		t.Errorf("Routes after Version: %v", err)
	}
	for _, tc := range []struct{ name, out, want string }{
		{name: "model and image", out: "Arista DCS-7050SX-64\nHardware version: 01.11\nSoftware image version: 4.20.5F\n", want: "Arista DCS-7050SX-64, software image version 4.20.5F"},
		{name: "no image line", out: "Arista DCS-7050SX-64\n", want: "Arista DCS-7050SX-64"},
		{name: "nothing", out: "\n", want: ""},
	} {
		if got := eosVersion(tc.out); got != tc.want {
			t.Errorf("%s: eosVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}
