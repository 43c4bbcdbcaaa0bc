// Package drivertest is the conformance suite every returnpath driver runs against the most
// real target available, and an in-memory Fake device for other packages' tests.
//
// A transport plugs in with a Harness: how to open a driver, the device's base Config, and
// out-of-band helpers that plant, remove and list routes on the device without going through
// the driver. Optional capabilities (wrong password, unknown host key, ...) may be left nil;
// the cases that need them are then skipped with a reason.
package drivertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Harness connects the suite to one device reached by one transport.
type Harness struct {
	// Config is the device's base configuration with working credentials. Managed[0] must be
	// an IPv4 pool of /20 or larger: the suite carves its test prefixes from it. Managed must
	// also hold an IPv6 pool of /52 or larger: the IPv6 cases carve /64s from the first one.
	Config drivers.Config
	// Open opens a session; usually the transport's Factory().Open.
	Open func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error)
	// Preview is the transport's pure preview; nil skips the preview case.
	Preview func(cfg drivers.Config, ops []route.RouteOp) ([]string, error)

	// NextHops are at least two next hops the device accepts in every VRF the suite uses.
	NextHops []netip.Addr
	// NextHops6 are at least two IPv6 next hops the device accepts in every VRF the suite
	// uses: the IPv6 cases use them where the IPv4 cases use NextHops.
	NextHops6 []netip.Addr
	// VRF names a non-default VRF that exists on the device; "" skips the VRF case.
	VRF string
	// VRFNotInstalled says that routes in VRF exist only in the configuration (the VRF has
	// no kernel device), so InstalledRoutes is not expected to list them.
	VRFNotInstalled bool
	// Unmanaged is a prefix outside every managed pool where the suite may plant a foreign
	// route out of band.
	Unmanaged netip.Prefix
	// Unmanaged6 is an IPv6 prefix outside every managed pool, used as Unmanaged is.
	Unmanaged6 netip.Prefix
	// MarksOwnership is true when the platform marks the routes the driver created (Linux
	// route protocol), so that a foreign route inside a pool is invisible to Routes. When it
	// is false (FRR), every static route inside the pools counts as returnpath's.
	MarksOwnership bool

	// List returns every static route on the device, in every VRF, managed or not, read out
	// of band.
	List func(ctx context.Context) ([]route.Route, error)
	// Plant adds a foreign route out of band (on Linux: not with the driver's protocol).
	Plant func(ctx context.Context, r route.Route) error
	// Remove deletes a route out of band.
	Remove func(ctx context.Context, r route.Route) error

	// PlantNextHops plants, out of band, one route on prefix p in the default VRF via every
	// next hop of nhs, in that order, as the device would hold a route someone else made or
	// edited: Routes must read it as one route per next hop, counted as the driver's own (on
	// Linux: a multipath route with the driver's protocol). nil skips the cases that need it.
	PlantNextHops func(ctx context.Context, p netip.Prefix, nhs []netip.Addr) error
	// ForeignIndexes is true when the device keys a route's next hops by an index and
	// PlantNextHops uses indexes the driver never chooses (gNMI: "AUTO_1_...", "7"). It is
	// false where next hops have no index (FRR, Linux), which skips ForeignIndexedNextHop.
	ForeignIndexes bool

	// Reject returns a route on prefix p that the device refuses, and a substring of the
	// text the device answers with. p is IPv4 in the IPv4 cases and IPv6 in the IPv6 cases;
	// the route must be of p's family. nil skips the rejection case.
	Reject func(p netip.Prefix) (route.Route, string)
	// Atomic is true when the device applies a batch whole or not at all (gNMI). The
	// Rejected case then expects every op of the batch listed, in order, each with the
	// device's text, and none of the batch's routes on the device afterwards.
	Atomic bool

	// The following return a copy of cfg that must fail to open with the named problem;
	// nil skips the case.
	WrongPassword  func(cfg drivers.Config) drivers.Config // KindAuth
	UnknownHostKey func(cfg drivers.Config) drivers.Config // KindHostKey
	KeyMismatch    func(cfg drivers.Config) drivers.Config // KindHostKey
	Unreachable    func(cfg drivers.Config) drivers.Config // KindUnreachable

	// SkipReasons explains, by case name ("Rejected", "VRF", "WrongPassword", ...), why a
	// capability above was left nil; the skipped case reports it. An IPv6 case looks up
	// "IPv6/"+name first, then name. "IPv6" skips every IPv6 case: without it, a harness
	// that gives no IPv6 pool, NextHops6 or Unmanaged6 fails them, since every driver must
	// support IPv6.
	SkipReasons map[string]string

	// BatchSize is the size of the large-batch case; 0 means 1,000.
	BatchSize int
	// Timeout bounds each case; 0 means two minutes.
	Timeout time.Duration
}

