package ssh

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/fortios"
)

// The fortinet_fortios driver's tests run against drivers/ssh/emulate/fortios, an in-process
// emulation of the FortiOS CLI built from Fortinet's documentation: no FortiOS image runs on
// this machine.

// startFortiOS starts an emulated FortiGate and returns it with a driver config that reaches
// it, routes leaving by port2.
func startFortiOS(t testing.TB, opts fortios.Options) (*fortios.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "admin", "s3cret-fgt"
	dev, err := fortios.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	cfg := emulatedConfig(t, dev, "fw1", route.PlatformFortiOS, opts.Username, opts.Password)
	cfg.FortiOS = drivers.FortiOSConfig{Device: "port2"}
	return dev, cfg
}

// fortiosVRFNum is the emulation's VRF number of a returnpath VRF name.
func fortiosVRFNum(t testing.TB, vrf string) int {
	n, err := fortiosVRF(vrf)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func fortiosHarness(t *testing.T, opts fortios.Options) drivertest.Harness {
	dev, cfg := startFortiOS(t, opts)
	other, err := fortios.Start(fortios.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	planted := uint32(9000) // numbers the driver never chooses: FortiOS numbers up from the highest
	h := drivertest.Harness{
		Config:         cfg,
		Open:           FortiOSFactory().Open,
		Preview:        FortiOSFactory().Preview,
		NextHops:       eosNextHops,
		NextHops6:      v6NextHops,
		Unmanaged6:     v6Unmanaged,
		VRF:            "7",
		Unmanaged:      labUnmanaged,
		MarksOwnership: true,
		// A refused line makes the driver undo the batch: it lands whole or not at all.
		Atomic:         true,
		ForeignIndexes: true,
		List: func(context.Context) ([]route.Route, error) {
			var out []route.Route
			for _, e := range dev.Entries() {
				vrf := route.DefaultVRF
				if e.VRF != 0 {
					vrf = strconv.Itoa(e.VRF)
				}
				if e.Gateway.IsValid() {
					out = append(out, route.Route{VRF: vrf, Prefix: e.Dst, NextHop: e.Gateway})
				}
			}
			return out, nil
		},
		// A foreign route: the same fields with another comment.
		Plant: func(_ context.Context, r route.Route) error {
			dev.Set(fortios.Entry{Dst: r.Prefix, Gateway: r.NextHop, Device: "port2", Comment: "ops-team", VRF: fortiosVRFNum(t, r.VRF)})
			return nil
		},
		// One entry per next hop with returnpath's comment, at numbers the driver never
		// chooses, as someone editing returnpath's routes by hand would leave them.
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				planted++
				dev.Set(fortios.Entry{Seq: planted, Dst: p, Gateway: nh, Device: "port2", Comment: fortiosOwner})
			}
			return nil
		},
		Remove: func(_ context.Context, r route.Route) error {
			dev.Delete(r.Prefix, r.NextHop, fortiosVRFNum(t, r.VRF))
			return nil
		},
		// The emulation refuses a multicast gateway at "set gateway".
		Reject: func(p netip.Prefix) (route.Route, string) {
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: multicastNextHop(p)}, "value parse error"
		},
	}
	withLoginFailures(t, &h, dev, other)
	return h
}

func TestFortiOSConformance(t *testing.T) {
	drivertest.Run(t, fortiosHarness(t, fortios.Options{}))
}

// TestFortiOSConformancePagingOn runs the suite against a FortiGate whose console pages
// ("set output more", FortiOS's default): every read longer than 10 lines stops at --More--.
func TestFortiOSConformancePagingOn(t *testing.T) {
	drivertest.Run(t, fortiosHarness(t, fortios.Options{Paging: true, PageLines: 10}))
}

