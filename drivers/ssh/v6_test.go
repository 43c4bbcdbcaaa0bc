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
	"github.com/returnpath/returnpath/drivers/ssh/emulate/asa"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/eos"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/fortios"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/iosxe"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/junos"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/nxos"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/panos"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/vyos"
)

// The IPv6 tests of the eight vendor platforms: each drives the platform's driver against its
// emulation through the same story (a mixed IPv4 and IPv6 batch in and out of a VRF, read back
// by the driver and out of band, reapplied, a next hop changed, a refused IPv6 line leaving
// nothing behind, everything deleted), with paging off and with paging left on.

// v6Pool is the IPv6 pool the tests manage, next to labPool; v6Unmanaged is outside it, and
// v6NextHops are the IPv6 next hops the conformance suite uses on every emulated device.
var (
	v6Pool      = netip.MustParsePrefix("2001:db8:100::/48")
	v6Unmanaged = netip.MustParsePrefix("2001:db8:200::/64")
	v6NextHops  = []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")}
)

// v6Harnesses returns, by platform, the conformance harness of its emulation; paging leaves
// the device's pager on (every read longer than 10 lines stops at a --More-- prompt).
func v6Harnesses(t *testing.T, paging bool) map[string]drivertest.Harness {
	hs := map[string]drivertest.Harness{}
	if paging {
		hs["arista_eos"] = eosHarness(t, eos.Options{IgnoreTerminalLength: true, PageLines: 10})
		hs["cisco_nxos"] = nxosHarness(t, nxos.Options{IgnoreTerminalLength: true, PageLines: 10})
		hs["cisco_iosxe"] = iosxeHarness(t, iosxe.Options{IgnoreTerminalLength: true, PageLines: 10})
		hs["juniper_junos"] = junosHarness(t, junos.Options{IgnoreTerminalLength: true, PageLines: 10}, 0)
		hs["vyos"] = vyosHarness(t, vyos.Options{IgnoreTerminalLength: true, PageLines: 10}, true)
		hs["paloalto_panos"] = panosHarness(t, panos.Options{IgnorePagerOff: true, PageLines: 10})
		hs["fortinet_fortios"] = fortiosHarness(t, fortios.Options{Paging: true, PageLines: 10})
		hs["cisco_asa"] = asaHarness(t, asa.Options{IgnoreTerminalPager: true, PageLines: 10})
	} else {
		hs["arista_eos"] = eosHarness(t, eos.Options{})
		hs["cisco_nxos"] = nxosHarness(t, nxos.Options{})
		hs["cisco_iosxe"] = iosxeHarness(t, iosxe.Options{})
		hs["juniper_junos"] = junosHarness(t, junos.Options{}, 0)
		hs["vyos"] = vyosHarness(t, vyos.Options{}, false)
		hs["paloalto_panos"] = panosHarness(t, panos.Options{})
		hs["fortinet_fortios"] = fortiosHarness(t, fortios.Options{})
		hs["cisco_asa"] = asaHarness(t, asa.Options{})
	}
	for p, h := range hs {
		if !slices.Contains(h.Config.Managed, v6Pool) {
			h.Config.Managed = append(slices.Clip(h.Config.Managed), v6Pool)
		}
		hs[p] = h
	}
	return hs
}

func TestVendorIPv6(t *testing.T) {
	for _, paging := range []bool{false, true} {
		name := "PagingOff"
		if paging {
			name = "PagingOn"
		}
		t.Run(name, func(t *testing.T) {
			for p, h := range v6Harnesses(t, paging) {
				t.Run(p, func(t *testing.T) { testIPv6(t, h) })
			}
		})
	}
}