// suite carries the harness and hands out fresh prefixes so that cases never collide.
type suite struct {
	h   Harness
	fam *family
}

// family is what the cases of one address family use: the pool they carve prefixes from,
// the next hops and the prefix outside the pools.
type family struct {
	name      string // "IPv4" or "IPv6"
	pool      netip.Prefix
	bits      int
	next      uint32
	limit     uint32
	nextHops  []netip.Addr
	unmanaged netip.Prefix
}

type suiteCase struct {
	name string
	fn   func(t *testing.T, ctx context.Context)
}

// Run runs the conformance suite against the device behind h. Cases run one after another
// because they share the device; each removes what it added. The route cases run first
// with IPv4 routes, then again with IPv6 routes under the subtest "IPv6", which adds a case
// mixing both families in one batch.
func Run(t *testing.T, h Harness) {
	s := newSuite(t, h)
	s.reset(t)
	cases := slices.Concat(s.routeCases(), []suiteCase{
		{"Unreachable", s.testOpenFails("Unreachable", h.Unreachable, drivers.KindUnreachable)},
		{"WrongPassword", s.testOpenFails("WrongPassword", h.WrongPassword, drivers.KindAuth)},
		{"UnknownHostKey", s.testOpenFails("UnknownHostKey", h.UnknownHostKey, drivers.KindHostKey)},
		{"KeyMismatch", s.testOpenFails("KeyMismatch", h.KeyMismatch, drivers.KindHostKey)},
	})
	s.run(t, cases)
	v4 := s.fam
	t.Run("IPv6", func(t *testing.T) {
		v6 := &suite{h: s.h, fam: newFamily6(t, s.h)}
		v6.run(t, slices.Concat(v6.routeCases(), []suiteCase{
			{"MixedFamilies", func(t *testing.T, ctx context.Context) { v6.testMixed(t, ctx, v4) }},
		}))
	})
}

func (s *suite) run(t *testing.T, cases []suiteCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), s.h.Timeout)
			defer cancel()
			c.fn(t, ctx)
		})
	}
}

// routeCases are the cases that read and change routes: they run once per address family.
func (s *suite) routeCases() []suiteCase {
	return []suiteCase{
		{"OpenClose", s.testOpenClose},
		{"AddAndRead", s.testAddAndRead},
		{"ReapplyIsNoop", s.testReapply},
		{"Delete", s.testDelete},
		{"DeleteMissing", s.testDeleteMissing},
		{"ChangeNextHop", s.testChangeNextHop},
		{"RepairWrongNextHop", s.testRepairWrongNextHop},
		{"RepairForeignIndexedNextHop", s.testRepairForeignIndexed},
		{"RepairExtraNextHop", s.testRepairExtraNextHop},
		{"Rejected", s.testRejected},
		{"OutsideManaged", s.testOutsideManaged},
		{"ForeignUntouched", s.testForeign},
		{"VRF", s.testVRF},
		{"Batch", s.testBatch},
		{"Preview", s.testPreview},
	}
}

func newSuite(t *testing.T, h Harness) *suite {
	t.Helper()
	switch {
	case h.Open == nil || h.List == nil || h.Plant == nil || h.Remove == nil:
		t.Fatal("drivertest: Harness needs Open, List, Plant and Remove")
	case len(h.Config.Managed) == 0:
		t.Fatal("drivertest: Harness.Config.Managed is empty")
	case len(h.NextHops) < 2:
		t.Fatal("drivertest: Harness needs two NextHops")
	case !h.Unmanaged.IsValid() || !h.Unmanaged.Addr().Is4() || route.Managed(h.Unmanaged, h.Config.Managed):
		t.Fatalf("drivertest: Harness.Unmanaged %s must be an IPv4 prefix outside the pools", h.Unmanaged)
	}
	pool := h.Config.Managed[0]
	if !pool.Addr().Is4() || pool.Bits() > 20 {
		t.Fatalf("drivertest: Managed[0] %s must be an IPv4 pool of /20 or larger", pool)
	}
	for _, nh := range h.NextHops {
		if !nh.Is4() {
			t.Fatalf("drivertest: Harness.NextHops holds %s: want IPv4 next hops (IPv6 ones go in NextHops6)", nh)
		}
	}
	if h.BatchSize == 0 {
		h.BatchSize = 1000
	}
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	bits := min(pool.Bits()+12, 32)
	return &suite{h: h, fam: &family{name: "IPv4", pool: pool, bits: bits, limit: 1 << (bits - pool.Bits()),
		nextHops: h.NextHops, unmanaged: h.Unmanaged}}
}

