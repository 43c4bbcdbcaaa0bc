package ssh

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/junos"
)

// The juniper_junos driver's tests run against drivers/ssh/emulate/junos, an in-process
// emulation of the Junos CLI built from Juniper's documentation: no Junos image runs on this
// machine.

// startJunos starts an emulated Junos device and returns it with a driver config that reaches
// it.
func startJunos(t testing.TB, opts junos.Options) (*junos.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "admin", "s3cret-junos"
	dev, err := junos.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev, emulatedConfig(t, dev, "mx1", route.PlatformJuniperJunos, opts.Username, opts.Password)
}

// junosInstance maps returnpath's VRF name to the routing instance ("" for the master one).
func junosInstance(vrf string) string {
	if vrf == route.DefaultVRF {
		return ""
	}
	return vrf
}

func junosHarness(t *testing.T, opts junos.Options, confirm time.Duration) drivertest.Harness {
	dev, cfg := startJunos(t, opts)
	cfg.Junos.Confirm = confirm
	other, err := junos.Start(junos.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	h := drivertest.Harness{
		Config:         cfg,
		Open:           JunosFactory().Open,
		Preview:        JunosFactory().Preview,
		NextHops:       eosNextHops,
		NextHops6:      v6NextHops,
		Unmanaged6:     v6Unmanaged,
		VRF:            "blue",
		Unmanaged:      labUnmanaged,
		MarksOwnership: true,
		Atomic:         true,
		SkipReasons:    map[string]string{"RepairForeignIndexedNextHop": "Junos keys static next hops by address, not by an index"},
		List: func(context.Context) ([]route.Route, error) {
			var out []route.Route
			for _, r := range dev.Routes() {
				vrf := r.Instance
				if vrf == "" {
					vrf = route.DefaultVRF
				}
				out = append(out, route.Route{VRF: vrf, Prefix: r.Prefix, NextHop: r.NextHop})
			}
			return out, nil
		},
		// A foreign route: the same prefix and next hop form, without tag 202.
		Plant: func(_ context.Context, r route.Route) error {
			dev.Set(junos.Route{Instance: junosInstance(r.VRF), Prefix: r.Prefix, NextHop: r.NextHop})
			return nil
		},
		// One route with every next hop, tagged 202, as someone editing returnpath's routes by
		// hand would leave them.
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				dev.Set(junos.Route{Prefix: p, NextHop: nh, Tag: junosTag})
			}
			return nil
		},
		Remove: func(_ context.Context, r route.Route) error {
			dev.Delete(junosInstance(r.VRF), r.Prefix, r.NextHop)
			return nil
		},
		// The emulated commit check refuses a multicast next hop; the whole batch fails.
		Reject: func(p netip.Prefix) (route.Route, string) {
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: multicastNextHop(p)}, "configuration check-out failed"
		},
	}
	withLoginFailures(t, &h, dev, other)
	return h
}

func TestJunosConformance(t *testing.T) {
	drivertest.Run(t, junosHarness(t, junos.Options{}, 0))
}

// TestJunosConformancePagingOn runs the suite against a device where "set cli screen-length 0"
// does not turn paging off: every read longer than 10 lines stops at ---(more)---.
func TestJunosConformancePagingOn(t *testing.T) {
	drivertest.Run(t, junosHarness(t, junos.Options{IgnoreTerminalLength: true, PageLines: 10}, 0))
}

// TestJunosConformanceConfirm runs the suite with junos.confirm: every batch is committed with
// commit confirmed under configure exclusive, read back and confirmed.
func TestJunosConformanceConfirm(t *testing.T) {
	drivertest.Run(t, junosHarness(t, junos.Options{}, 5*time.Minute))
}

