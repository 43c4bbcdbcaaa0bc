package ssh

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/asa"
)

// The cisco_asa driver's tests run against drivers/ssh/emulate/asa, an in-process emulation
// of the ASA CLI built from Cisco's documentation: no ASA image runs on this machine.

// startASA starts an emulated ASA and returns it with a driver config that reaches it,
// routes leaving by "inside". The enable secret is the login password unless opts sets one.
func startASA(t testing.TB, opts asa.Options) (*asa.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "admin", "s3cret-asa"
	if opts.EnablePassword == "" {
		opts.EnablePassword = opts.Password
	}
	if opts.EnablePassword == "-" {
		opts.EnablePassword = ""
	}
	dev, err := asa.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	cfg := emulatedConfig(t, dev, "fw1", route.PlatformCiscoASA, opts.Username, opts.Password)
	cfg.ASA = drivers.ASAConfig{Interface: "inside"}
	return dev, cfg
}

func asaHarness(t *testing.T, opts asa.Options) drivertest.Harness {
	dev, cfg := startASA(t, opts)
	other, err := asa.Start(asa.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	h := drivertest.Harness{
		Config:     cfg,
		Open:       ASAFactory().Open,
		Preview:    ASAFactory().Preview,
		NextHops:   eosNextHops,
		NextHops6:  v6NextHops,
		Unmanaged6: v6Unmanaged,
		SkipReasons: map[string]string{
			"VRF": "Cisco ASA in routed mode has no VRFs: the driver refuses any VRF but default",
		},
		Unmanaged: labUnmanaged,
		// Every static route on asa.interface inside the pools is returnpath's.
		MarksOwnership: false,
		// A refused line makes the driver undo the batch's applied lines.
		Atomic: true,
		List: func(context.Context) ([]route.Route, error) {
			var out []route.Route
			for _, r := range dev.Routes() {
				out = append(out, route.Route{VRF: route.DefaultVRF, Prefix: r.Prefix, NextHop: r.NextHop})
			}
			return out, nil
		},
		Plant: func(_ context.Context, r route.Route) error {
			dev.Set(asa.Route{Interface: "inside", Prefix: r.Prefix, NextHop: r.NextHop, Distance: 1})
			return nil
		},
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				dev.Set(asa.Route{Interface: "inside", Prefix: p, NextHop: nh, Distance: 1})
			}
			return nil
		},
		Remove: func(_ context.Context, r route.Route) error {
			dev.Delete("inside", r.Prefix, r.NextHop)
			return nil
		},
		// The emulation refuses a multicast gateway with ASA's invalid-input error.
		Reject: func(p netip.Prefix) (route.Route, string) {
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: multicastNextHop(p)}, "Invalid input detected"
		},
	}
	withLoginFailures(t, &h, dev, other)
	return h
}

func TestASAConformance(t *testing.T) {
	drivertest.Run(t, asaHarness(t, asa.Options{}))
}

// TestASAConformancePagingOn runs the suite against an ASA that keeps paging after "terminal
// pager 0": every read longer than 10 lines stops at <--- More --->.
func TestASAConformancePagingOn(t *testing.T) {
	drivertest.Run(t, asaHarness(t, asa.Options{IgnoreTerminalPager: true, PageLines: 10}))
}

func openASATest(t *testing.T, cfg drivers.Config) *ASADriver {
	t.Helper()
	d, err := OpenASA(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenASA: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestASAEnable: the driver enters privileged mode whether the enable secret is the login
// password, empty, or not asked for (auto-enable), and reports an auth error otherwise.
func TestASAEnable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  asa.Options
		fails bool // the session must not open, with an auth error
	}{
		{name: "login password", opts: asa.Options{}},
		{name: "empty secret", opts: asa.Options{EnablePassword: "-"}},
		{name: "auto-enable", opts: asa.Options{AutoEnable: true, EnablePassword: "unused"}},
		{name: "other secret", opts: asa.Options{EnablePassword: "something-else"}, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, cfg := startASA(t, tc.opts)
			d, err := OpenASA(t.Context(), cfg)
			if tc.fails {
				if k := drivers.KindOf(err); k != drivers.KindAuth {
					t.Fatalf("OpenASA = %v (kind %s), want kind auth", err, k)
				}
				if strings.Contains(err.Error(), "something-else") || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q holds a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenASA: %v", err)
			}
			defer d.Close()
			if _, err := d.Routes(t.Context()); err != nil {
				t.Errorf("Routes: %v", err)
			}
		})
	}
}

