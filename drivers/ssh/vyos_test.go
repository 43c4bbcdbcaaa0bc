package ssh

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/vyos"
)

// The vyos driver's tests run against drivers/ssh/emulate/vyos, an in-process emulation of the
// VyOS CLI built from VyOS's documentation: no VyOS image runs on this machine.

// startVyOS starts an emulated VyOS router and returns it with a driver config that reaches
// it.
func startVyOS(t testing.TB, opts vyos.Options) (*vyos.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "vyos", "s3cret-vyos"
	dev, err := vyos.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev, emulatedConfig(t, dev, "fw1", route.PlatformVyOS, opts.Username, opts.Password)
}

// vyosVRF maps returnpath's VRF name to VyOS's ("" for the default VRF).
func vyosVRF(vrf string) string {
	if vrf == route.DefaultVRF {
		return ""
	}
	return vrf
}

func vyosHarness(t *testing.T, opts vyos.Options, save bool) drivertest.Harness {
	dev, cfg := startVyOS(t, opts)
	cfg.VyOS.Save = save
	other, err := vyos.Start(vyos.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	set := func(r route.Route) { dev.Set(vyos.Route{VRF: vyosVRF(r.VRF), Prefix: r.Prefix, NextHop: r.NextHop}) }
	h := drivertest.Harness{
		Config:     cfg,
		Open:       VyOSFactory().Open,
		Preview:    VyOSFactory().Preview,
		NextHops:   eosNextHops,
		NextHops6:  v6NextHops,
		Unmanaged6: v6Unmanaged,
		VRF:        "blue",
		// VyOS has no ownership mark: every static route inside the pools is returnpath's.
		Unmanaged:   labUnmanaged,
		Atomic:      true,
		SkipReasons: map[string]string{"RepairForeignIndexedNextHop": "VyOS keys static next hops by address, not by an index"},
		List: func(context.Context) ([]route.Route, error) {
			var out []route.Route
			for _, r := range dev.Routes() {
				vrf := r.VRF
				if vrf == "" {
					vrf = route.DefaultVRF
				}
				out = append(out, route.Route{VRF: vrf, Prefix: r.Prefix, NextHop: r.NextHop})
			}
			return out, nil
		},
		Plant: func(_ context.Context, r route.Route) error { set(r); return nil },
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				set(route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh})
			}
			return nil
		},
		Remove: func(_ context.Context, r route.Route) error {
			dev.Delete(vyosVRF(r.VRF), r.Prefix, r.NextHop)
			return nil
		},
		// The emulated commit refuses a multicast next hop; the whole session is discarded.
		Reject: func(p netip.Prefix) (route.Route, string) {
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: multicastNextHop(p)}, "Commit failed"
		},
	}
	withLoginFailures(t, &h, dev, other)
	return h
}

func TestVyOSConformance(t *testing.T) {
	drivertest.Run(t, vyosHarness(t, vyos.Options{}, false))
}

// TestVyOSConformancePagingOn runs the suite against a router where "terminal length 0" does
// not turn paging off: every read longer than 10 lines stops at the pager's ":" prompt.
func TestVyOSConformancePagingOn(t *testing.T) {
	drivertest.Run(t, vyosHarness(t, vyos.Options{IgnoreTerminalLength: true, PageLines: 10}, true))
}