func openJunosTest(t *testing.T, cfg drivers.Config) *JunosDriver {
	t.Helper()
	d, err := OpenJunos(t.Context(), cfg)
	if err != nil {
		t.Fatalf("OpenJunos: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// routesOf returns the routes of ops, sorted.
func routesOf(ops []route.RouteOp) []route.Route {
	out := make([]route.Route, len(ops))
	for i, op := range ops {
		out[i] = op.Route
	}
	drivertest.SortRoutes(out)
	return out
}

func wantDriverRoutes(t *testing.T, d drivers.Driver, want []route.Route) {
	t.Helper()
	got, err := d.Routes(t.Context())
	if err != nil {
		t.Fatalf("Routes: %v", err)
	}
	drivertest.SortRoutes(got)
	if diff := cmp.Diff(got, want, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("routes (-got +want):\n%s", diff)
	}
}

// TestJunosCommitCheckFailsWhole: the device's commit check refuses the candidate; nothing of
// the batch is committed, every op is reported with the device's text, the candidate is
// rolled back (the next batch does not carry it) and the session stays usable.
func TestJunosCommitCheckFailsWhole(t *testing.T) {
	t.Parallel()
	dev, cfg := startJunos(t, junos.Options{})
	d := openJunosTest(t, cfg)
	batch := eosAdds(3, route.DefaultVRF)
	dev.FailNextCommit("[edit routing-options static]\n  'route'\n    emulated refusal")
	err := d.Apply(t.Context(), batch)
	wantEveryOpRejected(t, err, batch, "configuration check-out failed")
	if got := dev.Routes(); len(got) != 0 {
		t.Errorf("configuration after the failed commit check = %v, want nothing", got)
	}
	if got := dev.Commits(); got != 0 {
		t.Errorf("commits = %d, want 0", got)
	}
	next := eosAdds(4, route.DefaultVRF)[3:]
	if err := d.Apply(t.Context(), next); err != nil {
		t.Fatalf("Apply after the failed commit check: %v", err)
	}
	// Only the second batch landed: the first one's lines were rolled back, not left in a
	// candidate for the next commit to carry.
	wantDriverRoutes(t, d, routesOf(next))
}

// TestJunosRefusedLineRollsBack: a line Junos's parser refuses rolls the whole candidate back,
// and the refusal names the op with Junos's caret and text.
func TestJunosRefusedLineRollsBack(t *testing.T) {
	t.Parallel()
	dev, cfg := startJunos(t, junos.Options{})
	d := openJunosTest(t, cfg)
	batch := eosAdds(2, route.DefaultVRF)
	batch = append(batch, route.RouteOp{Action: route.ActionAdd, Route: mustRoute("default", "10.210.99.0/24", "10.10.10.101")})
	dev.RefuseStatementsWith("10.210.99.0/24")
	err := d.Apply(t.Context(), batch)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != len(batch) {
		t.Fatalf("Apply = %v, want every op rejected", err)
	}
	if r := de.Rejections[2]; !strings.Contains(r.Output, "syntax error") || strings.HasPrefix(r.Output, "not applied") {
		t.Errorf("rejection of the bad op = %q, want Junos's syntax error", r.Output)
	}
	if r := de.Rejections[0]; !strings.HasPrefix(r.Output, "not applied") {
		t.Errorf("rejection of a good op = %q, want not applied", r.Output)
	}
	if got := dev.Routes(); len(got) != 0 || dev.Commits() != 0 {
		t.Errorf("after the refusal: routes %v, %d commits; want none", got, dev.Commits())
	}
}

// TestJunosDroppedDuringCommit: the connection drops while the device commits (it did commit);
// the driver must say it cannot know, and a re-read tells the truth.
func TestJunosDroppedDuringCommit(t *testing.T) {
	t.Parallel()
	dev, cfg := startJunos(t, junos.Options{})
	d := openJunosTest(t, cfg)
	batch := eosAdds(2, route.DefaultVRF)
	dev.DropNextCommit()
	err := d.Apply(t.Context(), batch)
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply = %v (kind %s), want indeterminate", err, k)
	}
	wantDriverRoutes(t, openJunosTest(t, cfg), routesOf(batch))
}

// TestJunosConfirmedDroppedRollsBack: with junos.confirm, the session drops during "commit
// confirmed"; the commit is never confirmed, so when its timer runs out Junos rolls it back.
// The driver says indeterminate, and a re-read before and after the timer tells the truth.
func TestJunosConfirmedDroppedRollsBack(t *testing.T) {
	t.Parallel()
	dev, cfg := startJunos(t, junos.Options{})
	cfg.Junos.Confirm = 2 * time.Minute
	d := openJunosTest(t, cfg)
	batch := eosAdds(2, route.DefaultVRF)
	dev.DropNextCommit()
	if k := drivers.KindOf(d.Apply(t.Context(), batch)); k != drivers.KindIndeterminate {
		t.Fatalf("Apply kind = %s, want indeterminate", k)
	}
	if !dev.PendingConfirm() {
		t.Fatal("the dropped commit is not waiting for its confirmation")
	}
	wantDriverRoutes(t, openJunosTest(t, cfg), routesOf(batch))
	if !dev.ExpireConfirm() {
		t.Fatal("ExpireConfirm found no pending commit")
	}
	wantDriverRoutes(t, openJunosTest(t, cfg), nil)
}

// TestJunosConfirmedCommit: with junos.confirm the batch is committed once, confirmed (nothing
// pending afterwards), and "commit confirmed N" carries the configured minutes.
func TestJunosConfirmedCommit(t *testing.T) {
	t.Parallel()
	dev, cfg := startJunos(t, junos.Options{})
	cfg.Junos.Confirm = 3 * time.Minute
	d := openJunosTest(t, cfg)
	batch := eosAdds(5, "blue")
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if dev.PendingConfirm() {
		t.Error("the commit is still waiting for its confirmation")
	}
	if got := dev.Commits(); got != 1 {
		t.Errorf("commits = %d, want 1", got)
	}
	if dev.ExpireConfirm() {
		t.Error("a timer was still running")
	}
	wantDriverRoutes(t, d, routesOf(batch))
	lines, err := JunosPreview(cfg, batch[:1])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(lines, "commit confirmed 3") || lines[0] != "configure exclusive" {
		t.Errorf("preview with confirm = %q, want configure exclusive and commit confirmed 3", lines)
	}
}

// TestJunosSharedCandidateModified: another user's uncommitted change in the shared candidate
// stops the batch before any line is sent: configure private refuses to start, and configure
// exclusive (junos.confirm) would commit the other user's change, so the driver leaves.
func TestJunosSharedCandidateModified(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		confirm time.Duration
		want    string
	}{
		{name: "private", want: "shared configuration database modified"},
		{name: "exclusive", confirm: time.Minute, want: "another user's uncommitted changes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev, cfg := startJunos(t, junos.Options{})
			cfg.Junos.Confirm = tc.confirm
			d := openJunosTest(t, cfg)
			dev.ModifySharedCandidate(true)
			batch := eosAdds(2, route.DefaultVRF)
			err := d.Apply(t.Context(), batch)
			var de *drivers.Error
			if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != 2 || !strings.Contains(de.Rejections[0].Output, tc.want) {
				t.Fatalf("Apply = %v, want both ops rejected with %q", err, tc.want)
			}
			dev.ModifySharedCandidate(false)
			if err := d.Apply(t.Context(), batch); err != nil {
				t.Fatalf("Apply once the shared candidate is clean: %v", err)
			}
			wantDriverRoutes(t, d, routesOf(batch))
		})
	}
}