func openFortiOSTest(t *testing.T, cfg drivers.Config) *FortiOSDriver {
	t.Helper()
	d, err := OpenFortiOS(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenFortiOS: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func sortedRoutes(rs []route.Route) []route.Route {
	rs = slices.Clone(rs)
	drivertest.SortRoutes(rs)
	return rs
}

// TestFortiOSRefusedLineIsUndone: FortiOS refuses a line in the middle of a batch after
// earlier entries were saved and an entry deleted, and saves the refused entry without the
// refused field. The driver undoes all of it: the firewall holds exactly what it held before,
// every op is reported with FortiOS's text, and the session is usable afterwards.
func TestFortiOSRefusedLineIsUndone(t *testing.T) {
	t.Parallel()
	dev, cfg := startFortiOS(t, fortios.Options{})
	d := openFortiOSTest(t, cfg)
	kept := eosAdds(2, route.DefaultVRF)
	if err := d.Apply(t.Context(), kept); err != nil {
		t.Fatal(err)
	}
	before := dev.Entries()
	bad := mustRoute("default", "10.210.99.0/24", "239.1.1.1")
	batch := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.98.0/24", "10.10.10.101")},
		kept[0].Inverse(),
		{Action: route.ActionAdd, Route: bad},
		{Action: route.ActionAdd, Route: mustRoute("7", "10.210.97.0/24", "10.10.10.102")},
	}
	err := d.Apply(t.Context(), batch)
	de := wantEveryOpRejected(t, err, batch, "value parse error")
	if !strings.Contains(de.Rejections[0].Output, "undone") || strings.Contains(de.Rejections[2].Output, "undone") {
		t.Errorf("rejections = %+v: want the refused op with FortiOS's text and the others as undone", de.Rejections)
	}
	got, err := d.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []route.Route{kept[0].Route, kept[1].Route}
	if diff := cmp.Diff(sortedRoutes(got), sortedRoutes(want), routeCmp); diff != "" {
		t.Errorf("routes after the undo (-got +want):\n%s", diff)
	}
	// No entry of the batch is left, not even the one FortiOS saved without its gateway.
	if after := dev.Entries(); len(after) != len(before) {
		t.Errorf("entries after the undo = %+v, want %d like before", after, len(before))
	}
	if err := d.Apply(t.Context(), batch[:1]); err != nil {
		t.Fatalf("Apply after the undo: %v", err)
	}
}

// TestFortiOSRefusedNextIsUndone: FortiOS refuses an entry as a whole at "next"; the batch is
// undone the same way.
func TestFortiOSRefusedNextIsUndone(t *testing.T) {
	t.Parallel()
	dev, cfg := startFortiOS(t, fortios.Options{})
	d := openFortiOSTest(t, cfg)
	dev.FailNextCommit("node_check_object fail! for gateway 10.10.10.101\nCommand fail. Return code -651")
	err := d.Apply(t.Context(), eosAdds(3, route.DefaultVRF))
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != 3 || !strings.Contains(de.Rejections[0].Output, "Return code -651") {
		t.Fatalf("Apply = %v, want every op rejected with FortiOS's text", err)
	}
	if got := dev.Entries(); len(got) != 0 {
		t.Errorf("entries after the undo = %+v, want none", got)
	}
}

// TestFortiOSDroppedMidBatch: the connection drops after FortiOS saved the first entry of a
// batch; the driver must say it cannot know, and a new session reads the truth.
func TestFortiOSDroppedMidBatch(t *testing.T) {
	t.Parallel()
	dev, cfg := startFortiOS(t, fortios.Options{})
	d := openFortiOSTest(t, cfg)
	batch := eosAdds(3, route.DefaultVRF)
	dev.DropNextCommit()
	err := d.Apply(t.Context(), batch)
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply = %v (kind %s), want indeterminate", err, k)
	}
	got, err := openFortiOSTest(t, cfg).Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, []route.Route{batch[0].Route}, routeCmp); diff != "" {
		t.Errorf("routes after the drop (-got +want):\n%s", diff)
	}
}