func openVyOSTest(t *testing.T, cfg drivers.Config) *VyOSDriver {
	t.Helper()
	d, err := OpenVyOS(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenVyOS: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestVyOSCommitFailsWhole: the router refuses the commit; nothing of the batch is applied,
// every op is reported with VyOS's text, the session is discarded (the next batch does not
// carry it) and the driver stays usable.
func TestVyOSCommitFailsWhole(t *testing.T) {
	t.Parallel()
	dev, cfg := startVyOS(t, vyos.Options{})
	d := openVyOSTest(t, cfg)
	batch := eosAdds(3, route.DefaultVRF)
	dev.FailNextCommit("[ protocols static ]\nemulated refusal")
	err := d.Apply(t.Context(), batch)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != len(batch) {
		t.Fatalf("Apply = %v, want every op rejected", err)
	}
	for i, r := range de.Rejections {
		if r.Index != i || r.Op != batch[i] || !strings.Contains(r.Output, "Commit failed") {
			t.Errorf("rejection %d = %d %s %q, want op %d with VyOS's text", i, r.Index, r.Op, r.Output, i)
		}
	}
	if got := dev.Routes(); len(got) != 0 || dev.Commits() != 0 {
		t.Errorf("after the failed commit: routes %v, %d commits; want none", got, dev.Commits())
	}
	next := eosAdds(4, route.DefaultVRF)[3:]
	if err := d.Apply(t.Context(), next); err != nil {
		t.Fatalf("Apply after the failed commit: %v", err)
	}
	wantDriverRoutes(t, d, routesOf(next))
}

// TestVyOSRefusedLineDiscards: a line VyOS refuses (a VRF name with a dot, which VyOS does not
// accept) discards the whole session, and the refusal names the op with VyOS's text.
func TestVyOSRefusedLineDiscards(t *testing.T) {
	t.Parallel()
	dev, cfg := startVyOS(t, vyos.Options{})
	d := openVyOSTest(t, cfg)
	batch := append(eosAdds(2, route.DefaultVRF), route.RouteOp{Action: route.ActionAdd, Route: mustRoute("t.1", "10.210.99.0/24", "10.10.10.101")})
	err := d.Apply(t.Context(), batch)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != len(batch) {
		t.Fatalf("Apply = %v, want every op rejected", err)
	}
	if r := de.Rejections[2]; !strings.Contains(r.Output, "Set failed") || strings.HasPrefix(r.Output, "not applied") {
		t.Errorf("rejection of the bad op = %q, want VyOS's Set failed", r.Output)
	}
	if r := de.Rejections[0]; !strings.HasPrefix(r.Output, "not applied") {
		t.Errorf("rejection of a good op = %q, want not applied", r.Output)
	}
	if got := dev.Routes(); len(got) != 0 || dev.Commits() != 0 {
		t.Errorf("after the refusal: routes %v, %d commits; want none", got, dev.Commits())
	}
}

// TestVyOSDroppedDuringCommit: the connection drops while the router commits (it did commit);
// the driver must say it cannot know, and a re-read tells the truth.
func TestVyOSDroppedDuringCommit(t *testing.T) {
	t.Parallel()
	dev, cfg := startVyOS(t, vyos.Options{})
	d := openVyOSTest(t, cfg)
	batch := eosAdds(2, "blue")
	dev.DropNextCommit()
	if k := drivers.KindOf(d.Apply(t.Context(), batch)); k != drivers.KindIndeterminate {
		t.Fatalf("Apply kind = %s, want indeterminate", k)
	}
	wantDriverRoutes(t, openVyOSTest(t, cfg), routesOf(batch))
}

// TestVyOSSave: with vyos.save each committed batch is saved once; without it, never; a batch
// with nothing to do neither commits nor saves.
func TestVyOSSave(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		save bool
		want int
	}{
		{name: "save", save: true, want: 1},
		{name: "no save", save: false, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev, cfg := startVyOS(t, vyos.Options{})
			cfg.VyOS.Save = tc.save
			d := openVyOSTest(t, cfg)
			batch := slices.Concat(eosAdds(20, route.DefaultVRF), eosAdds(20, "blue"))
			if err := d.Apply(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			missing := route.RouteOp{Action: route.ActionDelete, Route: mustRoute("default", "10.210.200.0/24", "10.10.10.101")}
			if err := d.Apply(t.Context(), []route.RouteOp{missing}); err != nil {
				t.Fatal(err)
			}
			if dev.Commits() != 1 || dev.Saves() != tc.want {
				t.Errorf("commits %d, saves %d; want 1 and %d", dev.Commits(), dev.Saves(), tc.want)
			}
		})
	}
}

// TestVyOSIPv6: IPv6 routes are route6 statements and read back, in and out of a VRF.
func TestVyOSIPv6(t *testing.T) {
	t.Parallel()
	dev, cfg := startVyOS(t, vyos.Options{})
	cfg.Managed = append(cfg.Managed, netip.MustParsePrefix("2001:db8:100::/48"))
	d := openVyOSTest(t, cfg)
	batch := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "2001:db8:100:1::/64", "2001:db8::1")},
		{Action: route.ActionAdd, Route: mustRoute("blue", "2001:db8:100:2::/64", "2001:db8::2")},
	}
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	wantDriverRoutes(t, d, routesOf(batch))
	if lines := dev.Running().Lines("protocols", "static", "route6"); len(lines) != 1 {
		t.Errorf("route6 statements = %q, want one", lines)
	}
}