// TestJunosDeleteLastNextHopRemovesRoute: deleting one of two next hops keeps the route and its
// tag; deleting the last one removes the route, tag included (a route with no next hop does
// not commit), while a foreign route's interface next hop keeps its route alive.
func TestJunosDeleteLastNextHopRemovesRoute(t *testing.T) {
	t.Parallel()
	dev, cfg := startJunos(t, junos.Options{})
	d := openJunosTest(t, cfg)
	p := netip.MustParsePrefix("10.210.7.0/24")
	a := route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: eosNextHops[0]}
	b := route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: eosNextHops[1]}
	if err := d.Apply(t.Context(), []route.RouteOp{{Action: route.ActionAdd, Route: a}, {Action: route.ActionAdd, Route: b}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(t.Context(), []route.RouteOp{{Action: route.ActionDelete, Route: a}}); err != nil {
		t.Fatal(err)
	}
	got := dev.Routes()
	if len(got) != 1 || got[0].NextHop != b.NextHop || got[0].Tag != junosTag {
		t.Fatalf("after deleting one next hop: %+v, want %s tagged %s", got, b, junosTag)
	}
	if err := d.Apply(t.Context(), []route.RouteOp{{Action: route.ActionDelete, Route: b}}); err != nil {
		t.Fatal(err)
	}
	if lines := dev.Running().Lines(); len(lines) != 0 {
		t.Errorf("after deleting the last next hop the configuration holds %q, want nothing", lines)
	}
}

// TestJunosOneCommitPerBatch: a batch of adds and deletes across routing instances is one
// commit; a batch with nothing to do commits nothing.
func TestJunosOneCommitPerBatch(t *testing.T) {
	t.Parallel()
	dev, cfg := startJunos(t, junos.Options{})
	d := openJunosTest(t, cfg)
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

// TestJunosIPv6: IPv6 routes go to rib inet6.0 (blue.inet6.0 in an instance) and read back.
func TestJunosIPv6(t *testing.T) {
	t.Parallel()
	dev, cfg := startJunos(t, junos.Options{})
	cfg.Managed = append(cfg.Managed, netip.MustParsePrefix("2001:db8:100::/48"))
	d := openJunosTest(t, cfg)
	batch := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "2001:db8:100:1::/64", "2001:db8::1")},
		{Action: route.ActionAdd, Route: mustRoute("blue", "2001:db8:100:2::/64", "2001:db8::2")},
	}
	if err := d.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	wantDriverRoutes(t, d, routesOf(batch))
	lines := dev.Running().Lines("routing-instances", "blue")
	if len(lines) == 0 || lines[0][3] != "rib" || lines[0][4] != "blue.inet6.0" {
		t.Errorf("blue's statements = %q, want them in rib blue.inet6.0", lines)
	}
}

