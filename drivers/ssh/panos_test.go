package ssh

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/panos"
)

// The paloalto_panos driver's tests run against drivers/ssh/emulate/panos, an in-process
// emulation of the PAN-OS CLI built from Palo Alto's documentation: no PAN-OS image runs on
// this machine.

var panosNextHops = []netip.Addr{netip.MustParseAddr("10.10.20.1"), netip.MustParseAddr("10.10.20.3")}

// startPANOS starts an emulated firewall with virtual routers default and blue and returns it
// with a driver config that reaches it.
func startPANOS(t testing.TB, opts panos.Options) (*panos.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "admin", "s3cret-panos"
	if opts.VirtualRouters == nil {
		opts.VirtualRouters = map[string][]string{"default": {"ethernet1/1", "ethernet1/2"}, "blue": {"ethernet1/3"}}
	}
	dev, err := panos.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	cfg := emulatedConfig(t, dev, "fw1", route.PlatformPANOS, opts.Username, opts.Password)
	cfg.PANOS = drivers.PANOSConfig{VirtualRouter: "default", Interface: "ethernet1/2"}
	return dev, cfg
}

func panosHarness(t *testing.T, opts panos.Options) drivertest.Harness {
	dev, cfg := startPANOS(t, opts)
	other, err := panos.Start(panos.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	// Out-of-band routes are named the way people name them; the ones the driver must count as
	// its own start with "rp-".
	foreignName := func(r route.Route) string {
		return "ops-" + strings.NewReplacer(".", "_", ":", "_", "/", "-").Replace(r.Prefix.String()) + "-" + strings.NewReplacer(".", "_", ":", "_").Replace(r.NextHop.String())
	}
	h := drivertest.Harness{
		Config:         cfg,
		Open:           PANOSFactory().Open,
		Preview:        PANOSFactory().Preview,
		NextHops:       panosNextHops,
		NextHops6:      v6NextHops,
		Unmanaged6:     v6Unmanaged,
		VRF:            "blue",
		Unmanaged:      labUnmanaged,
		MarksOwnership: true,
		Atomic:         true,
		SkipReasons:    map[string]string{"RepairForeignIndexedNextHop": "PAN-OS keys a static route by its name; each entry has one next hop, no index"},
		List: func(context.Context) ([]route.Route, error) {
			var out []route.Route
			for _, r := range dev.Routes() {
				if r.NextHop.IsValid() && r.Prefix.IsValid() {
					out = append(out, route.Route{VRF: r.VR, Prefix: r.Prefix, NextHop: r.NextHop})
				}
			}
			return out, nil
		},
		// A foreign route: the same destination and next hop, under a name of the ops team,
		// with the leaves the web interface stores.
		Plant: func(_ context.Context, r route.Route) error {
			dev.Set(panos.Route{VR: r.VRF, Name: foreignName(r), Prefix: r.Prefix, NextHop: r.NextHop, WebDefaults: true})
			return nil
		},
		// One entry per next hop, each under an "rp-" name, as someone copying returnpath's
		// route by hand would leave them.
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for i, nh := range nhs {
				dev.Set(panos.Route{VR: "default", Name: fmt.Sprintf("rp-copy-%d-%s", i, strings.NewReplacer(".", "_", ":", "_").Replace(p.Addr().String())), Prefix: p, NextHop: nh})
			}
			return nil
		},
		Remove: func(_ context.Context, r route.Route) error {
			for _, e := range dev.Routes() {
				if e.VR == r.VRF && e.Prefix == r.Prefix && e.NextHop == r.NextHop {
					dev.Delete(e.VR, e.IPv6(), e.Name)
				}
			}
			return nil
		},
		// The emulation's parser refuses a multicast next hop.
		Reject: func(p netip.Prefix) (route.Route, string) {
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: multicastNextHop(p)}, "Invalid syntax."
		},
	}
	withLoginFailures(t, &h, dev, other)
	return h
}

func TestPANOSConformance(t *testing.T) {
	drivertest.Run(t, panosHarness(t, panos.Options{}))
}

// TestPANOSConformancePagingOn runs the suite against a firewall where "set cli pager off"
// leaves the pager on: every read longer than 10 lines stops at --more--.
func TestPANOSConformancePagingOn(t *testing.T) {
	drivertest.Run(t, panosHarness(t, panos.Options{IgnorePagerOff: true, PageLines: 10}))
}

