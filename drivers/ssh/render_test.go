package ssh

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(got, string(want)); diff != "" {
		t.Errorf("%s mismatch (-got +want):\n%s", name, diff)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func routesText(rs []route.Route) string {
	drivertest.SortRoutes(rs)
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintln(&b, r)
	}
	return b.String()
}

func previewConfig(p route.Platform) drivers.Config {
	return drivers.Config{
		Name:     "dev1",
		Platform: p,
		Managed:  []netip.Prefix{netip.MustParsePrefix("10.210.0.0/16"), netip.MustParsePrefix("2001:db8:100::/48")},
	}
}

func mustRoute(vrf, p, nh string) route.Route {
	return route.Route{VRF: vrf, Prefix: netip.MustParsePrefix(p), NextHop: netip.MustParseAddr(nh)}
}

var previewOps = []route.RouteOp{
	{Action: route.ActionAdd, Route: mustRoute("default", "10.210.10.0/24", "10.10.10.101")},
	{Action: route.ActionDelete, Route: mustRoute("default", "10.210.20.0/24", "10.10.10.102")},
	{Action: route.ActionAdd, Route: mustRoute("blue", "10.210.30.0/24", "10.10.20.1")},
	{Action: route.ActionDelete, Route: mustRoute("Tenant_1.a-b", "10.210.40.5/32", "10.10.20.1")},
	{Action: route.ActionAdd, Route: mustRoute("default", "2001:db8:100:1::/64", "2001:db8::1")},
	{Action: route.ActionAdd, Route: mustRoute("default", "2001:db8:100:2::/64", "fe80::1")},
}

func TestPreviewGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		platform route.Platform
		file     string
	}{
		{route.PlatformFRR, "frr_preview.golden"},
		{route.PlatformLinux, "linux_preview.golden"},
	} {
		lines, err := Preview(previewConfig(tc.platform), previewOps)
		if err != nil {
			t.Fatalf("%s: %v", tc.platform, err)
		}
		golden(t, tc.file, strings.Join(lines, "\n")+"\n")
	}
}

func TestPreviewRefuses(t *testing.T) {
	t.Parallel()
	bad := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "10.200.0.0/24", "10.10.10.1")},                                                                   // outside the pools
		{Action: route.ActionAdd, Route: mustRoute("bad vrf", "10.210.1.0/24", "10.10.10.1")},                                                                   // VRF with a space
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.1.0/24", "2001:db8::1")},                                                                  // mixed families
		{Action: "replace", Route: mustRoute("default", "10.210.1.0/24", "10.10.10.1")},                                                                         // unknown action
		{Action: route.ActionAdd, Route: route.Route{VRF: "default", Prefix: netip.MustParsePrefix("10.210.1.5/24"), NextHop: netip.MustParseAddr("10.0.0.1")}}, // host bits
	}
	for _, p := range []route.Platform{route.PlatformFRR, route.PlatformLinux} {
		for _, op := range bad {
			if lines, err := Preview(previewConfig(p), []route.RouteOp{op}); err == nil {
				t.Errorf("%s: Preview(%s) = %q, want an error", p, op, lines)
			} else if drivers.KindOf(err) != drivers.KindInternal {
				t.Errorf("%s: Preview(%s) error kind %s, want internal", p, op, drivers.KindOf(err))
			}
		}
	}
	cfg := previewConfig(route.PlatformLinux)
	cfg.Linux.Proto = 300
	if _, err := Preview(cfg, previewOps[:1]); err == nil {
		t.Error("Preview with protocol 300 = nil error, want an error")
	}
}

// TestParseFRRStaticConfig reads a running configuration captured from FRR 8.4 holding
// routes of every form: only the plain "prefix via next hop" ones, in and out of VRF blocks,
// are returnpath's.
func TestParseFRRStaticConfig(t *testing.T) {
	t.Parallel()
	got := parseFRRStaticConfig(string(readTestdata(t, "frr_running_config.txt")))
	golden(t, "frr_running_config.golden", routesText(got))
}