func TestJunosPreviewGolden(t *testing.T) {
	t.Parallel()
	lines, err := Preview(previewConfig(route.PlatformJuniperJunos), previewOps)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "junos_preview.golden", strings.Join(lines, "\n")+"\n")
	cfg := previewConfig(route.PlatformJuniperJunos)
	cfg.Junos.Confirm = 5 * time.Minute
	lines, err = Preview(cfg, previewOps)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "junos_preview_confirm.golden", strings.Join(lines, "\n")+"\n")
}

// TestJunosBatchDeletes: a delete removes the next hop while the route keeps another one
// (after the batch), and the whole route otherwise.
func TestJunosBatchDeletes(t *testing.T) {
	t.Parallel()
	p := netip.MustParsePrefix("10.210.1.0/24")
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	key := route.RouteKey{VRF: route.DefaultVRF, Prefix: p}
	del := route.RouteOp{Action: route.ActionDelete, Route: route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: a}}
	add := route.RouteOp{Action: route.ActionAdd, Route: route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: b}}
	for _, tc := range []struct {
		name string
		ops  []route.RouteOp
		have map[route.RouteKey]setStatic
		want string
	}{
		{name: "only next hop", ops: []route.RouteOp{del}, have: map[route.RouteKey]setStatic{key: {NextHops: []netip.Addr{a}}},
			want: "delete routing-options static route 10.210.1.0/24"},
		{name: "another next hop stays", ops: []route.RouteOp{del}, have: map[route.RouteKey]setStatic{key: {NextHops: []netip.Addr{a, b}}},
			want: "delete routing-options static route 10.210.1.0/24 next-hop 10.0.0.1"},
		{name: "an interface next hop stays", ops: []route.RouteOp{del}, have: map[route.RouteKey]setStatic{key: {NextHops: []netip.Addr{a}, Other: 1}},
			want: "delete routing-options static route 10.210.1.0/24 next-hop 10.0.0.1"},
		{name: "next hop changes", ops: []route.RouteOp{del, add}, have: map[route.RouteKey]setStatic{key: {NextHops: []netip.Addr{a}}},
			want: "delete routing-options static route 10.210.1.0/24 next-hop 10.0.0.1"},
		{name: "preview", ops: []route.RouteOp{del}, want: "delete routing-options static route 10.210.1.0/24"},
	} {
		lines, idx := junosBatch(tc.ops, tc.have)
		if lines[0] != tc.want || idx[0] != 0 {
			t.Errorf("%s: first line %q (op %d), want %q (op 0)", tc.name, lines[0], idx[0], tc.want)
		}
	}
}