func panosAdds(n int, vrf string) []route.RouteOp {
	ops := make([]route.RouteOp, n)
	for i := range ops {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 210, byte(i >> 5), byte(i << 3)}), 29)
		ops[i] = route.RouteOp{Action: route.ActionAdd, Route: route.Route{VRF: vrf, Prefix: p, NextHop: panosNextHops[i%2]}}
	}
	return ops
}

func openPANOSTest(t *testing.T, cfg drivers.Config) *PANOSDriver {
	t.Helper()
	d, err := OpenPANOS(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenPANOS: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestPANOSCommitFailsWhole: the firewall refuses the commit; nothing of the batch lands, every
// op is reported with the firewall's text, the candidate is reverted (nothing pending), and
// the session is usable afterwards.
func TestPANOSCommitFailsWhole(t *testing.T) {
	t.Parallel()
	dev, cfg := startPANOS(t, panos.Options{})
	d := openPANOSTest(t, cfg)
	batch := panosAdds(3, route.DefaultVRF)
	dev.FailNextCommit("network -> virtual-router -> default is invalid")
	err := d.Apply(t.Context(), batch)
	for i, r := range wantEveryOpRejected(t, err, batch, "Commit failed").Rejections {
		if !strings.Contains(r.Output, "is invalid") {
			t.Errorf("rejection %d = %q, want the firewall's reason", i, r.Output)
		}
	}
	if got := dev.Routes(); len(got) != 0 {
		t.Errorf("running config after the failed commit = %v, want nothing", got)
	}
	if dev.Pending() {
		t.Error("candidate still holds the batch after the failed commit: not reverted")
	}
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatalf("Apply after the failed commit: %v", err)
	}
	if got := len(dev.Routes()); got != len(batch) {
		t.Errorf("running config holds %d routes, want %d", got, len(batch))
	}
}

// TestPANOSRefusedLineReverts: a refused line in the middle of a batch leaves nothing of the
// batch in the candidate or the running configuration.
func TestPANOSRefusedLineReverts(t *testing.T) {
	t.Parallel()
	dev, cfg := startPANOS(t, panos.Options{})
	d := openPANOSTest(t, cfg)
	batch := panosAdds(4, route.DefaultVRF)
	batch[2].Route.NextHop = netip.MustParseAddr("239.1.1.1")
	err := d.Apply(t.Context(), batch)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != 4 {
		t.Fatalf("Apply = %v, want kind rejected listing 4 ops", err)
	}
	if r := de.Rejections[2]; r.Output != "Invalid syntax." {
		t.Errorf("refused op's text = %q, want the firewall's", r.Output)
	}
	if dev.Pending() || len(dev.Routes()) != 0 || dev.Commits() != 0 {
		t.Errorf("after a refused line: pending %v, routes %v, commits %d; want nothing", dev.Pending(), dev.Routes(), dev.Commits())
	}
}

// TestPANOSDroppedDuringCommit: the connection drops while the firewall commits (it did
// commit); the driver must say it cannot know, and a new session reads the truth.
func TestPANOSDroppedDuringCommit(t *testing.T) {
	t.Parallel()
	dev, cfg := startPANOS(t, panos.Options{})
	d := openPANOSTest(t, cfg)
	batch := panosAdds(2, route.DefaultVRF)
	dev.DropNextCommit()
	err := d.Apply(t.Context(), batch)
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply = %v (kind %s), want indeterminate", err, k)
	}
	got, err := openPANOSTest(t, cfg).Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []route.Route{batch[0].Route, batch[1].Route}
	if diff := cmp.Diff(sortedRoutes(got), sortedRoutes(want), routeCmp); diff != "" {
		t.Errorf("routes after the drop (-got +want):\n%s", diff)
	}
}

// TestPANOSOneCommitPerBatch: a batch of adds and deletes across virtual routers is one
// commit; a batch with nothing to do commits nothing.
func TestPANOSOneCommitPerBatch(t *testing.T) {
	t.Parallel()
	dev, cfg := startPANOS(t, panos.Options{})
	d := openPANOSTest(t, cfg)
	batch := slices.Concat(panosAdds(40, route.DefaultVRF), panosAdds(40, "blue"))
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if got := dev.Commits(); got != 1 {
		t.Errorf("commits after one batch = %d, want 1", got)
	}
	missing := route.RouteOp{Action: route.ActionDelete, Route: mustRoute("default", "10.210.200.0/24", "10.10.20.1")}
	again := batch[:3]
	if err := d.Apply(t.Context(), append([]route.RouteOp{missing}, again...)); err != nil {
		t.Fatal(err)
	}
	if got := dev.Commits(); got != 1 {
		t.Errorf("commits after a batch with nothing to do = %d, want 1", got)
	}
}