// newFamily6 returns the IPv6 family of h, or fails t when h has none and gives no reason.
func newFamily6(t *testing.T, h Harness) *family {
	t.Helper()
	var pool netip.Prefix
	for _, p := range h.Config.Managed {
		if p.Addr().Is6() {
			pool = p
			break
		}
	}
	var problems []string
	if !pool.IsValid() || pool.Bits() > 52 {
		problems = append(problems, "Config.Managed has no IPv6 pool of /52 or larger")
	}
	if len(h.NextHops6) < 2 {
		problems = append(problems, "NextHops6 holds fewer than two next hops")
	}
	for _, nh := range h.NextHops6 {
		if !nh.Is6() || nh.Is4In6() {
			problems = append(problems, fmt.Sprintf("NextHops6 holds %s, not an IPv6 address", nh))
		}
	}
	if !h.Unmanaged6.IsValid() || !h.Unmanaged6.Addr().Is6() || route.Managed(h.Unmanaged6, h.Config.Managed) {
		problems = append(problems, fmt.Sprintf("Unmanaged6 %s is not an IPv6 prefix outside the pools", h.Unmanaged6))
	}
	if len(problems) > 0 {
		if r := h.SkipReasons["IPv6"]; r != "" {
			t.Skip(r)
		}
		t.Fatalf("drivertest: every driver must support IPv6, but the harness cannot run the IPv6 cases: %s "+
			"(or give SkipReasons[\"IPv6\"])", strings.Join(problems, "; "))
	}
	bits := 64
	return &family{name: "IPv6", pool: pool, bits: bits, limit: 1 << min(bits-pool.Bits(), 31),
		nextHops: h.NextHops6, unmanaged: h.Unmanaged6}
}

// skip skips the case, with the harness's reason when it gave one. IPv6 cases look up
// "IPv6/"+name first.
func (s *suite) skip(t *testing.T, name, fallback string) {
	t.Helper()
	if s.fam.name == "IPv6" {
		if r := s.h.SkipReasons["IPv6/"+name]; r != "" {
			t.Skip(r)
		}
	}
	if r := s.h.SkipReasons[name]; r != "" {
		t.Skip(r)
	}
	t.Skip(fallback)
}

// prefixes returns n prefixes inside the family's pool that no earlier case used.
func (s *suite) prefixes(t *testing.T, n int) []netip.Prefix {
	t.Helper()
	f := s.fam
	if uint64(f.next)+uint64(n) > uint64(f.limit) {
		t.Fatalf("drivertest: pool %s exhausted", f.pool)
	}
	ps := make([]netip.Prefix, n)
	for i := range ps {
		ps[i] = nthSubnet(f.pool, f.bits, f.next)
		f.next++
	}
	return ps
}