// TestParseJunosStatics reads "display set" output in Junos's format holding routes of every
// form: only address next hops of routes tagged 202, in the right tables, are returnpath's.
func TestParseJunosStatics(t *testing.T) {
	t.Parallel()
	golden(t, "junos_display_set.golden", routesText(junosOwned(parseJunosStatics(string(readTestdata(t, "junos_display_set.txt"))))))
}

// TestJunosTranscript attributes Junos's answers to the lines sent, with the [edit] banner and
// paging markers removed, and finds the op a commit error names.
func TestJunosTranscript(t *testing.T) {
	t.Parallel()
	transcript := "set routing-options static route 10.210.0.0/24 nexthop 10.0.0.1\r\n" +
		"                                                             ^\r\nsyntax error.\r\n\r\n[edit]\r\n" +
		"admin@mx1# set routing-options static route 10.210.1.0/24 next-hop 10.0.0.1\r\n\r\n[edit]\r\nadmin@mx1# "
	rs := junosDialect.split(transcript)
	if len(rs) != 3 {
		t.Fatalf("results = %+v, want 3", rs)
	}
	if got := junosRefusal(rs[0].Output); !strings.Contains(got, "syntax error.") {
		t.Errorf("refusal of line 1 = %q", got)
	}
	if got := junosRefusal(rs[1].Output); got != "" {
		t.Errorf("refusal of line 2 = %q, want none (output %q)", got, rs[1].Output)
	}
	if got := junosRefusal([]string{"warning: statement not found"}); got != "" {
		t.Errorf("a warning counts as a refusal: %q", got)
	}
	paged := "set routing-options static route 10.210.0.0/24 next-hop 10.0.0.1\r\n---(more 45%)---\r            \rset routing-options static route 10.210.0.0/24 tag 202\r\n"
	if got := junosOwned(parseJunosStatics(strings.Join(body(junosDialect.split("show\r\n"+paged)), "\n"))); len(got) != 1 {
		t.Errorf("routes read across a page break = %v, want 1", got)
	}
	ops := eosAdds(3, "blue")
	text := "[edit routing-instances blue routing-options static route " + ops[1].Route.Prefix.String() + "]\n  'next-hop " +
		ops[1].Route.NextHop.String() + "'\n    Invalid next-hop address\nerror: configuration check-out failed"
	if got := junosCulprit(text, ops); got != 1 {
		t.Errorf("culprit = %d, want 1", got)
	}
	if got := junosCulprit("error: configuration check-out failed", ops); got != -1 {
		t.Errorf("culprit of an error naming nothing = %d, want -1", got)
	}
}

// FuzzParseJunosStatics checks that any text yields only valid routes that render back to
// statements parsing to exactly that route.
func FuzzParseJunosStatics(f *testing.F) {
	f.Add("set routing-options static route 10.210.0.0/24 next-hop 10.0.0.1\nset routing-options static route 10.210.0.0/24 tag 202\n")
	f.Add("set routing-instances blue routing-options rib blue.inet6.0 static route 2001:db8::/64 next-hop 2001:db8::1\nset routing-instances blue routing-options rib blue.inet6.0 static route 2001:db8::/64 tag 202\n")
	f.Add("set routing-options rib inet6.0 static route 1.2.3.0/24 next-hop 1.1.1.1\nset routing-options static route 1.2.3.0/24 next-hop ge-0/0/0.0\nset routing-options static route 1.2.3.0/24 tag 202\n")
	f.Add("set routing-instances a\x00b routing-options static route 1.2.3.0/24 next-hop 1.1.1.1\nset routing-options static route\nset\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range junosOwned(parseJunosStatics(text)) {
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed invalid route %+v: %v", r, err)
			}
			lines, _ := junosBatch([]route.RouteOp{{Action: route.ActionAdd, Route: r}}, nil)
			var b strings.Builder
			for _, l := range lines {
				noControl(t, "juniper_junos", l)
				b.WriteString(l + "\n")
			}
			if got := junosOwned(parseJunosStatics(b.String())); len(got) != 1 || got[0] != r {
				t.Fatalf("%q reads back as %v, want %v", b.String(), got, r)
			}
		}
	})
}