// TestPANOSRendersTypedValues: the configured interface and virtual router reach the
// firewall, each route under its derived "rp-" name.
func TestPANOSRendersTypedValues(t *testing.T) {
	t.Parallel()
	dev, cfg := startPANOS(t, panos.Options{VirtualRouters: map[string][]string{"vr-main": {"ethernet1/2"}, "blue": nil}})
	cfg.PANOS.VirtualRouter = "vr-main"
	d := openPANOSTest(t, cfg)
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.10.0/24", "10.10.20.1")},
		{Action: route.ActionAdd, Route: mustRoute("blue", "10.210.11.0/24", "10.10.20.3")},
	}
	if err := d.Apply(t.Context(), ops); err != nil {
		t.Fatal(err)
	}
	want := []panos.Route{
		{VR: "blue", Name: "rp-10_210_11_0-24", Prefix: netip.MustParsePrefix("10.210.11.0/24"), NextHop: netip.MustParseAddr("10.10.20.3"), Interface: "ethernet1/2"},
		{VR: "vr-main", Name: "rp-10_210_10_0-24", Prefix: netip.MustParsePrefix("10.210.10.0/24"), NextHop: netip.MustParseAddr("10.10.20.1"), Interface: "ethernet1/2"},
	}
	if diff := cmp.Diff(dev.Routes(), want, routeCmp); diff != "" {
		t.Errorf("running routes (-got +want):\n%s", diff)
	}
	got, err := d.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedRoutes(got), sortedRoutes([]route.Route{ops[0].Route, ops[1].Route}), routeCmp); diff != "" {
		t.Errorf("Routes (-got +want):\n%s", diff)
	}
}

// TestPANOSNoSuchVirtualRouter: PAN-OS's "set" would create a virtual router that does not
// exist; the driver refuses the batch instead and sends nothing.
func TestPANOSNoSuchVirtualRouter(t *testing.T) {
	t.Parallel()
	dev, cfg := startPANOS(t, panos.Options{})
	d := openPANOSTest(t, cfg)
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.10.0/24", "10.10.20.1")},
		{Action: route.ActionAdd, Route: mustRoute("typo", "10.210.11.0/24", "10.10.20.3")},
	}
	err := d.Apply(t.Context(), ops)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != 2 || !strings.Contains(de.Rejections[1].Output, "typo") {
		t.Fatalf("Apply = %v, want rejected naming the virtual router", err)
	}
	if dev.Pending() || len(dev.Routes()) != 0 {
		t.Errorf("something was sent: pending %v, routes %v", dev.Pending(), dev.Routes())
	}
}

// TestPANOSOthersPendingChanges: while the candidate holds another administrator's
// uncommitted change, the driver neither reads nor writes (a commit would push that change, a
// revert would discard it); it says nothing was sent, and works again once it is committed.
func TestPANOSOthersPendingChanges(t *testing.T) {
	t.Parallel()
	dev, cfg := startPANOS(t, panos.Options{})
	d := openPANOSTest(t, cfg)
	theirs := panos.Route{VR: "default", Name: "ops-new", Prefix: netip.MustParsePrefix("10.200.0.0/24"), NextHop: netip.MustParseAddr("10.10.20.9")}
	dev.SetCandidate(theirs)
	if _, err := d.Routes(t.Context()); drivers.KindOf(err) != drivers.KindUnreachable {
		t.Errorf("Routes with pending changes = %v, want kind unreachable (nothing sent)", err)
	}
	err := d.Apply(t.Context(), panosAdds(1, route.DefaultVRF))
	if k := drivers.KindOf(err); k != drivers.KindUnreachable || !strings.Contains(err.Error(), "uncommitted") {
		t.Fatalf("Apply with pending changes = %v, want kind unreachable about uncommitted changes", err)
	}
	if dev.Commits() != 0 || !dev.Pending() {
		t.Errorf("the other administrator's change was committed or reverted (commits %d, pending %v)", dev.Commits(), dev.Pending())
	}
	dev.Set(theirs) // they commit it
	if err := d.Apply(t.Context(), panosAdds(1, route.DefaultVRF)); err != nil {
		t.Fatalf("Apply after their commit: %v", err)
	}
}