// testIPv6 runs the IPv6 story against the device behind h.
func testIPv6(t *testing.T, h drivertest.Harness) {
	ctx := t.Context()
	d, err := h.Open(ctx, h.Config)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer d.Close()
	nh1, nh2, nh3 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")
	v4 := route.Route{VRF: route.DefaultVRF, Prefix: netip.MustParsePrefix("10.210.200.0/24"), NextHop: h.NextHops[0]}
	a := route.Route{VRF: route.DefaultVRF, Prefix: netip.MustParsePrefix("2001:db8:100:1::/64"), NextHop: nh1}
	b := route.Route{VRF: route.DefaultVRF, Prefix: netip.MustParsePrefix("2001:db8:100:2::/120"), NextHop: nh2}
	adds := []route.RouteOp{{Action: route.ActionAdd, Route: v4}, {Action: route.ActionAdd, Route: a}, {Action: route.ActionAdd, Route: b}}
	if h.VRF != "" {
		c := route.Route{VRF: h.VRF, Prefix: netip.MustParsePrefix("2001:db8:100:3::/64"), NextHop: nh1}
		adds = append(adds, route.RouteOp{Action: route.ActionAdd, Route: c})
	}
	want := routesOf(adds)

	if err := d.Apply(ctx, adds); err != nil {
		t.Fatalf("mixed batch: %v", err)
	}
	wantDriverRoutes(t, d, want)
	wantListed(t, ctx, h, want, true)

	if err := d.Apply(ctx, adds); err != nil {
		t.Fatalf("the same batch again: %v", err)
	}
	wantDriverRoutes(t, d, want)

	// A next hop changes: the old route goes, the new one comes, in one batch.
	moved := a
	moved.NextHop = nh3
	if err := d.Apply(ctx, []route.RouteOp{{Action: route.ActionDelete, Route: a}, {Action: route.ActionAdd, Route: moved}}); err != nil {
		t.Fatalf("change next hop: %v", err)
	}
	want = routesOf(append(slices.Clone(adds[:1]), append([]route.RouteOp{{Route: moved}}, adds[2:]...)...))
	wantDriverRoutes(t, d, want)
	wantListed(t, ctx, h, []route.Route{a}, false)

	// A refused IPv6 line (the harness's refused route, with an IPv6 prefix): nothing of the
	// batch stays, and the device's own text comes back.
	good := route.Route{VRF: route.DefaultVRF, Prefix: netip.MustParsePrefix("2001:db8:100:4::/64"), NextHop: nh1}
	bad, text := h.Reject(netip.MustParsePrefix("2001:db8:100:5::/64"))
	if !bad.Prefix.Addr().Is6() || !bad.NextHop.Is6() {
		t.Fatalf("Reject gave %s for an IPv6 prefix, want an IPv6 route", bad)
	}
	err = d.Apply(ctx, []route.RouteOp{{Action: route.ActionAdd, Route: good}, {Action: route.ActionAdd, Route: bad}})
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected {
		t.Fatalf("batch with a refused IPv6 line = %v, want kind rejected", err)
	}
	if !slices.ContainsFunc(de.Rejections, func(r drivers.Rejection) bool { return r.Op.Route == bad && strings.Contains(r.Output, text) }) {
		t.Errorf("rejections = %+v, want %s refused with the device's text %q", de.Rejections, bad, text)
	}
	wantDriverRoutes(t, d, want)
	wantListed(t, ctx, h, []route.Route{good, bad}, false)

	// A batch long enough that every read-back spans several pages when the pager is on.
	var many []route.RouteOp
	for i := range 40 {
		p := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0x10, byte(i)}), 64)
		many = append(many, route.RouteOp{Action: route.ActionAdd, Route: route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh2}})
	}
	if err := d.Apply(ctx, many); err != nil {
		t.Fatalf("40 IPv6 adds: %v", err)
	}
	wantDriverRoutes(t, d, slices.Concat(want, routesOf(many)))
	for i := range many {
		many[i].Action = route.ActionDelete
	}
	if err := d.Apply(ctx, many); err != nil {
		t.Fatalf("40 IPv6 deletes: %v", err)
	}
	wantDriverRoutes(t, d, want)

	// Everything goes, IPv4 and IPv6 in one batch.
	var dels []route.RouteOp
	for _, r := range want {
		dels = append(dels, route.RouteOp{Action: route.ActionDelete, Route: r})
	}
	if err := d.Apply(ctx, dels); err != nil {
		t.Fatalf("delete all: %v", err)
	}
	wantDriverRoutes(t, d, nil)
	wantListed(t, ctx, h, want, false)
}

// wantListed checks, out of band, that every route of rs is on the device (present) or none is.
func wantListed(t *testing.T, ctx context.Context, h drivertest.Harness, rs []route.Route, present bool) {
	t.Helper()
	got, err := h.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, r := range rs {
		if slices.Contains(got, r) != present {
			t.Errorf("device holds %s: %v, want %v (device: %v)", r, !present, present, got)
		}
	}
}