// TestFortiOSBatchNeverDuplicates: re-adding a route the firewall holds sends nothing (FortiOS
// would happily create a second entry), and a delete removes every entry of the route that
// carries returnpath's comment, duplicates included, but no other.
func TestFortiOSBatchNeverDuplicates(t *testing.T) {
	t.Parallel()
	dev, cfg := startFortiOS(t, fortios.Options{})
	d := openFortiOSTest(t, cfg)
	add := eosAdds(1, route.DefaultVRF)
	if err := d.Apply(t.Context(), add); err != nil {
		t.Fatal(err)
	}
	commits := dev.Commits()
	if err := d.Apply(t.Context(), add); err != nil {
		t.Fatal(err)
	}
	if got := dev.Commits(); got != commits {
		t.Errorf("commits after re-adding = %d, want %d", got, commits)
	}
	r := add[0].Route
	dev.Set(fortios.Entry{Dst: r.Prefix, Gateway: r.NextHop, Device: "port2", Comment: fortiosOwner})
	dev.Set(fortios.Entry{Dst: r.Prefix, Gateway: r.NextHop, Device: "port2", Comment: "ops-team"})
	if err := d.Apply(t.Context(), []route.RouteOp{add[0].Inverse()}); err != nil {
		t.Fatal(err)
	}
	left := dev.Entries()
	if len(left) != 1 || left[0].Comment != "ops-team" {
		t.Errorf("entries after the delete = %+v, want only the ops-team one", left)
	}
}

func TestFortiOSPreviewGolden(t *testing.T) {
	t.Parallel()
	cfg := previewConfig(route.PlatformFortiOS)
	cfg.FortiOS.Device = "port2"
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.10.0/24", "10.10.20.1")},
		{Action: route.ActionDelete, Route: mustRoute("default", "10.210.20.0/24", "10.10.20.2")},
		{Action: route.ActionAdd, Route: mustRoute("12", "10.210.30.0/24", "10.10.20.1")},
		{Action: route.ActionAdd, Route: mustRoute("default", "2001:db8:100:1::/64", "2001:db8::1")},
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.40.5/32", "10.10.20.1")},
	}
	lines, err := Preview(cfg, ops)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "fortios_preview.golden", strings.Join(lines, "\n")+"\n")
}

// TestFortiOSRefusesWhatItCannotRender: the settings and VRF names FortiOS cannot hold are
// refused before anything is rendered, naming the key at fault.
func TestFortiOSRefusesWhatItCannotRender(t *testing.T) {
	t.Parallel()
	add := func(vrf string) []route.RouteOp {
		return []route.RouteOp{{Action: route.ActionAdd, Route: mustRoute(vrf, "10.210.10.0/24", "10.10.20.1")}}
	}
	for _, tc := range []struct {
		name, device, vrf, field string
	}{
		{name: "no device", device: "", vrf: "default", field: "fortios.device"},
		{name: "device with a space", device: "port1 comment x", vrf: "default", field: "fortios.device"},
		{name: "device with a quote", device: `port1"`, vrf: "default", field: "fortios.device"},
		{name: "device with a newline", device: "port1\nend", vrf: "default", field: "fortios.device"},
		{name: "device too long", device: strings.Repeat("p", 36), vrf: "default", field: "fortios.device"},
		{name: "named VRF", device: "port1", vrf: "blue", field: "vrf"},
		{name: "VRF 0", device: "port1", vrf: "0", field: "vrf"},
		{name: "VRF 252", device: "port1", vrf: "252", field: "vrf"},
		{name: "VRF 07", device: "port1", vrf: "07", field: "vrf"},
	} {
		cfg := previewConfig(route.PlatformFortiOS)
		cfg.FortiOS.Device = tc.device
		cfg.VRF = tc.vrf
		var fe *route.FieldError
		if err := FortiOSCheck(cfg); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: FortiOSCheck = %v, want a field error naming %s", tc.name, err, tc.field)
		}
		if tc.field == "vrf" {
			cfg.VRF = route.DefaultVRF
		}
		if _, err := FortiOSPreview(cfg, add(tc.vrf)); err == nil {
			t.Errorf("%s: FortiOSPreview = nil error, want a refusal", tc.name)
		}
	}
	cfg := previewConfig(route.PlatformFortiOS)
	cfg.FortiOS.Device, cfg.VRF = "wan1.100", "251"
	if err := FortiOSCheck(cfg); err != nil {
		t.Errorf("FortiOSCheck of a valid config = %v", err)
	}
}