// TestPANOSNameTaken: an add whose derived name is held by an entry of someone else's (here a
// route on the same prefix that is not returnpath's form) gets a suffixed name; the entry is
// not merged into.
func TestPANOSNameTaken(t *testing.T) {
	t.Parallel()
	dev, cfg := startPANOS(t, panos.Options{})
	d := openPANOSTest(t, cfg)
	p := netip.MustParsePrefix("10.210.10.0/24")
	blocker := panos.Route{VR: "default", Name: "rp-10_210_10_0-24", Prefix: p, NextVR: "blue"}
	dev.Set(blocker)
	r := mustRoute("default", "10.210.10.0/24", "10.10.20.1")
	if err := d.Apply(t.Context(), []route.RouteOp{{Action: route.ActionAdd, Route: r}}); err != nil {
		t.Fatal(err)
	}
	names := map[string]panos.Route{}
	for _, e := range dev.Routes() {
		names[e.Name] = e
	}
	if names[blocker.Name] != blocker {
		t.Errorf("entry %s was changed: %+v", blocker.Name, names[blocker.Name])
	}
	if got := names["rp-10_210_10_0-24-2"]; got.NextHop != r.NextHop {
		t.Errorf("new route not under rp-10_210_10_0-24-2: %v", dev.Routes())
	}
}

func TestPANOSPreviewGolden(t *testing.T) {
	t.Parallel()
	cfg := previewConfig(route.PlatformPANOS)
	cfg.PANOS = drivers.PANOSConfig{VirtualRouter: "vr-main", Interface: "ethernet1/2"}
	lines, err := Preview(cfg, previewOps)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "panos_preview.golden", strings.Join(lines, "\n")+"\n")
}

// TestParsePANOSConfig reads "show network virtual-router" in set format as PAN-OS prints it:
// only entries named "rp-" with a destination and an address next hop of their table's
// family are returnpath's.
func TestParsePANOSConfig(t *testing.T) {
	t.Parallel()
	cfg := drivers.Config{PANOS: drivers.PANOSConfig{VirtualRouter: "vr-main"}}
	c := parsePANOSConfig(string(readTestdata(t, "panos_virtual_router.txt")))
	var rs []route.Route
	for _, o := range c.owned(cfg) {
		rs = append(rs, o.Route)
	}
	golden(t, "panos_virtual_router.golden", routesText(rs)+fmt.Sprintf("virtual routers: %v\n", slices.Sorted(func(yield func(string) bool) {
		for vr := range c.VRs {
			if !yield(vr) {
				return
			}
		}
	})))
}

func TestPANOSCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		vr, ifc   string
		wantField string
	}{
		{name: "defaults", wantField: ""},
		{name: "named", vr: "vr-main.1", ifc: "ethernet1/2.100", wantField: ""},
		{name: "aggregate", ifc: "ae2", wantField: ""},
		{name: "tunnel", ifc: "tunnel.4", wantField: ""},
		{name: "vr with a space", vr: "vr main", wantField: "panos.virtual_router"},
		{name: "vr injection", vr: "default\ncommit", wantField: "panos.virtual_router"},
		{name: "vr too long", vr: strings.Repeat("v", 32), wantField: "panos.virtual_router"},
		{name: "interface injection", ifc: "ethernet1/2 nexthop discard", wantField: "panos.interface"},
		{name: "interface unknown", ifc: "eth0", wantField: "panos.interface"},
		{name: "interface newline", ifc: "ethernet1/2\n", wantField: "panos.interface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := PANOSCheck(drivers.Config{PANOS: drivers.PANOSConfig{VirtualRouter: tc.vr, Interface: tc.ifc}})
			var fe *route.FieldError
			switch {
			case tc.wantField == "" && err != nil:
				t.Errorf("PANOSCheck = %v, want nil", err)
			case tc.wantField != "" && (!errors.As(err, &fe) || fe.Field != tc.wantField):
				t.Errorf("PANOSCheck = %v, want a field error on %s", err, tc.wantField)
			}
			if tc.wantField != "" {
				cfg := previewConfig(route.PlatformPANOS)
				cfg.PANOS = drivers.PANOSConfig{VirtualRouter: tc.vr, Interface: tc.ifc}
				if lines, err := Preview(cfg, previewOps[:1]); err == nil {
					t.Errorf("Preview with %s = %q, want an error", tc.wantField, lines)
				}
			}
		})
	}
}