// FuzzJunosRender feeds arbitrary VRF names, prefixes and next hops to the Junos preview:
// whatever passes validation renders to lines without control characters, every one built
// from the typed values, and whatever does not pass is refused.
func FuzzJunosRender(f *testing.F) {
	f.Add("default", "10.210.10.0/24", "10.10.10.101", true)
	f.Add("blue\nset system root-authentication", "10.210.10.0/24", "10.10.10.101", true)
	f.Add("blue", "2001:db8:100::/64", "2001:db8::1", false)
	f.Add("a b", "10.210.10.0/24", "fe80::1%ge-0/0/0", true)
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
		cfg := previewConfig(route.PlatformJuniperJunos)
		cfg.Managed = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		lines, err := JunosPreview(cfg, []route.RouteOp{op})
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
			noControl(t, "juniper_junos", l)
			if strings.HasPrefix(l, "set ") || strings.HasPrefix(l, "delete ") {
				if !strings.Contains(l, junosRoutePath(op.Route.VRF, op.Route.Prefix)) {
					t.Fatalf("line %q is not built from the route's path", l)
				}
			}
		}
	})
}

// TestJunosCheck: junos.confirm is off or whole minutes from 1 to 60, and the error names the
// key.
func TestJunosCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		confirm time.Duration
		ok      bool
	}{
		{name: "off", confirm: 0, ok: true},
		{name: "one minute", confirm: time.Minute, ok: true},
		{name: "an hour", confirm: time.Hour, ok: true},
		{name: "seconds", confirm: 90 * time.Second},
		{name: "too short", confirm: 30 * time.Second},
		{name: "too long", confirm: 2 * time.Hour},
		{name: "negative", confirm: -time.Minute},
	} {
		cfg := drivers.Config{Junos: drivers.JunosConfig{Confirm: tc.confirm}}
		err := JunosCheck(cfg)
		var fe *route.FieldError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: JunosCheck = %v, want nil", tc.name, err)
		case !tc.ok && (!errors.As(err, &fe) || fe.Field != "junos.confirm"):
			t.Errorf("%s: JunosCheck = %v, want a field error on junos.confirm", tc.name, err)
		}
	}
}

// TestJunosVersion: device check's version line comes from "show version".
func TestJunosVersion(t *testing.T) {
	t.Parallel()
	_, cfg := startJunos(t, junos.Options{Model: "srx345"})
	d := openJunosTest(t, cfg)
	v, err := d.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v != "Juniper srx345, Junos 21.4R3-S5.4" {
		t.Errorf("Version = %q", v)
	}
	if _, err := d.Routes(t.Context()); err != nil {
		t.Errorf("Routes after Version: %v", err)
	}
	for _, tc := range []struct{ name, out, want string }{
		{name: "model and junos", out: "Hostname: ex1\nModel: ex4300-48t\nJunos: 20.4R3.8\n", want: "Juniper ex4300-48t, Junos 20.4R3.8"},
		{name: "old release", out: "Hostname: mx1\nModel: mx480\nJUNOS Base OS boot [12.3R6.6]\n", want: "Juniper mx480, Junos 12.3R6.6"},
		{name: "nothing", out: "\n", want: ""},
	} {
		if got := junosVersion(tc.out); got != tc.want {
			t.Errorf("%s: junosVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// BenchmarkJunosAdd1000 measures one 1,000-add Apply (one private candidate, commit check, one
// commit) against the emulation, and reports the driver's time per route and the commits per
// batch.
//
//	go test ./drivers/ssh -run '^$' -bench BenchmarkJunos -benchtime 3x
func BenchmarkJunosAdd1000(b *testing.B) {
	dev, cfg := startJunos(b, junos.Options{})
	adds := eosAdds(1000, route.DefaultVRF)
	benchAdd1000(b, cfg, opener(OpenJunos), adds, func() {
		for _, op := range adds {
			dev.Delete("", op.Route.Prefix, op.Route.NextHop)
		}
	}, dev.Commits)
}

// BenchmarkJunosOpen measures opening a session (SSH, screen width and length, completion).
func BenchmarkJunosOpen(b *testing.B) {
	_, cfg := startJunos(b, junos.Options{})
	benchOpenClose(b, cfg, opener(OpenJunos))
}