func TestParseFRRInstalled(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"frr_route_default", "frr_route_vrf_all", "frr_route_nested", "frr_route_ipv6"} {
		got, err := parseFRRInstalled(readTestdata(t, name+".json"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		golden(t, name+".golden", routesText(got))
	}
	if _, err := parseFRRInstalled([]byte("% Unknown command")); err == nil {
		t.Error("parseFRRInstalled of non-JSON = nil error")
	}
}

// TestFRROutcome attributes a transcript captured from vtysh 8.4 fed a batch without a
// terminal: a refused line, a delete of a missing route (success), a line in a VRF that does
// not exist (accepted, reported "not installed" at the end) and a line long enough for
// readline to scroll its echo.
func TestFRROutcome(t *testing.T) {
	t.Parallel()
	transcript := string(readTestdata(t, "frr_transcript_rejected.txt"))
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "172.16.8.0/28", "10.10.10.101")},
		{Action: route.ActionAdd, Route: mustRoute("default", "172.16.8.16/28", "10.10.10.101")}, // sent as /33 below
		{Action: route.ActionDelete, Route: mustRoute("default", "172.16.8.32/28", "10.10.10.101")},
		{Action: route.ActionAdd, Route: mustRoute("nosuch", "172.16.8.48/28", "10.10.10.101")},
		{Action: route.ActionAdd, Route: mustRoute("default", "2001:db8:8::/64", "2001:db8::1")}, // sent with an IPv4 next hop below
		{Action: route.ActionAdd, Route: mustRoute("VeryLongVrfNameThatIs32Characte", "172.16.8.64/28", "10.10.10.102")},
	}
	cmds := frrBatch(ops)
	cmds[2] = "ip route 172.16.8.16/33 10.10.10.101"
	cmds[5] = "ipv6 route 2001:db8:8::/64 10.10.10.1"
	err := frrOutcome("sw9", ops, cmds, transcript)
	var b strings.Builder
	fmt.Fprintf(&b, "kind: %s\n", drivers.KindOf(err))
	if de, ok := err.(*drivers.Error); ok {
		for _, r := range de.Rejections {
			fmt.Fprintf(&b, "rejected %d (%s): %s\n", r.Index, r.Op, r.Output)
		}
	}
	golden(t, "frr_transcript_rejected.golden", b.String())

	// A transcript cut short, or one whose echo does not match what was sent, is not
	// attributed: the outcome is indeterminate.
	cut := transcript[:strings.Index(transcript, "sw9(config)# XFRR_end")]
	if k := drivers.KindOf(frrOutcome("sw9", ops, cmds, cut)); k != drivers.KindIndeterminate {
		t.Errorf("cut transcript: kind %s, want indeterminate", k)
	}
	swapped := append([]string(nil), cmds...)
	swapped[1], swapped[3] = swapped[3], swapped[1]
	if k := drivers.KindOf(frrOutcome("sw9", ops, swapped, transcript)); k != drivers.KindIndeterminate {
		t.Errorf("mismatched echo: kind %s, want indeterminate", k)
	}
}