// TestPANOSRouteName: names are derived from the prefix, fit PAN-OS's limit and character set,
// and differ between prefixes.
func TestPANOSRouteName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ prefix, want string }{
		{prefix: "10.210.10.0/24", want: "rp-10_210_10_0-24"},
		{prefix: "255.255.255.255/32", want: "rp-255_255_255_255-32"},
		{prefix: "2001:db8:100:1::/64", want: "rp-2001_db8_100_1__-64"},
		{prefix: "2001:db8:1234:5678:9abc:def0:1234:5600/120", want: "rp-"},
	} {
		got := panosRouteName(netip.MustParsePrefix(tc.prefix))
		if !strings.HasPrefix(got, tc.want) || (tc.want != "rp-" && got != tc.want) {
			t.Errorf("panosRouteName(%s) = %q, want %q", tc.prefix, got, tc.want)
		}
		if len(got)+2 > panosNameMax || !panosNameRE.MatchString(got) {
			t.Errorf("panosRouteName(%s) = %q: too long for a suffix or not a PAN-OS name", tc.prefix, got)
		}
	}
	a := panosRouteName(netip.MustParsePrefix("2001:db8:1234:5678:9abc:def0:1234:5600/120"))
	b := panosRouteName(netip.MustParsePrefix("2001:db8:1234:5678:9abc:def0:1234:5700/120"))
	if a == b {
		t.Errorf("two prefixes share the name %q", a)
	}
}

// TestSplitPANOSTranscript attributes PAN-OS's answers to the lines sent; the "[edit]"
// context lines are not output, and pager markers are removed.
func TestSplitPANOSTranscript(t *testing.T) {
	t.Parallel()
	transcript := "set network virtual-router default routing-table ip static-route rp-a destination 10.210.0.0/24 nexthop ip-address 239.1.1.1\r\n" +
		"Invalid syntax.\r\n[edit]\r\nadmin@PA-VM# set network virtual-router default routing-table ip static-route rp-b destination 10.210.1.0/24 nexthop ip-address 10.0.0.1\r\n" +
		"[edit]\r\nadmin@PA-VM# "
	rs := splitPANOSTranscript(transcript)
	if len(rs) != 3 {
		t.Fatalf("results = %+v, want 3", rs)
	}
	if got := panosRefusal(rs[0].Output); got != "Invalid syntax." {
		t.Errorf("refusal of line 0 = %q", got)
	}
	if got := panosRefusal(rs[1].Output); got != "" {
		t.Errorf("refusal of line 1 = %q, want none", got)
	}
	paged := "set network virtual-router default routing-table ip static-route rp-a destination 10.210.0.0/24\r\n--more--\r        \rset network virtual-router default routing-table ip static-route rp-a nexthop ip-address 10.0.0.1\r\n"
	c := parsePANOSConfig(stripPager(paged, string(panosPager)))
	if got := len(c.owned(drivers.Config{})); got != 1 {
		t.Errorf("routes read across a page break = %d, want 1", got)
	}
}

