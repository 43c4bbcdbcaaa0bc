package ssh

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/ciscocli"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/nxos"
)

// The cisco_nxos driver's tests run against drivers/ssh/emulate/nxos, an in-process emulation
// of the NX-OS CLI built from Cisco's documentation: no NX-OS image runs on this machine.

// ciscoDevice is what the tests need of an emulated Cisco device, whichever its dialect.
type ciscoDevice interface {
	emulated
	Routes() []ciscocli.Route
	Set(ciscocli.Route)
	Delete(vrf string, p netip.Prefix, nh netip.Addr)
	Close() error
}

// ciscoConfig writes a known_hosts file for dev and returns a driver config that reaches it.
func ciscoConfig(t testing.TB, dev *ciscocli.Device, platform route.Platform, opts ciscocli.Options) drivers.Config {
	t.Helper()
	t.Cleanup(func() { dev.Close() })
	cfg := emulatedConfig(t, dev, "sw1", platform, opts.Username, opts.Password)
	cfg.Managed = []netip.Prefix{labPool, netip.MustParsePrefix("2001:db8:100::/48")}
	return cfg
}

// startNXOS starts an emulated Nexus switch with VRF blue and returns it with a driver config
// that reaches it.
func startNXOS(t testing.TB, opts nxos.Options) (*nxos.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "admin", "s3cret-nxos"
	opts.VRFs = []string{"blue"}
	dev, err := nxos.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	return dev, ciscoConfig(t, dev, route.PlatformCiscoNXOS, opts)
}

// ciscoHarness is the conformance harness of a Cisco platform: dev is the emulated device
// behind cfg, other another device whose host key stands in for a man in the middle, mark
// the attributes that make a planted route returnpath's, and reject a refused route's
// next hop with the device's text.
func ciscoHarness(t *testing.T, dev ciscoDevice, other *ciscocli.Device, cfg drivers.Config, f drivers.Factory, mark ciscocli.Route, rejectText string) drivertest.Harness {
	t.Cleanup(func() { other.Close() })
	h := drivertest.Harness{
		Config:         cfg,
		Open:           f.Open,
		Preview:        f.Preview,
		NextHops:       eosNextHops,
		NextHops6:      v6NextHops,
		Unmanaged6:     v6Unmanaged,
		VRF:            "blue",
		Unmanaged:      labUnmanaged,
		MarksOwnership: true,
		// Line by line with undo: a refused line leaves none of the batch on the device.
		Atomic:      true,
		SkipReasons: map[string]string{"RepairForeignIndexedNextHop": "Cisco keys static routes by prefix and next hop, not by an index"},
		List: func(context.Context) ([]route.Route, error) {
			var out []route.Route
			for _, r := range dev.Routes() {
				out = append(out, route.Route{VRF: r.VRF, Prefix: r.Prefix, NextHop: r.NextHop})
			}
			return out, nil
		},
		// A foreign route: the same prefix and next hop form, without returnpath's mark.
		Plant: func(_ context.Context, r route.Route) error {
			dev.Set(ciscocli.Route{VRF: r.VRF, Prefix: r.Prefix, NextHop: r.NextHop, Name: "ops-team", Tag: 7})
			return nil
		},
		// One line per next hop, each with returnpath's mark, as someone editing returnpath's
		// routes by hand would leave them.
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				dev.Set(ciscocli.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh, Name: mark.Name, Tag: mark.Tag})
			}
			return nil
		},
		Remove: func(_ context.Context, r route.Route) error {
			dev.Delete(r.VRF, r.Prefix, r.NextHop)
			return nil
		},
		// The parser refuses a multicast next hop.
		Reject: func(p netip.Prefix) (route.Route, string) {
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: multicastNextHop(p)}, rejectText
		},
	}
	withLoginFailures(t, &h, dev, other)
	return h
}

var nxosMark = ciscocli.Route{Name: "returnpath", Tag: 202}