// nthSubnet returns the i-th subnet of length bits inside pool (either family).
func nthSubnet(pool netip.Prefix, bits int, i uint32) netip.Prefix {
	b := pool.Addr().AsSlice()
	shift := len(b)*8 - bits // bit position, from the right, of the index's lowest bit
	for k := range 32 {
		if i>>k&1 == 1 {
			pos := shift + k
			b[len(b)-1-pos/8] |= 1 << (pos % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, bits)
}

func (s *suite) route(p netip.Prefix, hop int) route.Route {
	return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: s.fam.nextHops[hop]}
}

func ops(action route.Action, rs ...route.Route) []route.RouteOp {
	out := make([]route.RouteOp, len(rs))
	for i, r := range rs {
		out[i] = route.RouteOp{Action: action, Route: r}
	}
	return out
}

// open opens a session that is closed when the test ends.
func (s *suite) open(t *testing.T, ctx context.Context) drivers.Driver {
	t.Helper()
	d, err := s.h.Open(ctx, s.h.Config)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// reset deletes every route the driver can see, so the suite starts from a known state.
func (s *suite) reset(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.h.Timeout)
	defer cancel()
	d, err := s.h.Open(ctx, s.h.Config)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer d.Close()
	rs, err := d.Routes(ctx)
	if err != nil {
		t.Fatalf("Routes: %v", err)
	}
	if len(rs) > 0 {
		if err := d.Apply(ctx, ops(route.ActionDelete, rs...)); err != nil {
			t.Fatalf("Apply (reset): %v", err)
		}
	}
}

// apply applies ops and deletes their routes when the test ends.
func (s *suite) apply(t *testing.T, ctx context.Context, d drivers.Driver, batch []route.RouteOp) {
	t.Helper()
	s.cleanup(t, batch)
	if err := d.Apply(ctx, batch); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// cleanup removes the routes of batch's adds through a fresh session when t ends.
func (s *suite) cleanup(t *testing.T, batch []route.RouteOp) {
	var rs []route.Route
	for _, op := range batch {
		if op.Action == route.ActionAdd {
			rs = append(rs, op.Route)
		}
	}
	if len(rs) == 0 {
		return
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
		defer cancel()
		d, err := s.h.Open(ctx, s.h.Config)
		if err != nil {
			t.Errorf("cleanup Open: %v", err)
			return
		}
		defer d.Close()
		if err := d.Apply(ctx, ops(route.ActionDelete, rs...)); err != nil {
			t.Errorf("cleanup Apply: %v", err)
		}
	})
}

var routeOpts = cmp.Options{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty()}

// wantRoutes checks that the driver reads exactly want; when the driver can read installed
// routes, it also waits for want to be installed.
func (s *suite) wantRoutes(t *testing.T, ctx context.Context, d drivers.Driver, want []route.Route) {
	t.Helper()
	want = slices.Clone(want)
	SortRoutes(want)
	got, err := d.Routes(ctx)
	if err != nil {
		t.Fatalf("Routes: %v", err)
	}
	SortRoutes(got)
	if diff := cmp.Diff(got, want, routeOpts); diff != "" {
		t.Fatalf("Routes mismatch (-got +want):\n%s", diff)
	}
	ir, ok := d.(drivers.InstalledReader)
	if !ok {
		return
	}
	if s.h.VRFNotInstalled {
		want = slices.DeleteFunc(want, func(r route.Route) bool { return r.VRF == s.h.VRF })
	}
	var inst []route.Route
	for {
		inst, err = ir.InstalledRoutes(ctx)
		if err != nil {
			t.Fatalf("InstalledRoutes: %v", err)
		}
		SortRoutes(inst)
		if cmp.Equal(inst, want, routeOpts) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("InstalledRoutes never matched (-got +want):\n%s", cmp.Diff(inst, want, routeOpts))
		case <-time.After(20 * time.Millisecond): // installation is asynchronous on FRR: poll
		}
	}
}

// listed reports whether the out-of-band listing holds r.
func (s *suite) listed(t *testing.T, ctx context.Context, r route.Route) bool {
	t.Helper()
	all, err := s.h.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return slices.Contains(all, r)
}