func TestVyOSPreviewGolden(t *testing.T) {
	t.Parallel()
	cfg := previewConfig(route.PlatformVyOS)
	cfg.VyOS.Save = true
	lines, err := Preview(cfg, previewOps)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "vyos_preview.golden", strings.Join(lines, "\n")+"\n")
}

// TestParseVyOSStatics reads "show configuration commands" output in VyOS's format (the last
// value quoted) holding routes of every form: every address next hop of a static route counts.
func TestParseVyOSStatics(t *testing.T) {
	t.Parallel()
	golden(t, "vyos_config_commands.golden", routesText(vyosRoutes(parseVyOSStatics(string(readTestdata(t, "vyos_config_commands.txt"))))))
}

// TestVyOSTranscript attributes VyOS's answers to the lines sent, with the [edit] banner and
// the pager removed, and finds the op a commit error names.
func TestVyOSTranscript(t *testing.T) {
	t.Parallel()
	transcript := "set vrf name t.1 protocols static route 10.210.0.0/24 next-hop 10.0.0.1\r\n\r\n" +
		"  Configuration path: [vrf name t.1 protocols static route 10.210.0.0/24 next-hop 10.0.0.1] is not valid\r\n  Set failed\r\n\r\n[edit]\r\n" +
		"vyos@fw1# set protocols static route 10.210.1.0/24 next-hop 10.0.0.1\r\n[edit]\r\nvyos@fw1# "
	rs := vyosDialect.split(transcript)
	if len(rs) != 3 {
		t.Fatalf("results = %+v, want 3", rs)
	}
	if got := vyosRefusal(rs[0].Output); !strings.Contains(got, "Set failed") {
		t.Errorf("refusal of line 1 = %q", got)
	}
	if got := vyosRefusal(rs[1].Output); got != "" {
		t.Errorf("refusal of line 2 = %q, want none (output %q)", got, rs[1].Output)
	}
	paged := "set protocols static route 10.210.0.0/24 next-hop '10.0.0.1'\r\n:\r \r" + "set protocols static route 10.210.1.0/24 next-hop '10.0.0.2'\r\n"
	if got := vyosRoutes(parseVyOSStatics(strings.Join(body(vyosDialect.split("show\r\n"+paged)), "\n"))); len(got) != 2 {
		t.Errorf("routes read across a page break = %v, want 2", got)
	}
	ops := eosAdds(3, "blue")
	text := "[ vrf name blue protocols static route " + ops[2].Route.Prefix.String() + " next-hop " + ops[2].Route.NextHop.String() + " ]\nNext-hop is not a unicast address\n\nCommit failed"
	if got := vyosCulprit(text, ops); got != 2 {
		t.Errorf("culprit = %d, want 2", got)
	}
}

// FuzzParseVyOSStatics checks that any text yields only valid routes that render back to
// statements parsing to exactly that route.
func FuzzParseVyOSStatics(f *testing.F) {
	f.Add("set protocols static route 10.210.0.0/24 next-hop '10.0.0.1'\nset vrf name blue protocols static route6 2001:db8::/64 next-hop '2001:db8::1'\n")
	f.Add("set protocols static route 1.2.3.0/24 next-hop 1.1.1.1 distance '10'\nset protocols static route 1.2.3.0/24 interface 'eth0'\n")
	f.Add("set protocols static route6 1.2.3.0/24 next-hop '1.1.1.1'\nset vrf name a\x00b protocols static route 1.2.3.0/24 next-hop '1.1.1.1'\nset\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range vyosRoutes(parseVyOSStatics(text)) {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			lines, _ := vyosBatch([]route.RouteOp{{Action: route.ActionAdd, Route: r}}, nil)
			noControl(t, "vyos", lines[0])
			if got := vyosRoutes(parseVyOSStatics(lines[0] + "\n")); len(got) != 1 || got[0] != r {
				t.Fatalf("%q reads back as %v, want %v", lines[0], got, r)
			}
		}
	})
}