func TestParseLinuxRoutes(t *testing.T) {
	t.Parallel()
	data := readTestdata(t, "linux_routes.json")
	got, err := parseLinuxRoutes(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "linux_routes.golden", routesText(got))
	vrfs, err := parseLinuxVRFs([]byte(`[{"name":"blue","table":10}]`))
	if err != nil {
		t.Fatal(err)
	}
	got, err = parseLinuxRoutes(data, vrfs)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "linux_routes_vrf.golden", routesText(got))
	// ip -json -6 route show table all proto 202 on the lab's fw1 (iproute2 6.1): a plain
	// route, a multipath one and a host route, which ip prints without its /128.
	got, err = parseLinuxRoutes(readTestdata(t, "linux_routes_ipv6.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "linux_routes_ipv6.golden", routesText(got))
}

func TestLinuxBatchErrors(t *testing.T) {
	t.Parallel()
	lineErrs, trailing := linuxBatchErrors(string(readTestdata(t, "linux_batch_stderr.txt")))
	var b strings.Builder
	for i := range 6 {
		if text, ok := lineErrs[i]; ok {
			fmt.Fprintf(&b, "line %d: %s\n", i, text)
		}
	}
	fmt.Fprintf(&b, "trailing: %s\n", trailing)
	golden(t, "linux_batch_stderr.golden", b.String())
}

// noControl reports a line holding a control character (newline, carriage return, escape,
// NUL, ...), which could end or alter a device command.
func noControl(t *testing.T, what, line string) {
	if strings.ContainsFunc(line, unicode.IsControl) {
		t.Fatalf("%s rendered a control character: %q", what, line)
	}
}

// FuzzRender feeds arbitrary VRF names, prefixes and next hops to both renderers: whatever
// passes validation must render to one line without control characters, and whatever does
// not pass must be refused.
func FuzzRender(f *testing.F) {
	f.Add("default", "10.210.10.0/24", "10.10.10.101", true)
	f.Add("blue", "10.210.10.0/24", "10.10.10.101", false)
	f.Add("blue\nip route 0.0.0.0/0 1.1.1.1", "10.210.10.0/24", "10.10.10.101", true)
	f.Add("default", "10.210.10.0/24", "fe80::1%eth0\n", true)
	f.Add("a b", "2001:db8:100::/64", "2001:db8::1", false)
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
		for _, platform := range []route.Platform{route.PlatformFRR, route.PlatformLinux} {
			cfg := previewConfig(platform)
			cfg.Managed = append(cfg.Managed, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
			lines, err := Preview(cfg, []route.RouteOp{op})
			if op.Validate() != nil {
				if err == nil {
					t.Fatalf("%s: invalid op %s rendered %q", platform, op, lines)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: valid op %s refused: %v", platform, op, err)
			}
			if len(lines) != 1 {
				t.Fatalf("%s: %d lines for one op", platform, len(lines))
			}
			noControl(t, string(platform), lines[0])
		}
		if op.Validate() == nil {
			// What FRR renders, FRR's parser reads back as the same route.
			got := parseFRRStaticConfig(frrRouteLine(op.Route) + "\n")
			if len(got) != 1 || got[0] != op.Route {
				t.Fatalf("parse(render(%s)) = %v", op.Route, got)
			}
		}
	})
}

// FuzzParseFRRStaticConfig checks that any configuration text yields only valid routes.
func FuzzParseFRRStaticConfig(f *testing.F) {
	f.Add("ip route 10.210.0.0/24 10.0.0.1\nvrf blue\n ip route 10.210.1.0/24 10.0.0.2\nexit-vrf\n")
	f.Add("ipv6 route 2001:db8::/64 fe80::1 vrf x\n")
	f.Add("ipv6 route fd00:210::/64 fd00:10:10:10::101\nipv6 route fd00:210:0:1::/64 fd00:10:10:10::102\nip route fd00:210:0:2::/64 fd00::1\nipv6 route 10.0.0.0/8 10.0.0.1\n")
	f.Add("vrf a\x00b\n ip route 1.2.3.0/24 1.1.1.1\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range parseFRRStaticConfig(text) {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			noControl(t, "frr", frrRouteLine(r))
		}
	})
}

