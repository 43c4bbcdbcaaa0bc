package ssh

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/ciscocli"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/iosxe"
)

// The cisco_iosxe driver's tests run against drivers/ssh/emulate/iosxe, an in-process
// emulation of the IOS XE CLI built from Cisco's documentation: no IOS XE image runs on this
// machine. They share their cases with the cisco_nxos driver's (nxos_test.go): both drivers
// share the commit model.

// startIOSXE starts an emulated IOS XE router with VRF blue and returns it with a driver
// config that reaches it.
func startIOSXE(t testing.TB, opts iosxe.Options) (*iosxe.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "admin", "s3cret-iosxe"
	opts.VRFs = []string{"blue"}
	dev, err := iosxe.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	return dev, ciscoConfig(t, dev, route.PlatformCiscoIOSXE, opts)
}

func iosxeHarness(t *testing.T, opts iosxe.Options) drivertest.Harness {
	dev, cfg := startIOSXE(t, opts)
	other, err := iosxe.Start(iosxe.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	return ciscoHarness(t, dev, other, cfg, IOSXEFactory(), ciscocli.Route{Name: "returnpath"}, "% Invalid input detected")
}

func TestIOSXEConformance(t *testing.T) {
	drivertest.Run(t, iosxeHarness(t, iosxe.Options{}))
}

// TestIOSXEConformancePagingOn runs the suite against a router where "terminal length 0"
// does not turn paging off: every read longer than 10 lines stops at --More--.
func TestIOSXEConformancePagingOn(t *testing.T) {
	drivertest.Run(t, iosxeHarness(t, iosxe.Options{IgnoreTerminalLength: true, PageLines: 10}))
}

func openIOSXETest(t *testing.T, cfg drivers.Config) *IOSXEDriver {
	t.Helper()
	d, err := OpenIOSXE(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenIOSXE: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestIOSXERefusedLineUndone(t *testing.T) {
	t.Parallel()
	dev, cfg := startIOSXE(t, iosxe.Options{})
	testCiscoRefusedLineUndone(t, dev, dev.FailCommitAfter, dev.Commits, openIOSXETest(t, cfg), "%Invalid next hop address")
}

// TestIOSXERefusedVRF: a route in a VRF the router does not have is refused with IOS XE's
// text, and the ops applied before it are undone.
func TestIOSXERefusedVRF(t *testing.T) {
	t.Parallel()
	dev, cfg := startIOSXE(t, iosxe.Options{})
	d := openIOSXETest(t, cfg)
	batch := slices.Concat(ciscoAdds(2, route.DefaultVRF), ciscoAdds(1, "red"))
	err := d.Apply(t.Context(), batch)
	if drivers.KindOf(err) != drivers.KindRejected || !strings.Contains(err.Error(), "IP routing table red does not exist") {
		t.Fatalf("Apply = %v, want rejected with the router's text", err)
	}
	if got := dev.Routes(); len(got) != 0 {
		t.Errorf("routes after the refused batch = %v, want none", got)
	}
}

func TestIOSXEDroppedMidBatch(t *testing.T) {
	t.Parallel()
	dev, cfg := startIOSXE(t, iosxe.Options{})
	testCiscoDropped(t, dev.DropCommitAfter, openIOSXETest(t, cfg), func() drivers.Driver { return openIOSXETest(t, cfg) })
}

func TestIOSXEDroppedDuringUndo(t *testing.T) {
	t.Parallel()
	dev, cfg := startIOSXE(t, iosxe.Options{})
	testCiscoDroppedDuringUndo(t, dev.FailCommitAfter, dev.DropCommitAfter, openIOSXETest(t, cfg))
}

// TestIOSXESendsOnlyChanges: the router's "%No matching route to delete" never appears,
// because deletes of routes it does not hold under returnpath's name are not sent, and adds
// of routes it holds send nothing.
func TestIOSXESendsOnlyChanges(t *testing.T) {
	t.Parallel()
	dev, cfg := startIOSXE(t, iosxe.Options{})
	d := openIOSXETest(t, cfg)
	batch := slices.Concat(ciscoAdds(20, route.DefaultVRF), ciscoAdds(20, "blue"))
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	for _, r := range dev.Routes() {
		if r.Name != "returnpath" || r.Tag != 0 {
			t.Errorf("route %+v: want name returnpath and no tag", r)
		}
	}
	missing := route.RouteOp{Action: route.ActionDelete, Route: mustRoute("default", "10.210.200.0/24", "10.10.10.101")}
	if err := d.Apply(t.Context(), append(slices.Clone(batch), missing)); err != nil {
		t.Fatal(err)
	}
	if got := dev.Commits(); got != 40 {
		t.Errorf("route lines = %d, want the 40 of the first batch only", got)
	}
}

func TestIOSXEPreviewGolden(t *testing.T) {
	t.Parallel()
	lines, err := Preview(previewConfig(route.PlatformCiscoIOSXE), previewOps)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "iosxe_preview.golden", strings.Join(lines, "\n")+"\n")
}

// TestParseIOSXERoutes reads running-config lines in the format IOS XE prints them (netmasks,
// upper-case IPv6): only the lines with exactly returnpath's form and name count.
func TestParseIOSXERoutes(t *testing.T) {
	t.Parallel()
	golden(t, "iosxe_running_config.golden", routesText(parseIOSXERoutes(string(readTestdata(t, "iosxe_running_config.txt")))))
}

// FuzzParseIOSXERoutes checks that any text yields only valid routes that render back to
// exactly the line they came from (IPv6 aside, which IOS prints in upper case).
func FuzzParseIOSXERoutes(f *testing.F) {
	f.Add("ip route 10.210.0.0 255.255.255.0 10.0.0.1 name returnpath\nip route vrf blue 10.210.1.0 255.255.255.0 10.0.0.2 name returnpath\n")
	f.Add("ipv6 route 2001:DB8::/64 FE80::1 name returnpath\nip route 10.0.0.0 255.0.0.0 GigabitEthernet1 name returnpath\n")
	f.Add("ip route vrf a\x00b 1.2.3.0 255.255.255.0 1.1.1.1 name returnpath\nip route 1.2.3.0 255.0.255.0 1.1.1.1 name returnpath\n")
	f.Add("ip route vrf\nip route\nip route 1.0.0.0 255.0.0.0 2001:db8::1 name returnpath\nip route 1.2.3.4 255.255.255.0 1.1.1.1 name returnpath\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range parseIOSXERoutes(text) {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			lines := iosxeRender([]route.RouteOp{{Action: route.ActionAdd, Route: r}})
			if len(lines) != 1 {
				t.Fatalf("%d lines for one route", len(lines))
			}
			noControl(t, "cisco_iosxe", lines[0].Text)
			if got := parseIOSXERoutes(lines[0].Text); len(got) != 1 || got[0] != r {
				t.Fatalf("%q reads back as %v, want %v", lines[0].Text, got, r)
			}
		}
	})
}