func nxosHarness(t *testing.T, opts nxos.Options) drivertest.Harness {
	dev, cfg := startNXOS(t, opts)
	other, err := nxos.Start(nxos.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	return ciscoHarness(t, dev, other, cfg, NXOSFactory(), nxosMark, "% Invalid command")
}

func TestNXOSConformance(t *testing.T) {
	drivertest.Run(t, nxosHarness(t, nxos.Options{}))
}

// TestNXOSConformancePagingOn runs the suite against a switch where "terminal length 0" does
// not turn paging off: every read longer than 10 lines stops at --More--.
func TestNXOSConformancePagingOn(t *testing.T) {
	drivertest.Run(t, nxosHarness(t, nxos.Options{IgnoreTerminalLength: true, PageLines: 10}))
}

// ciscoAdds returns n adds of /29s in vrf via the two test next hops.
func ciscoAdds(n int, vrf string) []route.RouteOp {
	return eosAdds(n, vrf)
}

func openNXOSTest(t *testing.T, cfg drivers.Config) *NXOSDriver {
	t.Helper()
	d, err := OpenNXOS(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenNXOS: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// ciscoRoutes returns dev's routes as route.Routes, marks dropped.
func ciscoRoutes(dev ciscoDevice) []route.Route {
	var out []route.Route
	for _, r := range dev.Routes() {
		out = append(out, route.Route{VRF: r.VRF, Prefix: r.Prefix, NextHop: r.NextHop})
	}
	drivertest.SortRoutes(out)
	return out
}

// testCiscoRefusedLineUndone: the device accepts the first lines of a batch that deletes,
// adds across VRFs, and refuses one in the middle. Every op applied before it is undone (the
// deleted routes come back, the added ones go), nothing after it is sent, and the error lists
// every op: the refused one with the device's text, the others as undone or not applied.
func testCiscoRefusedLineUndone(t *testing.T, dev ciscoDevice, failAfter func(int, string), commits func() int, d drivers.Driver, refusal string) {
	t.Helper()
	before := ciscoAdds(2, route.DefaultVRF)
	if err := d.Apply(t.Context(), before); err != nil {
		t.Fatal(err)
	}
	want := ciscoRoutes(dev)
	start := commits()
	adds := ciscoAdds(6, "blue")[2:]
	batch := []route.RouteOp{
		{Action: route.ActionDelete, Route: before[0].Route}, // applied, undone
		adds[0], // applied, undone
		{Action: route.ActionDelete, Route: before[1].Route}, // applied, undone
		adds[1], // refused
		adds[2], // not sent
		adds[3], // not sent
	}
	failAfter(3, refusal)
	err := d.Apply(t.Context(), batch)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected {
		t.Fatalf("Apply = %v, want kind rejected", err)
	}
	if len(de.Rejections) != len(batch) {
		t.Fatalf("Rejections = %+v, want all %d ops", de.Rejections, len(batch))
	}
	for i, r := range de.Rejections {
		if r.Index != i || r.Op != batch[i] || !strings.Contains(r.Output, refusal) {
			t.Errorf("rejection %d = %d %s %q, want op %d with the device's text", i, r.Index, r.Op, r.Output, i)
		}
		switch undone := strings.Contains(r.Output, "undone"); {
		case i < 3 && !undone:
			t.Errorf("rejection %d = %q, want it reported as undone", i, r.Output)
		case i >= 3 && undone:
			t.Errorf("rejection %d = %q, was never applied", i, r.Output)
		}
	}
	if diff := cmp.Diff(ciscoRoutes(dev), want, routeCmp); diff != "" {
		t.Errorf("device after the refused batch (-got +want):\n%s", diff)
	}
	// Three lines applied, three undone; the refused line and those after it changed nothing.
	if got := commits() - start; got != 6 {
		t.Errorf("route lines applied = %d, want 3 applied and 3 undone", got)
	}
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatalf("Apply after the refusal: %v", err)
	}
}

func TestNXOSRefusedLineUndone(t *testing.T) {
	t.Parallel()
	dev, cfg := startNXOS(t, nxos.Options{})
	testCiscoRefusedLineUndone(t, dev, dev.FailCommitAfter, dev.Commits, openNXOSTest(t, cfg), "ERROR: static route limit reached")
}

// testCiscoDropped: the connection drops right after the device applied the second line of
// a batch; the driver must say it cannot know, never that the batch failed or may be
// retried blindly, and a re-read tells the truth: the first two ops landed.
func testCiscoDropped(t *testing.T, dropAfter func(int), d drivers.Driver, reopen func() drivers.Driver) {
	t.Helper()
	batch := ciscoAdds(3, route.DefaultVRF)
	dropAfter(1)
	err := d.Apply(t.Context(), batch)
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply = %v (kind %s), want indeterminate", err, k)
	}
	got, err := reopen().Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []route.Route{batch[0].Route, batch[1].Route}
	drivertest.SortRoutes(got)
	drivertest.SortRoutes(want)
	if diff := cmp.Diff(got, want, routeCmp); diff != "" {
		t.Errorf("routes after the drop (-got +want):\n%s", diff)
	}
}

func TestNXOSDroppedMidBatch(t *testing.T) {
	t.Parallel()
	dev, cfg := startNXOS(t, nxos.Options{})
	testCiscoDropped(t, dev.DropCommitAfter, openNXOSTest(t, cfg), func() drivers.Driver { return openNXOSTest(t, cfg) })
}

// testCiscoDroppedDuringUndo: a line is refused and the connection drops while the driver
// undoes the lines before it: the outcome is unknown, not a clean rejection.
func testCiscoDroppedDuringUndo(t *testing.T, failAfter func(int, string), dropAfter func(int), d drivers.Driver) {
	t.Helper()
	failAfter(2, "% Invalid command at '^' marker.")
	dropAfter(2) // the two adds, then the first undo line
	err := d.Apply(t.Context(), ciscoAdds(3, route.DefaultVRF))
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply = %v (kind %s), want indeterminate", err, k)
	}
}