// FuzzParseDeviceJSON checks that the JSON parsers never panic and yield only valid routes.
func FuzzParseDeviceJSON(f *testing.F) {
	f.Add([]byte(`[{"dst":"10.210.0.0/24","gateway":"10.0.0.1"}]`))
	f.Add([]byte(`[{"dst":"default","nexthops":[{"gateway":"fe80::1"}]}]`))
	f.Add([]byte(`{"10.210.0.0/24":[{"prefix":"10.210.0.0/24","protocol":"static","installed":true,"nexthops":[{"ip":"10.0.0.1","fib":true}]}]}`))
	f.Add([]byte(`{"blue":{"10.210.0.0/24":[{"prefix":"10.210.0.0/24","protocol":"static","vrfName":"blue","installed":true,"nexthops":[{"ip":"10.0.0.1","fib":true}]}]}}`))
	// IPv6, as FRR 8.4 and iproute2 6.1 print it (testdata/frr_route_ipv6.json, linux_routes_ipv6.json).
	f.Add([]byte(`{"fd00:210:0:1::/64":[{"prefix":"fd00:210:0:1::/64","protocol":"static","vrfName":"default","installed":true,"nexthops":[{"fib":true,"ip":"fd00:10:10:10::101","afi":"ipv6"},{"fib":true,"ip":"fd00:10:10:10::102","afi":"ipv6"}]}]}`))
	f.Add([]byte(`[{"dst":"fd00:210:0:1::/64","metric":1024,"nexthops":[{"gateway":"fd00:10:10:20::1","dev":"inside"},{"gateway":"fd00:10:10:20::3","dev":"inside"}]},{"dst":"fd00:210:0:2::1","gateway":"fd00:10:10:20::1"},{"dst":"fd00:210::/64","gateway":"10.0.0.1"}]`))
	f.Add([]byte(`[{"dst":"default","gateway":"fe80::1%eth0"},{"dst":"fd00::/8","gateway":"::ffff:10.0.0.1"},{"dst":"fd00:210::1/64","gateway":"fd00::1"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, _ := parseLinuxRoutes(data, map[string]string{"10": "blue"})
		more, _ := parseFRRInstalled(data)
		for _, r := range append(rs, more...) {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
		}
	})
}

// FuzzLinuxBatchErrors checks that the stderr parser never panics and only names lines that
// exist.
func FuzzLinuxBatchErrors(f *testing.F) {
	f.Add("RTNETLINK answers: File exists\nCommand failed -:1\n")
	f.Add("Command failed -:0\nCommand failed -:-3\nCommand failed -:99999999999999999999\n")
	f.Fuzz(func(t *testing.T, stderr string) {
		errs, _ := linuxBatchErrors(stderr)
		for i := range errs {
			if i < 0 {
				t.Fatalf("negative line %d", i)
			}
		}
	})
}

// TestLinuxLinesMultipath pins how a delete of one next hop of a multipath route is written:
// a replace with the next hops that remain, never a "route del" that the kernel would match
// against the first next hop only.
func TestLinuxLinesMultipath(t *testing.T) {
	t.Parallel()
	a, b, c := netip.MustParseAddr("10.10.20.1"), netip.MustParseAddr("10.10.20.3"), netip.MustParseAddr("10.10.20.5")
	p := netip.MustParsePrefix("10.210.1.0/24")
	r := func(vrf string, nh netip.Addr) route.Route { return route.Route{VRF: vrf, Prefix: p, NextHop: nh} }
	del := func(r route.Route) route.RouteOp { return route.RouteOp{Action: route.ActionDelete, Route: r} }
	for _, tc := range []struct {
		name string
		have []route.Route
		ops  []route.RouteOp
		want []string
	}{
		{name: "single next hop", have: []route.Route{r("default", a)}, ops: []route.RouteOp{del(r("default", a))},
			want: []string{"route del 10.210.1.0/24 via 10.10.20.1 proto 202"}},
		{name: "first of two", have: []route.Route{r("default", a), r("default", b)}, ops: []route.RouteOp{del(r("default", a))},
			want: []string{"route replace 10.210.1.0/24 proto 202 via 10.10.20.3"}},
		{name: "one of three, then another", have: []route.Route{r("blue", a), r("blue", b), r("blue", c)},
			ops: []route.RouteOp{del(r("blue", b)), del(r("blue", a))},
			want: []string{"route replace 10.210.1.0/24 proto 202 nexthop via 10.10.20.1 nexthop via 10.10.20.5 vrf blue",
				"route replace 10.210.1.0/24 proto 202 via 10.10.20.5 vrf blue"}},
		{name: "next hop not on the route", have: []route.Route{r("default", a), r("default", b)}, ops: []route.RouteOp{del(r("default", c))},
			want: []string{"route del 10.210.1.0/24 via 10.10.20.5 proto 202"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := linuxLines(tc.ops, DefaultLinuxProto, multipathOf(tc.have))
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("lines (-got +want):\n%s", diff)
			}
		})
	}
}