func (s *suite) testOpenClose(t *testing.T, ctx context.Context) {
	d, err := s.h.Open(ctx, s.h.Config)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := d.Routes(ctx); err != nil {
		t.Errorf("Routes: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func (s *suite) testAddAndRead(t *testing.T, ctx context.Context) {
	d := s.open(t, ctx)
	ps := s.prefixes(t, 3)
	want := []route.Route{s.route(ps[0], 0), s.route(ps[1], 1), s.route(ps[2], 0)}
	s.apply(t, ctx, d, ops(route.ActionAdd, want...))
	s.wantRoutes(t, ctx, d, want)
	// A new session sees the same routes: they live on the device, not in the session.
	s.wantRoutes(t, ctx, s.open(t, ctx), want)
}

func (s *suite) testReapply(t *testing.T, ctx context.Context) {
	d := s.open(t, ctx)
	ps := s.prefixes(t, 2)
	want := []route.Route{s.route(ps[0], 0), s.route(ps[1], 1)}
	s.apply(t, ctx, d, ops(route.ActionAdd, want...))
	if err := d.Apply(ctx, ops(route.ActionAdd, want...)); err != nil {
		t.Fatalf("re-Apply of the same adds: %v", err)
	}
	s.wantRoutes(t, ctx, d, want)
}

func (s *suite) testDelete(t *testing.T, ctx context.Context) {
	d := s.open(t, ctx)
	ps := s.prefixes(t, 3)
	rs := []route.Route{s.route(ps[0], 0), s.route(ps[1], 1), s.route(ps[2], 0)}
	s.apply(t, ctx, d, ops(route.ActionAdd, rs...))
	if err := d.Apply(ctx, ops(route.ActionDelete, rs[0], rs[2])); err != nil {
		t.Fatalf("Apply deletes: %v", err)
	}
	s.wantRoutes(t, ctx, d, rs[1:2])
}

func (s *suite) testDeleteMissing(t *testing.T, ctx context.Context) {
	d := s.open(t, ctx)
	ps := s.prefixes(t, 2)
	kept := s.route(ps[1], 0)
	s.apply(t, ctx, d, ops(route.ActionAdd, kept))
	// A missing prefix, and a present prefix with another next hop: neither is an error, and
	// the route that is there stays.
	if err := d.Apply(ctx, ops(route.ActionDelete, s.route(ps[0], 0), s.route(ps[1], 1))); err != nil {
		t.Fatalf("Apply deletes of missing routes: %v", err)
	}
	s.wantRoutes(t, ctx, d, []route.Route{kept})
}

func (s *suite) testChangeNextHop(t *testing.T, ctx context.Context) {
	d := s.open(t, ctx)
	p := s.prefixes(t, 1)[0]
	old, new := s.route(p, 0), s.route(p, 1)
	s.apply(t, ctx, d, ops(route.ActionAdd, old))
	batch := []route.RouteOp{{Action: route.ActionDelete, Route: old}, {Action: route.ActionAdd, Route: new}}
	s.apply(t, ctx, d, batch)
	s.wantRoutes(t, ctx, d, []route.Route{new})
}

// repair checks a drift case end to end, as verify and a remediation change would handle it:
// the driver's routes compared with intent must show exactly the drift check expects, the
// remediation ops derived from it must apply, and afterwards the driver must read intent plus
// kept, with the foreign route outside the pools still on the device.
func (s *suite) repair(t *testing.T, ctx context.Context, d drivers.Driver, outside route.Route, intent, kept []route.Route, check func(drift) string) {
	t.Helper()
	want := slices.Concat(intent, kept)
	have, err := d.Routes(ctx)
	if err != nil {
		t.Fatalf("Routes: %v", err)
	}
	dr := compareRoutes(want, have, s.h.Config.Managed)
	if problem := check(dr); problem != "" {
		t.Fatalf("verify: %s; drift = %+v", problem, dr)
	}
	batch := dr.remediation()
	s.cleanup(t, batch)
	if err := d.Apply(ctx, batch); err != nil {
		t.Fatalf("Apply remediation %v: %v", batch, err)
	}
	s.wantRoutes(t, ctx, d, want)
	// A new session reads the device afresh: the repair is on the device, not in a cache.
	have, err = s.open(t, ctx).Routes(ctx)
	if err != nil {
		t.Fatalf("Routes: %v", err)
	}
	if dr := compareRoutes(want, have, s.h.Config.Managed); !dr.inSync() {
		t.Errorf("verify after the remediation: drift = %+v, want none", dr)
	}
	if !s.listed(t, ctx, outside) {
		t.Errorf("foreign route %s outside the pools is gone", outside)
	}
}

// plantOutside plants a foreign route outside the pools, removed when t ends.
func (s *suite) plantOutside(t *testing.T, ctx context.Context) route.Route {
	t.Helper()
	outside := route.Route{VRF: route.DefaultVRF, Prefix: s.fam.unmanaged, NextHop: s.fam.nextHops[0]}
	if err := s.h.Plant(ctx, outside); err != nil {
		t.Fatalf("Plant %s: %v", outside, err)
	}
	t.Cleanup(func() {
		if err := s.h.Remove(context.Background(), outside); err != nil {
			t.Errorf("Remove %s: %v", outside, err)
		}
	})
	return outside
}

// wrongNextHop returns a check for exactly one wrong next hop, got instead of want.
func wrongNextHop(want, got route.Route) func(drift) string {
	return func(d drift) string {
		if len(d.WrongNextHop) != 1 || d.WrongNextHop[0].Want != want || d.WrongNextHop[0].Got != got ||
			len(d.Missing) != 0 || len(d.Unexpected) != 0 {
			return fmt.Sprintf("want exactly one wrong next hop, %s instead of %s", got, want)
		}
		return ""
	}
}

// testRepairWrongNextHop: a route the driver added, whose next hop intent has since changed.
func (s *suite) testRepairWrongNextHop(t *testing.T, ctx context.Context) {
	d := s.open(t, ctx)
	ps := s.prefixes(t, 2)
	stale, neighbour := s.route(ps[0], 0), s.route(ps[1], 0)
	s.apply(t, ctx, d, ops(route.ActionAdd, stale, neighbour))
	want := s.route(ps[0], 1)
	s.repair(t, ctx, d, s.plantOutside(t, ctx), []route.Route{want}, []route.Route{neighbour}, wrongNextHop(want, stale))
}

// testRepairForeignIndexedNextHop: a route whose one next hop the device keeps under an index
// of its own, pointing the wrong way. Deleting it by the driver's own index would miss it, and
// merging the right next hop in would leave both.
func (s *suite) testRepairForeignIndexed(t *testing.T, ctx context.Context) {
	if s.h.PlantNextHops == nil || !s.h.ForeignIndexes {
		s.skip(t, "RepairForeignIndexedNextHop", "the device keys next hops by no index, or the harness cannot plant one")
	}
	d := s.open(t, ctx)
	ps := s.prefixes(t, 2)
	planted := s.route(ps[0], 0)
	s.plantNextHops(t, ctx, ps[0], planted.NextHop)
	neighbour := s.route(ps[1], 0)
	s.apply(t, ctx, d, ops(route.ActionAdd, neighbour))
	// Read back under the device's index, the route is what it is: one route, one next hop.
	s.wantRoutes(t, ctx, d, []route.Route{planted, neighbour})
	want := s.route(ps[0], 1)
	s.repair(t, ctx, d, s.plantOutside(t, ctx), []route.Route{want}, []route.Route{neighbour}, wrongNextHop(want, planted))
}

// testRepairExtraNextHop: a route with the intended next hop and another one beside it.
func (s *suite) testRepairExtraNextHop(t *testing.T, ctx context.Context) {
	if s.h.PlantNextHops == nil {
		s.skip(t, "RepairExtraNextHop", "harness has no PlantNextHops: the device cannot hold two next hops for a prefix")
	}
	d := s.open(t, ctx)
	ps := s.prefixes(t, 3)
	neighbour := s.route(ps[2], 1)
	s.apply(t, ctx, d, ops(route.ActionAdd, neighbour))
	outside := s.plantOutside(t, ctx)
	// The extra next hop both after the intended one and before it: devices list next hops in
	// order, and a driver must not take the first one for the route.
	for i, order := range [][2]int{{0, 1}, {1, 0}} {
		p := ps[i]
		want, extra := s.route(p, 0), s.route(p, 1)
		s.plantNextHops(t, ctx, p, s.fam.nextHops[order[0]], s.fam.nextHops[order[1]])
		s.wantRoutes(t, ctx, d, slices.Concat([]route.Route{want, extra, neighbour}, s.repaired(ps[:i])))
		s.repair(t, ctx, d, outside, []route.Route{want}, slices.Concat([]route.Route{neighbour}, s.repaired(ps[:i])), func(d drift) string {
			if len(d.Unexpected) != 1 || d.Unexpected[0] != extra || len(d.WrongNextHop) != 0 || len(d.Missing) != 0 {
				return fmt.Sprintf("want exactly one unexpected route, %s", extra)
			}
			return ""
		})
	}
}

// repaired returns the routes testRepairExtraNextHop left on ps.
func (s *suite) repaired(ps []netip.Prefix) []route.Route {
	out := make([]route.Route, len(ps))
	for i, p := range ps {
		out[i] = s.route(p, 0)
	}
	return out
}

// plantNextHops plants p via nhs out of band; the driver deletes every route on p at cleanup.
func (s *suite) plantNextHops(t *testing.T, ctx context.Context, p netip.Prefix, nhs ...netip.Addr) {
	t.Helper()
	rs := make([]route.Route, len(nhs))
	for i, nh := range nhs {
		rs[i] = route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh}
	}
	s.cleanup(t, ops(route.ActionAdd, rs...))
	if err := s.h.PlantNextHops(ctx, p, nhs); err != nil {
		t.Fatalf("PlantNextHops %s via %v: %v", p, nhs, err)
	}
}

func (s *suite) testRejected(t *testing.T, ctx context.Context) {
	if s.h.Reject == nil {
		s.skip(t, "Rejected", "harness has no Reject: the device cannot be made to refuse a route")
	}
	d := s.open(t, ctx)
	ps := s.prefixes(t, 4)
	bad, text := s.h.Reject(ps[1])
	if bad.Prefix != ps[1] || bad.NextHop.Is4() != ps[1].Addr().Is4() {
		t.Fatalf("drivertest: Harness.Reject(%s) = %s: want a route on that prefix, of its family", ps[1], bad)
	}
	good := []route.Route{s.route(ps[0], 0), s.route(ps[2], 1), s.route(ps[3], 0)}
	batch := []route.RouteOp{
		{Action: route.ActionAdd, Route: good[0]},
		{Action: route.ActionAdd, Route: bad},
		{Action: route.ActionAdd, Route: good[1]},
		{Action: route.ActionAdd, Route: good[2]},
	}
	s.cleanup(t, ops(route.ActionAdd, good...)) // the refused route never landed: do not delete it
	err := d.Apply(ctx, batch)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected {
		t.Fatalf("Apply = %v, want a *drivers.Error of kind rejected", err)
	}
	if s.h.Atomic {
		if len(de.Rejections) != len(batch) {
			t.Fatalf("Rejections = %+v, want every op of the refused batch", de.Rejections)
		}
		for i, r := range de.Rejections {
			if r.Index != i || r.Op != batch[i] || !strings.Contains(r.Output, text) {
				t.Errorf("rejection %d = %d %s %q, want op %d (%s) with %q", i, r.Index, r.Op, r.Output, i, batch[i], text)
			}
		}
		s.wantRoutes(t, ctx, d, nil)
		return
	}
	if len(de.Rejections) != 1 {
		t.Fatalf("Rejections = %+v, want exactly the op at index 1", de.Rejections)
	}
	r := de.Rejections[0]
	if r.Index != 1 || r.Op != batch[1] {
		t.Errorf("rejection is op %d (%s), want op 1 (%s)", r.Index, r.Op, batch[1])
	}
	if !strings.Contains(r.Output, text) {
		t.Errorf("rejection text %q does not contain the device's %q", r.Output, text)
	}
	// Every op not listed was accepted.
	s.wantRoutes(t, ctx, d, good)
}

func (s *suite) testOutsideManaged(t *testing.T, ctx context.Context) {
	d := s.open(t, ctx)
	in := s.route(s.prefixes(t, 1)[0], 0)
	out := route.Route{VRF: route.DefaultVRF, Prefix: s.fam.unmanaged, NextHop: s.fam.nextHops[0]}
	batch := ops(route.ActionAdd, in, out)
	s.cleanup(t, batch[:1])
	t.Cleanup(func() { _ = s.h.Remove(context.Background(), out) })
	err := d.Apply(ctx, batch)
	if err == nil {
		t.Fatal("Apply with a prefix outside the pools = nil, want an error")
	}
	if k := drivers.KindOf(err); k == drivers.KindRejected || k == drivers.KindUnreachable {
		t.Errorf("Apply error kind = %s, want a refusal before anything is sent (internal)", k)
	}
	if s.listed(t, ctx, out) {
		t.Errorf("route %s outside the pools was added", out)
	}
	// The whole batch was refused before sending: the managed op was not applied either.
	s.wantRoutes(t, ctx, d, nil)
}

func (s *suite) testForeign(t *testing.T, ctx context.Context) {
	outside := route.Route{VRF: route.DefaultVRF, Prefix: s.fam.unmanaged, NextHop: s.fam.nextHops[0]}
	ps := s.prefixes(t, 3)
	inside := s.route(ps[0], 1)
	for _, r := range []route.Route{outside, inside} {
		if err := s.h.Plant(ctx, r); err != nil {
			t.Fatalf("Plant %s: %v", r, err)
		}
		t.Cleanup(func() {
			if err := s.h.Remove(context.Background(), r); err != nil {
				t.Errorf("Remove %s: %v", r, err)
			}
		})
	}
	d := s.open(t, ctx)
	ours := []route.Route{s.route(ps[1], 0), s.route(ps[2], 1)}
	s.apply(t, ctx, d, ops(route.ActionAdd, ours...))
	if err := d.Apply(ctx, ops(route.ActionDelete, ours[1])); err != nil {
		t.Fatalf("Apply delete: %v", err)
	}
	want := ours[:1]
	if !s.h.MarksOwnership {
		want = append([]route.Route{inside}, want...)
	}
	s.wantRoutes(t, ctx, d, want)
	if s.h.MarksOwnership {
		// Deleting the foreign route by its exact prefix and next hop must leave it alone:
		// the driver only deletes routes it marked as its own.
		if err := d.Apply(ctx, ops(route.ActionDelete, inside)); err != nil {
			t.Fatalf("Apply delete of a foreign route: %v", err)
		}
	}
	for _, r := range []route.Route{outside, inside} {
		if !s.listed(t, ctx, r) {
			t.Errorf("foreign route %s is gone", r)
		}
	}
}

func (s *suite) testVRF(t *testing.T, ctx context.Context) {
	if s.h.VRF == "" {
		s.skip(t, "VRF", "harness names no VRF")
	}
	d := s.open(t, ctx)
	ps := s.prefixes(t, 2)
	inDefault := s.route(ps[0], 0)
	inVRF := route.Route{VRF: s.h.VRF, Prefix: ps[0], NextHop: s.fam.nextHops[1]}
	onlyVRF := route.Route{VRF: s.h.VRF, Prefix: ps[1], NextHop: s.fam.nextHops[0]}
	s.apply(t, ctx, d, ops(route.ActionAdd, inDefault, inVRF, onlyVRF))
	s.wantRoutes(t, ctx, d, []route.Route{inDefault, inVRF, onlyVRF})
	if err := d.Apply(ctx, ops(route.ActionDelete, inVRF)); err != nil {
		t.Fatalf("Apply delete in VRF: %v", err)
	}
	s.wantRoutes(t, ctx, d, []route.Route{inDefault, onlyVRF})
}

func (s *suite) testBatch(t *testing.T, ctx context.Context) {
	d := s.open(t, ctx)
	ps := s.prefixes(t, s.h.BatchSize)
	rs := make([]route.Route, len(ps))
	for i, p := range ps {
		rs[i] = s.route(p, i%2)
	}
	start := time.Now()
	s.apply(t, ctx, d, ops(route.ActionAdd, rs...))
	t.Logf("added %d routes in %v", len(rs), time.Since(start))
	s.wantRoutes(t, ctx, d, rs)
	start = time.Now()
	if err := d.Apply(ctx, ops(route.ActionDelete, rs...)); err != nil {
		t.Fatalf("Apply deletes: %v", err)
	}
	t.Logf("deleted %d routes in %v", len(rs), time.Since(start))
	s.wantRoutes(t, ctx, d, nil)
}

func (s *suite) testPreview(t *testing.T, ctx context.Context) {
	if s.h.Preview == nil {
		s.skip(t, "Preview", "harness has no Preview")
	}
	ps := s.prefixes(t, 2)
	batch := []route.RouteOp{
		{Action: route.ActionAdd, Route: s.route(ps[0], 0)},
		{Action: route.ActionDelete, Route: s.route(ps[1], 1)},
	}
	lines, err := s.h.Preview(s.h.Config, batch)
	if err != nil {
		t.Fatalf("Preview: %v", err)
	}
	if len(lines) < len(batch) {
		t.Errorf("Preview returned %d lines for %d ops", len(lines), len(batch))
	}
	for _, l := range lines {
		if strings.ContainsFunc(l, unicode.IsControl) {
			t.Errorf("Preview line %q holds a control character", l)
		}
	}
	out := route.Route{VRF: route.DefaultVRF, Prefix: s.fam.unmanaged, NextHop: s.fam.nextHops[0]}
	if _, err := s.h.Preview(s.h.Config, ops(route.ActionAdd, out)); err == nil {
		t.Errorf("Preview of a prefix outside the pools = nil error, want an error")
	}
	// Preview is pure: nothing reached the device.
	s.wantRoutes(t, ctx, s.open(t, ctx), nil)
}

// testMixed adds, reads and deletes IPv4 and IPv6 routes in one batch, as a change for a
// dual-stack host does: one session, both families.
func (s *suite) testMixed(t *testing.T, ctx context.Context, v4 *family) {
	d := s.open(t, ctx)
	s4 := &suite{h: s.h, fam: v4}
	p4, p6 := s4.prefixes(t, 2), s.prefixes(t, 2)
	rs := []route.Route{s4.route(p4[0], 0), s.route(p6[0], 0), s4.route(p4[1], 1), s.route(p6[1], 1)}
	s.apply(t, ctx, d, ops(route.ActionAdd, rs...))
	s.wantRoutes(t, ctx, d, rs)
	s.wantRoutes(t, ctx, s.open(t, ctx), rs)
	if err := d.Apply(ctx, ops(route.ActionDelete, rs[0], rs[1])); err != nil {
		t.Fatalf("Apply deletes: %v", err)
	}
	s.wantRoutes(t, ctx, d, rs[2:])
}

// testOpenFails returns a case checking that a session with a broken config fails with kind,
// either at Open or, for transports that connect lazily, at the first read.
func (s *suite) testOpenFails(name string, broken func(drivers.Config) drivers.Config, kind drivers.Kind) func(*testing.T, context.Context) {
	return func(t *testing.T, ctx context.Context) {
		if broken == nil {
			s.skip(t, name, "harness has no "+name)
		}
		cfg := broken(s.h.Config)
		err := openAndRead(ctx, s.h.Open, cfg)
		if err == nil {
			t.Fatalf("Open and Routes succeeded, want a %s error", kind)
		}
		if got := drivers.KindOf(err); got != kind {
			t.Errorf("error kind = %s, want %s (error: %v)", got, kind, err)
		}
		if got := drivers.KindOf(err); got.Retryable() != (kind == drivers.KindUnreachable) {
			t.Errorf("error kind %s: Retryable() = %v", got, got.Retryable())
		}
		for _, secret := range []drivers.Secret{cfg.Password, s.h.Config.Password, cfg.PrivateKey} {
			if secret != "" && strings.Contains(err.Error(), secret.Reveal()) {
				t.Errorf("error %q reveals a secret", err)
			}
		}
	}
}

func openAndRead(ctx context.Context, open func(context.Context, drivers.Config) (drivers.Driver, error), cfg drivers.Config) error {
	d, err := open(ctx, cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = d.Routes(ctx)
	return err
}