func TestNXOSDroppedDuringUndo(t *testing.T) {
	t.Parallel()
	dev, cfg := startNXOS(t, nxos.Options{})
	testCiscoDroppedDuringUndo(t, dev.FailCommitAfter, dev.DropCommitAfter, openNXOSTest(t, cfg))
}

// TestNXOSSendsOnlyChanges: adds of routes the switch holds under returnpath's tag and
// deletes of routes it does not send nothing; one route line per op that changes the switch,
// VRF routes under "vrf context".
func TestNXOSSendsOnlyChanges(t *testing.T) {
	t.Parallel()
	dev, cfg := startNXOS(t, nxos.Options{})
	d := openNXOSTest(t, cfg)
	batch := slices.Concat(ciscoAdds(20, route.DefaultVRF), ciscoAdds(20, "blue"))
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if got := dev.Commits(); got != 40 {
		t.Errorf("route lines after one batch of 40 adds = %d, want 40", got)
	}
	for _, r := range dev.Routes() {
		if r.VRF != "management" && (r.Tag != 202 || r.Name != "returnpath") {
			t.Errorf("route %+v lacks returnpath's tag and name", r)
		}
	}
	missing := route.RouteOp{Action: route.ActionDelete, Route: mustRoute("default", "10.210.200.0/24", "10.10.10.101")}
	if err := d.Apply(t.Context(), append(slices.Clone(batch), missing)); err != nil {
		t.Fatal(err)
	}
	if got := dev.Commits(); got != 40 {
		t.Errorf("route lines after a batch with nothing to change = %d, want 40", got)
	}
}

func TestNXOSPreviewGolden(t *testing.T) {
	t.Parallel()
	lines, err := Preview(previewConfig(route.PlatformCiscoNXOS), previewOps)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nxos_preview.golden", strings.Join(lines, "\n")+"\n")
}

// TestParseNXOSRoutes reads running-config in the format NX-OS prints it: only the lines
// tagged 202, with nothing returnpath does not render, count.
func TestParseNXOSRoutes(t *testing.T) {
	t.Parallel()
	golden(t, "nxos_running_config.golden", routesText(parseNXOSRoutes(string(readTestdata(t, "nxos_running_config.txt")))))
}

// FuzzParseNXOSRoutes checks that any text yields only valid routes that render back to a
// line that reads as the same route, in a "vrf context" block when not in the default VRF.
func FuzzParseNXOSRoutes(f *testing.F) {
	f.Add("ip route 10.210.0.0/24 10.0.0.1 name returnpath tag 202\nvrf context blue\n  ip route 10.210.1.0/24 10.0.0.2 tag 202\n")
	f.Add("ipv6 route 2001:db8::/64 fe80::1 name returnpath tag 202\nip route 10.0.0.0/8 Ethernet1/1 tag 202\n")
	f.Add("vrf context a\x00b\n  ip route 1.2.3.0/24 1.1.1.1 tag 202\nip route 1.2.3.0/24 1.1.1.1 name x tag 202 5\n")
	f.Add("vrf context\n  ip route\nip route 1.0.0.0/8 2001:db8::1 tag 202\n interface x\n  ip route 1.0.0.0/8 1.1.1.1 tag 202\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range parseNXOSRoutes(text) {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			var text string
			for _, l := range nxosRender([]route.RouteOp{{Action: route.ActionAdd, Route: r}}) {
				noControl(t, "cisco_nxos", l.Text)
				if l.Text == "exit" {
					continue
				}
				if !l.Mode && r.VRF != route.DefaultVRF {
					text += "  "
				}
				text += l.Text + "\n"
			}
			if got := parseNXOSRoutes(text); len(got) != 1 || got[0] != r {
				t.Fatalf("%q reads back as %v, want %v", text, got, r)
			}
		}
	})
}