// v6Shown returns what the device of platform p shows for the IPv6 route r after the driver
// added it (the add's preview lines, as the device prints them back), and the driver's own
// read of that text.
func v6Shown(t *testing.T, p route.Platform, r route.Route) (string, []route.Route) {
	cfg := previewConfig(p)
	cfg.PANOS = drivers.PANOSConfig{VirtualRouter: "vr-main", Interface: "ethernet1/2"}
	cfg.FortiOS = drivers.FortiOSConfig{Device: "port2"}
	cfg.ASA = drivers.ASAConfig{Interface: "inside"}
	cfg.Managed = append(cfg.Managed, r.Prefix) // the preview renders only routes in the pools
	lines, err := Preview(cfg, []route.RouteOp{{Action: route.ActionAdd, Route: r}})
	if err != nil {
		t.Fatalf("%s: Preview(add %s): %v", p, r, err)
	}
	for _, l := range lines {
		noControl(t, string(p), l)
	}
	body := lines[1 : len(lines)-1] // between "configure ..." and "commit"/"end"
	switch p {
	case route.PlatformAristaEOS:
		return strings.Join(body, "\n"), parseEOSRoutes(strings.Join(body, "\n"))
	case route.PlatformCiscoNXOS:
		// Running-config indents a VRF's routes under "vrf context V".
		text := strings.Join(body, "\n  ")
		return text, parseNXOSRoutes(text)
	case route.PlatformCiscoIOSXE:
		// IOS prints IPv6 addresses in upper case.
		f := strings.Fields(body[0])
		for i, w := range f {
			if strings.Contains(w, ":") {
				f[i] = strings.ToUpper(w)
			}
		}
		text := strings.Join(f, " ")
		return text, parseIOSXERoutes(text)
	case route.PlatformCiscoASA:
		return body[0], parseASARoutes(body[0], "inside")
	case route.PlatformJuniperJunos:
		text := strings.Join(body[:len(body)-1], "\n") // "commit check" goes too
		return text, junosOwned(parseJunosStatics(text))
	case route.PlatformVyOS:
		// "show configuration commands" quotes the last value.
		f := strings.Fields(body[0])
		f[len(f)-1] = "'" + f[len(f)-1] + "'"
		text := strings.Join(f, " ")
		return text, vyosRoutes(parseVyOSStatics(text))
	case route.PlatformPANOS:
		var out []route.Route
		for _, o := range parsePANOSConfig(body[0]).owned(cfg) {
			out = append(out, o.Route)
		}
		return body[0], out
	case route.PlatformFortiOS:
		// "show router static6" numbers the entry and quotes the device.
		text := strings.Join(lines[:len(lines)-1], "\n") + "\nend\n"
		text = strings.Replace(text, "edit 0", "edit 9", 1)
		text = strings.Replace(text, "set device port2", `set device "port2"`, 1)
		return text, parseFortiOSRoutes(text, true)
	}
	t.Fatalf("no IPv6 read-back form for %s", p)
	return "", nil
}

// FuzzVendorIPv6ReadBack: for any IPv6 route of a docker pool's size (/48 to /128) via a
// global unicast next hop, in the default VRF or a VRF, what each vendor driver renders for
// its add, shown by the device as the device prints it, the driver reads back as exactly that
// route: so an add is verified, never re-sent forever or planned twice.
func FuzzVendorIPv6ReadBack(f *testing.F) {
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 1}, uint8(64), []byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}, false)
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 2, 15: 0}, uint8(120), []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0xab, 0xcd, 15: 0xef}, true)
	f.Add([]byte{0x2a, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, uint8(128), []byte{0x26, 0x00, 14: 0xff, 15: 0xff}, true)
	f.Fuzz(func(t *testing.T, prefix []byte, bits uint8, nh []byte, inVRF bool) {
		var pa, na [16]byte
		copy(pa[:], prefix)
		copy(na[:], nh)
		p := netip.PrefixFrom(netip.AddrFrom16(pa), 48+int(bits)%81).Masked()
		a := netip.AddrFrom16(na)
		if !a.IsGlobalUnicast() || a.Is4In6() || p.Addr().Is4In6() {
			return
		}
		for _, platform := range vendorPlatforms {
			r := route.Route{VRF: vendorVRF(platform, inVRF), Prefix: p, NextHop: a}
			if text, got := v6Shown(t, platform, r); len(got) != 1 || got[0] != r {
				t.Fatalf("%s: %q reads back as %v, want %s", platform, text, got, r)
			}
		}
	})
}

// vendorVRF is the VRF the IPv6 read-back tests use on platform: the default VRF, or with
// inVRF a VRF the platform can name ("blue"; FortiOS numbers VRFs; ASA has none).
func vendorVRF(platform route.Platform, inVRF bool) string {
	switch {
	case !inVRF || platform == route.PlatformCiscoASA:
		return route.DefaultVRF
	case platform == route.PlatformFortiOS:
		return "7"
	}
	return "blue"
}

// vendorPlatforms are the eight vendor CLI platforms.
var vendorPlatforms = []route.Platform{
	route.PlatformAristaEOS, route.PlatformCiscoNXOS, route.PlatformCiscoIOSXE, route.PlatformJuniperJunos,
	route.PlatformVyOS, route.PlatformPANOS, route.PlatformFortiOS, route.PlatformCiscoASA,
}

// TestVendorIPv6ReadBack: what each vendor driver renders for an IPv6 add, as the device shows
// it, reads back as the same route, in and out of a VRF.
func TestVendorIPv6ReadBack(t *testing.T) {
	for _, r := range []route.Route{
		mustRoute("default", "2001:db8:100:1::/64", "2001:db8::1"),
		mustRoute("default", "2001:db8:100:2::80/121", "2001:db8:0:0:ab::ef"),
		mustRoute("default", "2001:db8:100:3::1/128", "2600::ffff"),
	} {
		for _, p := range vendorPlatforms {
			for _, inVRF := range []bool{false, true} {
				r.VRF = vendorVRF(p, inVRF)
				if text, got := v6Shown(t, p, r); len(got) != 1 || got[0] != r {
					t.Errorf("%s: %q reads back as %v, want %s", p, text, got, r)
				}
			}
		}
	}
}