// TestASARefusedLineIsUndone: ASA refuses a line in the middle of a batch and, like ASA,
// goes on with the lines after it. The driver undoes every line ASA applied (adds removed,
// deleted routes re-added): the firewall holds what it held before, every op is reported
// with ASA's text, and the session is usable afterwards.
func TestASARefusedLineIsUndone(t *testing.T) {
	t.Parallel()
	dev, cfg := startASA(t, asa.Options{})
	d := openASATest(t, cfg)
	kept := eosAdds(2, route.DefaultVRF)
	if err := d.Apply(t.Context(), kept); err != nil {
		t.Fatal(err)
	}
	before := dev.Routes()
	batch := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.98.0/24", "10.10.10.101")},
		kept[0].Inverse(),
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.99.0/24", "239.1.1.1")},
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.97.0/24", "10.10.10.102")},
	}
	err := d.Apply(t.Context(), batch)
	de := wantEveryOpRejected(t, err, batch, "Invalid input detected")
	if !strings.Contains(de.Rejections[3].Output, "undone") || strings.Contains(de.Rejections[2].Output, "undone") {
		t.Errorf("rejections = %+v: want the refused op with ASA's text and the others as undone", de.Rejections)
	}
	got, err := d.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []route.Route{kept[0].Route, kept[1].Route}
	if diff := cmp.Diff(sortedRoutes(got), sortedRoutes(want), routeCmp); diff != "" {
		t.Errorf("routes after the undo (-got +want):\n%s", diff)
	}
	if after := dev.Routes(); len(after) != len(before) {
		t.Errorf("routes after the undo = %+v, want %d like before", after, len(before))
	}
	if err := d.Apply(t.Context(), batch[:1]); err != nil {
		t.Fatalf("Apply after the undo: %v", err)
	}
}

// TestASAConflictIsUndone: ASA refuses a route as a whole with its documented conflict error
// (equal-cost routes must leave by one interface); the batch is undone the same way, and a
// route of the same prefix on another interface is not returnpath's.
func TestASAConflictIsUndone(t *testing.T) {
	t.Parallel()
	dev, cfg := startASA(t, asa.Options{})
	d := openASATest(t, cfg)
	adds := eosAdds(3, route.DefaultVRF)
	dev.Set(asa.Route{Interface: "dmz", Prefix: adds[2].Route.Prefix, NextHop: netip.MustParseAddr("10.10.30.1"), Distance: 1})
	err := d.Apply(t.Context(), adds)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != 3 ||
		!strings.Contains(de.Rejections[0].Output, "possible conflict with existing routes") {
		t.Fatalf("Apply = %v, want every op rejected with ASA's conflict text", err)
	}
	if got := dev.Routes(); len(got) != 1 || got[0].Interface != "dmz" {
		t.Errorf("routes after the undo = %+v, want only the dmz one", got)
	}
	if got, err := d.Routes(t.Context()); err != nil || len(got) != 0 {
		t.Errorf("Routes = %v, %v: want none (the dmz route is not on asa.interface)", got, err)
	}
}

// TestASADroppedMidBatch: the connection drops after ASA applied the first line of a batch;
// the driver must say it cannot know, and a new session reads the truth.
func TestASADroppedMidBatch(t *testing.T) {
	t.Parallel()
	dev, cfg := startASA(t, asa.Options{})
	d := openASATest(t, cfg)
	batch := eosAdds(3, route.DefaultVRF)
	dev.DropNextCommit()
	err := d.Apply(t.Context(), batch)
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply = %v (kind %s), want indeterminate", err, k)
	}
	got, err := openASATest(t, cfg).Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, []route.Route{batch[0].Route}, routeCmp); diff != "" {
		t.Errorf("routes after the drop (-got +want):\n%s", diff)
	}
}

// TestASAUndoFails: when ASA refuses the undo too, or the session drops during it, the
// outcome is indeterminate.
func TestASAUndoFails(t *testing.T) {
	t.Parallel()
	dev, cfg := startASA(t, asa.Options{})
	d := openASATest(t, cfg)
	batch := append(eosAdds(1, route.DefaultVRF),
		route.RouteOp{Action: route.ActionAdd, Route: mustRoute("default", "10.210.99.0/24", "239.1.1.1")})
	// The first route line that parses is the batch's good add; the second is the undo's
	// "no route" of it.
	dev.FailCommitAt(2, "ERROR: Unable to remove route entry")
	err := d.Apply(t.Context(), batch)
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply whose undo is refused = %v (kind %s), want indeterminate", err, k)
	}
	got, err := d.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, []route.Route{batch[0].Route}, routeCmp); diff != "" {
		t.Errorf("routes after the refused undo (-got +want):\n%s", diff)
	}
}

func TestASAPreviewGolden(t *testing.T) {
	t.Parallel()
	cfg := previewConfig(route.PlatformCiscoASA)
	cfg.ASA.Interface = "inside"
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.10.0/24", "10.10.20.1")},
		{Action: route.ActionDelete, Route: mustRoute("default", "10.210.20.0/24", "10.10.20.2")},
		{Action: route.ActionAdd, Route: mustRoute("default", "2001:db8:100:1::/64", "2001:db8::1")},
		{Action: route.ActionDelete, Route: mustRoute("default", "2001:db8:100:2::/64", "2001:db8::1")},
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.40.5/32", "10.10.20.1")},
	}
	lines, err := Preview(cfg, ops)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "asa_preview.golden", strings.Join(lines, "\n")+"\n")
}