// TestNXOSRender: every line is built from typed values only; a VRF's ops share one "vrf
// context" and the batch returns to global configuration mode before a default-VRF op and at
// the end.
func TestNXOSRender(t *testing.T) {
	t.Parallel()
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("blue", "10.210.1.0/24", "10.0.0.1")},
		{Action: route.ActionDelete, Route: mustRoute("blue", "10.210.2.0/24", "10.0.0.1")},
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.3.0/24", "10.0.0.1")},
		{Action: route.ActionAdd, Route: mustRoute("red", "2001:db8:100::/64", "2001:db8::1")},
	}
	want := []ciscoLine{
		{Op: 0, Text: "vrf context blue", Mode: true},
		{Op: 0, Text: "ip route 10.210.1.0/24 10.0.0.1 name returnpath tag 202"},
		{Op: 1, Text: "no ip route 10.210.2.0/24 10.0.0.1"},
		{Op: 2, Text: "exit", Mode: true},
		{Op: 2, Text: "ip route 10.210.3.0/24 10.0.0.1 name returnpath tag 202"},
		{Op: 3, Text: "vrf context red", Mode: true},
		{Op: 3, Text: "ipv6 route 2001:db8:100::/64 2001:db8::1 name returnpath tag 202"},
		{Op: 3, Text: "exit", Mode: true},
	}
	if diff := cmp.Diff(nxosRender(ops), want); diff != "" {
		t.Errorf("nxosRender (-got +want):\n%s", diff)
	}
	cfg := previewConfig(route.PlatformCiscoNXOS)
	for _, bad := range []route.Route{
		mustRoute("blue\nip route 0.0.0.0/0 1.1.1.1", "10.210.1.0/24", "10.0.0.1"),
		mustRoute("a b", "10.210.1.0/24", "10.0.0.1"),
		{VRF: "default", Prefix: netip.MustParsePrefix("10.210.1.0/24"), NextHop: netip.MustParseAddr("fe80::1%eth0")},
		mustRoute("default", "10.210.1.5/24", "10.0.0.1"),
	} {
		if lines, err := NXOSPreview(cfg, []route.RouteOp{{Action: route.ActionAdd, Route: bad}}); err == nil {
			t.Errorf("NXOSPreview(%q) = %q, want refused before rendering", bad, lines)
		}
	}
}

// TestNXOSVersion: device check's version line comes from "show version": the chassis and
// the NX-OS version, read through the same session, with the routes still readable after.
func TestNXOSVersion(t *testing.T) {
	t.Parallel()
	_, cfg := startNXOS(t, nxos.Options{})
	d := openNXOSTest(t, cfg)
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != "cisco Nexus9000 C9300v Chassis, NXOS version 9.3(8)" {
		t.Errorf("Version = %q", v)
	}
	if _, err := d.Routes(t.Context()); err != nil {
		t.Errorf("Routes after Version: %v", err)
	}
	for _, tc := range []struct{ name, out, want string }{
		{name: "9.x", out: "Software\n  NXOS: version 10.2(3)\nHardware\n  cisco Nexus9000 C93180YC-EX chassis \n", want: "cisco Nexus9000 C93180YC-EX chassis, NXOS version 10.2(3)"},
		{name: "7.x system line", out: "Software\n  system:    version 7.0(3)I7(5)\nHardware\n  cisco Nexus 3048 Chassis (\"48x1GE + 4x10G Supervisor\")\n", want: "cisco Nexus 3048 Chassis (\"48x1GE + 4x10G Supervisor\"), NXOS version 7.0(3)I7(5)"},
		{name: "no chassis", out: "  NXOS: version 9.3(8)\n", want: "NXOS version 9.3(8)"},
		{name: "nothing", out: "\n", want: ""},
	} {
		if got := nxosVersion(tc.out); got != tc.want {
			t.Errorf("%s: nxosVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// BenchmarkNXOSAdd1000 measures one 1,000-add Apply against the emulation, line by line, and
// reports the time per route and the route lines (each its own commit on NX-OS) per batch.
//
//	go test ./drivers/ssh -run '^$' -bench 'BenchmarkNXOS' -benchtime 3x
func BenchmarkNXOSAdd1000(b *testing.B) {
	dev, cfg := startNXOS(b, nxos.Options{})
	adds := ciscoAdds(1000, route.DefaultVRF)
	benchAdd1000(b, cfg, opener(OpenNXOS), adds, func() {
		for _, op := range adds {
			dev.Delete(op.Route.VRF, op.Route.Prefix, op.Route.NextHop)
		}
	}, dev.Commits)
}

// BenchmarkNXOSOpen measures opening a session (SSH, terminal settings).
func BenchmarkNXOSOpen(b *testing.B) {
	_, cfg := startNXOS(b, nxos.Options{})
	benchOpenClose(b, cfg, opener(OpenNXOS))
}