// TestIOSXERender: IPv4 in netmask form, the VRF keyword only outside the default VRF, deletes
// without the name; lines only from typed values.
func TestIOSXERender(t *testing.T) {
	t.Parallel()
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("blue", "10.210.1.0/24", "10.0.0.1")},
		{Action: route.ActionDelete, Route: mustRoute("default", "10.210.2.8/29", "10.0.0.1")},
		{Action: route.ActionAdd, Route: mustRoute("default", "0.0.0.0/0", "10.0.0.1")},
		{Action: route.ActionDelete, Route: mustRoute("red", "2001:db8:100::/64", "2001:db8::1")},
	}
	want := []ciscoLine{
		{Op: 0, Text: "ip route vrf blue 10.210.1.0 255.255.255.0 10.0.0.1 name returnpath"},
		{Op: 1, Text: "no ip route 10.210.2.8 255.255.255.248 10.0.0.1"},
		{Op: 2, Text: "ip route 0.0.0.0 0.0.0.0 10.0.0.1 name returnpath"},
		{Op: 3, Text: "no ipv6 route vrf red 2001:db8:100::/64 2001:db8::1"},
	}
	if diff := cmp.Diff(iosxeRender(ops), want); diff != "" {
		t.Errorf("iosxeRender (-got +want):\n%s", diff)
	}
	cfg := previewConfig(route.PlatformCiscoIOSXE)
	for _, bad := range []route.Route{
		mustRoute("blue\nip route 0.0.0.0 0.0.0.0 1.1.1.1", "10.210.1.0/24", "10.0.0.1"),
		mustRoute("a b", "10.210.1.0/24", "10.0.0.1"),
		{VRF: "default", Prefix: netip.MustParsePrefix("10.210.1.0/24"), NextHop: netip.MustParseAddr("fe80::1%eth0")},
		mustRoute("default", "10.210.1.5/24", "10.0.0.1"),
	} {
		if lines, err := IOSXEPreview(cfg, []route.RouteOp{{Action: route.ActionAdd, Route: bad}}); err == nil {
			t.Errorf("IOSXEPreview(%q) = %q, want refused before rendering", bad, lines)
		}
	}
}

// TestIOSXEVersion: device check's version line is the first line of "show version".
func TestIOSXEVersion(t *testing.T) {
	t.Parallel()
	_, cfg := startIOSXE(t, iosxe.Options{})
	d := openIOSXETest(t, cfg)
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != "Cisco IOS XE Software, Version 17.03.04a" {
		t.Errorf("Version = %q", v)
	}
	if _, err := d.Routes(t.Context()); err != nil {
		t.Errorf("Routes after Version: %v", err)
	}
	for _, tc := range []struct{ name, out, want string }{
		{name: "xe line", out: "\nCisco IOS XE Software, Version 16.09.05\nCisco IOS Software [Fuji], ... Version 16.9.5, RELEASE SOFTWARE (fc1)\n", want: "Cisco IOS XE Software, Version 16.09.05"},
		{name: "ios line only", out: "Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE11, RELEASE SOFTWARE (fc3)\n", want: "Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE11, RELEASE SOFTWARE (fc3)"},
		{name: "nothing", out: "\n", want: ""},
	} {
		if got := iosxeVersion(tc.out); got != tc.want {
			t.Errorf("%s: iosxeVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// BenchmarkIOSXEAdd1000 measures one 1,000-add Apply against the emulation, line by line.
//
//	go test ./drivers/ssh -run '^$' -bench 'BenchmarkIOSXE' -benchtime 3x
func BenchmarkIOSXEAdd1000(b *testing.B) {
	dev, cfg := startIOSXE(b, iosxe.Options{})
	adds := ciscoAdds(1000, route.DefaultVRF)
	benchAdd1000(b, cfg, opener(OpenIOSXE), adds, func() {
		for _, op := range adds {
			dev.Delete(op.Route.VRF, op.Route.Prefix, op.Route.NextHop)
		}
	}, dev.Commits)
}

// BenchmarkIOSXEOpen measures opening a session (SSH, terminal settings).
func BenchmarkIOSXEOpen(b *testing.B) {
	_, cfg := startIOSXE(b, iosxe.Options{})
	benchOpenClose(b, cfg, opener(OpenIOSXE))
}