// FuzzVyOSRender feeds arbitrary VRF names, prefixes and next hops to the VyOS preview: whatever
// passes validation renders to lines without control characters built from the route's path,
// and whatever does not pass is refused.
func FuzzVyOSRender(f *testing.F) {
	f.Add("default", "10.210.10.0/24", "10.10.10.101", true)
	f.Add("blue\nset system login user x", "10.210.10.0/24", "10.10.10.101", true)
	f.Add("blue", "2001:db8:100::/64", "2001:db8::1", false)
	f.Fuzz(func(t *testing.T, vrf, prefix, nh string, add bool) {
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
		cfg := previewConfig(route.PlatformVyOS)
		cfg.Managed = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		lines, err := VyOSPreview(cfg, []route.RouteOp{op})
		if op.Validate() != nil {
			if err == nil {
				t.Fatalf("invalid op %s rendered %q", op, lines)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid op %s refused: %v", op, err)
		}
		for _, l := range lines {
			noControl(t, "vyos", l)
			if (strings.HasPrefix(l, "set ") || strings.HasPrefix(l, "delete ")) && !strings.Contains(l, vyosRoutePath(op.Route.VRF, op.Route.Prefix)) {
				t.Fatalf("line %q is not built from the route's path", l)
			}
		}
	})
}

// TestVyOSCheck: the device's VRF must be a name VyOS accepts, and the error names the key.
func TestVyOSCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, vrf string
		ok        bool
	}{
		{name: "default", vrf: "default", ok: true},
		{name: "unset", vrf: "", ok: true},
		{name: "plain", vrf: "blue-1_a", ok: true},
		{name: "dot", vrf: "blue.1"},
		{name: "too long", vrf: "abcdefghijklmnop"},
	} {
		err := VyOSCheck(drivers.Config{VRF: tc.vrf})
		var fe *route.FieldError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: VyOSCheck = %v, want nil", tc.name, err)
		case !tc.ok && (!errors.As(err, &fe) || fe.Field != "vrf"):
			t.Errorf("%s: VyOSCheck = %v, want a field error on vrf", tc.name, err)
		}
	}
}

// TestVyOSVersion: device check's version line comes from "show version".
func TestVyOSVersion(t *testing.T) {
	t.Parallel()
	_, cfg := startVyOS(t, vyos.Options{})
	d := openVyOSTest(t, cfg)
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != "VyOS 1.4.0" {
		t.Errorf("Version = %q", v)
	}
	if _, err := d.Routes(t.Context()); err != nil {
		t.Errorf("Routes after Version: %v", err)
	}
	if got := vyosVersion("Version:          VyOS 1.3.8\nRelease train:    equuleus\n"); got != "VyOS 1.3.8" {
		t.Errorf("vyosVersion = %q", got)
	}
}

// BenchmarkVyOSAdd1000 measures one 1,000-add Apply (one configuration session, one commit)
// against the emulation, and reports the driver's time per route and the commits per batch.
//
//	go test ./drivers/ssh -run '^$' -bench BenchmarkVyOS -benchtime 3x
func BenchmarkVyOSAdd1000(b *testing.B) {
	dev, cfg := startVyOS(b, vyos.Options{})
	adds := eosAdds(1000, route.DefaultVRF)
	benchAdd1000(b, cfg, opener(OpenVyOS), adds, func() {
		for _, op := range adds {
			dev.Delete("", op.Route.Prefix, op.Route.NextHop)
		}
	}, dev.Commits)
}

// BenchmarkVyOSOpen measures opening a session (SSH, terminal width and length).
func BenchmarkVyOSOpen(b *testing.B) {
	_, cfg := startVyOS(b, vyos.Options{})
	benchOpenClose(b, cfg, opener(OpenVyOS))
}