// TestASARefusesWhatItCannotRender: the settings and VRFs ASA cannot hold are refused before
// anything is rendered, naming the key at fault.
func TestASARefusesWhatItCannotRender(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, nameif, vrf, field string
	}{
		{name: "no interface", nameif: "", vrf: "default", field: "asa.interface"},
		{name: "interface with a space", nameif: "inside 0.0.0.0 0.0.0.0 1.1.1.1", vrf: "default", field: "asa.interface"},
		{name: "interface with a newline", nameif: "inside\nwrite erase", vrf: "default", field: "asa.interface"},
		{name: "interface starting with a digit", nameif: "0inside", vrf: "default", field: "asa.interface"},
		{name: "interface too long", nameif: strings.Repeat("i", 49), vrf: "default", field: "asa.interface"},
		{name: "named VRF", nameif: "inside", vrf: "blue", field: "vrf"},
	} {
		cfg := previewConfig(route.PlatformCiscoASA)
		cfg.ASA.Interface = tc.nameif
		cfg.VRF = tc.vrf
		var fe *route.FieldError
		if err := ASACheck(cfg); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: ASACheck = %v, want a field error naming %s", tc.name, err, tc.field)
		}
		if _, err := ASAPreview(cfg, []route.RouteOp{{Action: route.ActionAdd, Route: mustRoute("default", "10.210.10.0/24", "10.10.20.1")}}); err == nil {
			t.Errorf("%s: ASAPreview = nil error, want a refusal", tc.name)
		}
	}
	cfg := previewConfig(route.PlatformCiscoASA)
	cfg.ASA.Interface = "inside"
	if _, err := ASAPreview(cfg, []route.RouteOp{{Action: route.ActionAdd, Route: mustRoute("blue", "10.210.10.0/24", "10.10.20.1")}}); err == nil {
		t.Error("ASAPreview of a route in VRF blue = nil error, want a refusal")
	}
	cfg.ASA.Interface, cfg.VRF = "inside-2.vlan_10", ""
	if err := ASACheck(cfg); err != nil {
		t.Errorf("ASACheck of a valid config = %v", err)
	}
}

// TestParseASARoutes reads "show running-config route" and "show running-config ipv6" in the
// format ASA prints them: only routes on asa.interface count.
func TestParseASARoutes(t *testing.T) {
	t.Parallel()
	text := string(readTestdata(t, "asa_show_running_config_route.txt")) + string(readTestdata(t, "asa_show_running_config_ipv6.txt"))
	golden(t, "asa_show_running_config_route.golden", routesText(parseASARoutes(text, "inside")))
}

// TestASAVersion: device check's version line is show version's software version line.
func TestASAVersion(t *testing.T) {
	t.Parallel()
	_, cfg := startASA(t, asa.Options{Version: "9.18(3)56"})
	d := openASATest(t, cfg)
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != "Cisco Adaptive Security Appliance Software Version 9.18(3)56" {
		t.Errorf("Version = %q", v)
	}
	if _, err := d.Routes(t.Context()); err != nil {
		t.Errorf("Routes after Version: %v", err)
	}
}

// FuzzParseASARoutes checks that any text yields only valid default-VRF routes that render
// back, as a route line, to the same route.
func FuzzParseASARoutes(f *testing.F) {
	f.Add(string(readTestdataF(f, "asa_show_running_config_route.txt")))
	f.Add(string(readTestdataF(f, "asa_show_running_config_ipv6.txt")))
	f.Add("route inside 1.2.3.0 255.255.0.255 1.1.1.1 1\nipv6 route INSIDE ::/0 fe80::1%x\n")
	f.Add("route inside 1.2.3.4 255.255.255.0 1.1.1.1 1 track 0\nroute inside 0 0 1.1.1.1\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range parseASARoutes(text, "inside") {
			if err := r.Validate(); err != nil || r.VRF != route.DefaultVRF {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			line := asaLine(route.ActionAdd, r, "inside")
			noControl(t, "cisco_asa", line)
			got := parseASARoutes(line+"\n", "inside")
			if len(got) != 1 || got[0] != r {
				t.Fatalf("%q reads back as %v, want %v", line, got, r)
			}
		}
	})
}

// BenchmarkASAAdd1000 measures one 1,000-add Apply against the emulation, and reports the
// driver's time per route and the lines ASA applied per batch (one per route: ASA has no
// batch commit).
//
//	go test ./drivers/ssh -run '^$' -bench BenchmarkASA -benchtime 3x
func BenchmarkASAAdd1000(b *testing.B) {
	dev, cfg := startASA(b, asa.Options{})
	adds := eosAdds(1000, route.DefaultVRF)
	benchAdd1000(b, cfg, opener(OpenASA), adds, func() {
		for _, op := range adds {
			dev.Delete("inside", op.Route.Prefix, op.Route.NextHop)
		}
	}, dev.Commits)
}

// BenchmarkASAOpen measures opening a session (enable and terminal pager included).
func BenchmarkASAOpen(b *testing.B) {
	_, cfg := startASA(b, asa.Options{})
	benchOpenClose(b, cfg, opener(OpenASA))
}