func TestPANOSVersion(t *testing.T) {
	t.Parallel()
	_, cfg := startPANOS(t, panos.Options{})
	d := openPANOSTest(t, cfg)
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != "Palo Alto Networks PA-VM, PAN-OS 10.1.3" {
		t.Errorf("Version = %q", v)
	}
	if _, err := d.Routes(t.Context()); err != nil {
		t.Errorf("Routes after Version: %v", err)
	}
	for _, tc := range []struct{ name, out, want string }{
		{name: "model and version", out: "hostname: fw\nmodel: PA-3220\nsw-version: 10.2.4\n", want: "Palo Alto Networks PA-3220, PAN-OS 10.2.4"},
		{name: "no model", out: "sw-version: 9.1.0\n", want: "PAN-OS 9.1.0"},
		{name: "nothing", out: "\n", want: ""},
	} {
		if got := panosVersion(tc.out); got != tc.want {
			t.Errorf("%s: panosVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// FuzzParsePANOSConfig checks that any text yields only valid routes, whose rendered add
// reads back as exactly that route.
func FuzzParsePANOSConfig(f *testing.F) {
	f.Add("set network virtual-router default routing-table ip static-route rp-a destination 10.210.0.0/24\nset network virtual-router default routing-table ip static-route rp-a nexthop ip-address 10.0.0.1\n")
	f.Add("set network virtual-router blue routing-table ipv6 static-route rp-b destination 2001:db8::/64 nexthop ipv6-address fe80::1 interface ethernet1/2\n")
	f.Add("set network virtual-router \"a b\" routing-table ip static-route rp-c nexthop next-vr x\nset network virtual-router v routing-table ip static-route rp-d nexthop discard destination 1.0.0.0/8\n")
	f.Add("set network virtual-router d\x00x routing-table ip static-route rp-e destination 1.2.3.0/24 nexthop ip-address 2001:db8::1\n")
	f.Fuzz(func(t *testing.T, text string) {
		c := parsePANOSConfig(text)
		for _, o := range c.owned(drivers.Config{}) {
			r := o.Route
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			if !panosVRRE.MatchString(o.Key.VR) && o.Key.VR != route.DefaultVRF {
				t.Fatalf("route in a virtual router %q returnpath could not render", o.Key.VR)
			}
			line := panosSetLine(panosVR(drivers.Config{}, r.VRF), panosRouteName(r.Prefix), "", r)
			noControl(t, "paloalto_panos", line)
			back := parsePANOSConfig(line + "\n").owned(drivers.Config{})
			if len(back) != 1 || back[0].Route != r {
				t.Fatalf("%q reads back as %v, want %v", line, back, r)
			}
		}
	})
}

// FuzzPANOSPreview feeds arbitrary VRF names, prefixes, next hops and interface settings to the
// renderer: what passes validation renders to lines without control characters, each route
// under a name PAN-OS accepts; what does not pass is refused.
func FuzzPANOSPreview(f *testing.F) {
	f.Add("default", "10.210.10.0/24", "10.10.10.101", "ethernet1/2", true)
	f.Add("blue\ncommit", "10.210.10.0/24", "10.10.10.101", "", false)
	f.Add("default", "2001:db8:100::/64", "2001:db8::1", "ethernet1/2 nexthop discard", true)
	f.Fuzz(func(t *testing.T, vrf, prefix, nh, ifc string, add bool) {
		p, err1 := netip.ParsePrefix(prefix)
		a, err2 := netip.ParseAddr(nh)
		if err1 != nil || err2 != nil {
			return
		}
		action := route.ActionDelete
		if add {
			action = route.ActionAdd
		}
		op := route.RouteOp{Action: action, Route: route.Route{VRF: vrf, Prefix: p, NextHop: a}}
		cfg := previewConfig(route.PlatformPANOS)
		cfg.Managed = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		cfg.PANOS.Interface = ifc
		lines, err := Preview(cfg, []route.RouteOp{op})
		if op.Validate() != nil || PANOSCheck(cfg) != nil {
			if err == nil {
				t.Fatalf("invalid op %s (interface %q) rendered %q", op, ifc, lines)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid op %s refused: %v", op, err)
		}
		for _, l := range lines {
			noControl(t, "paloalto_panos", l)
		}
		if name := panosRouteName(p); !panosNameRE.MatchString(name) || len(name) > panosNameMax {
			t.Fatalf("name %q for %s is not a PAN-OS name", name, p)
		}
	})
}

// BenchmarkPANOSAdd1000 measures one 1,000-add Apply (one candidate change, one commit)
// against the emulation, and reports the driver's time per route and the commits per batch.
//
//	go test ./drivers/ssh -run '^$' -bench BenchmarkPANOS -benchtime 3x
func BenchmarkPANOSAdd1000(b *testing.B) {
	dev, cfg := startPANOS(b, panos.Options{})
	adds := panosAdds(1000, route.DefaultVRF)
	benchAdd1000(b, cfg, opener(OpenPANOS), adds, func() {
		for _, r := range dev.Routes() {
			dev.Delete(r.VR, r.IPv6(), r.Name)
		}
	}, dev.Commits)
}

// BenchmarkPANOSOpen measures opening a session (SSH, scrapligo's on-open, output format).
func BenchmarkPANOSOpen(b *testing.B) {
	_, cfg := startPANOS(b, panos.Options{})
	benchOpenClose(b, cfg, opener(OpenPANOS))
}