// TestParseFortiOSRoutes reads "show router static" in the format FortiOS prints it: only
// entries of exactly returnpath's form with its comment count.
func TestParseFortiOSRoutes(t *testing.T) {
	t.Parallel()
	v4 := parseFortiOSRoutes(string(readTestdata(t, "fortios_show_router_static.txt")), false)
	v6 := parseFortiOSRoutes(string(readTestdata(t, "fortios_show_router_static6.txt")), true)
	golden(t, "fortios_show_router_static.golden", routesText(append(v4, v6...)))
}

// TestFortiOSVersion: device check's version line is get system status's Version value.
func TestFortiOSVersion(t *testing.T) {
	t.Parallel()
	_, cfg := startFortiOS(t, fortios.Options{Version: "FortiGate-60F v7.4.3,build2573,240201 (GA.M)"})
	d := openFortiOSTest(t, cfg)
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != "FortiGate-60F v7.4.3,build2573,240201 (GA.M)" {
		t.Errorf("Version = %q", v)
	}
	if _, err := d.Routes(t.Context()); err != nil {
		t.Errorf("Routes after Version: %v", err)
	}
}

// FuzzParseFortiOSRoutes checks that any text yields only valid routes that render back, as
// an entry, to the same route.
func FuzzParseFortiOSRoutes(f *testing.F) {
	f.Add(string(readTestdataF(f, "fortios_show_router_static.txt")), false)
	f.Add(string(readTestdataF(f, "fortios_show_router_static6.txt")), true)
	f.Add("edit 1\nset dst 1.2.3.0 255.255.0.255\nset gateway 1.1.1.1\nset device \"a\"\nset comment \"returnpath\"\nnext\n", false)
	f.Add("edit 1\nset gateway 1.1.1.1\nset device \"a b\"\nset comment \"return\\\"path\"\nnext\n", false)
	f.Fuzz(func(t *testing.T, text string, v6 bool) {
		for _, r := range parseFortiOSRoutes(text, v6) {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			if _, err := fortiosVRF(r.VRF); err != nil {
				t.Fatalf("parsed a VRF FortiOS cannot hold: %+v", r)
			}
			lines := fortiosAddLines(r, "port1")
			var entry strings.Builder
			for _, l := range lines[1:] {
				noControl(t, "fortinet_fortios", l)
				entry.WriteString(l + "\n")
			}
			got := parseFortiOSRoutes("edit 1\n"+entry.String(), v6)
			if len(got) != 1 || got[0] != r {
				t.Fatalf("%q reads back as %v, want %v", entry.String(), got, r)
			}
		}
	})
}

func readTestdataF(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// BenchmarkFortiOSAdd1000 measures one 1,000-add Apply against the emulation, and reports the
// driver's time per route and the changes FortiOS applied per batch (one per entry: FortiOS
// has no batch commit).
//
//	go test ./drivers/ssh -run '^$' -bench BenchmarkFortiOS -benchtime 3x
func BenchmarkFortiOSAdd1000(b *testing.B) {
	dev, cfg := startFortiOS(b, fortios.Options{})
	adds := eosAdds(1000, route.DefaultVRF)
	benchAdd1000(b, cfg, opener(OpenFortiOS), adds, func() {
		for _, op := range adds {
			dev.Delete(op.Route.Prefix, op.Route.NextHop, 0)
		}
	}, dev.Commits)
}

// BenchmarkFortiOSOpen measures opening a session.
func BenchmarkFortiOSOpen(b *testing.B) {
	_, cfg := startFortiOS(b, fortios.Options{})
	benchOpenClose(b, cfg, opener(OpenFortiOS))
}
