package drivertest

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/returnpath/returnpath/drivers/route"
	// The one internal import under drivers/drivertest, in a test only: the suite's copy of
	// the drift rules must judge as the engine's, and only this module can check that.
	"github.com/returnpath/returnpath/internal/fabric"
)

// TestDriftMatchesEngine holds the suite's drift rules to the engine's: for random wanted and
// held route sets (all hosts active), compareRoutes must find what fabric.CompareRoutes finds
// and remediation must send what fabric.RemediationOps sends, in the same order.
func TestDriftMatchesEngine(t *testing.T) {
	t.Parallel()
	managed := []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}
	prefixes := []netip.Prefix{
		netip.MustParsePrefix("172.20.1.0/24"),
		netip.MustParsePrefix("172.20.2.0/24"),
		netip.MustParsePrefix("172.20.2.0/25"),
		netip.MustParsePrefix("10.99.0.0/24"), // outside the pool
	}
	hops := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	vrfs := []string{route.DefaultVRF, "blue"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(n int) []route.Route {
		out := make([]route.Route, rng.IntN(n+1))
		for i := range out {
			out[i] = route.Route{VRF: vrfs[rng.IntN(len(vrfs))], Prefix: prefixes[rng.IntN(len(prefixes))], NextHop: hops[rng.IntN(len(hops))]}
		}
		return out
	}
	for i := range 5000 {
		want, have := pick(4), pick(6)
		intent := make([]fabric.IntentRoute, len(want))
		for j, r := range want {
			intent[j] = fabric.IntentRoute{Route: r, Host: "h", State: fabric.HostActive}
		}
		engine := fabric.CompareRoutes(intent, have, managed)
		got := compareRoutes(want, have, managed)

		wantDrift := drift{Unexpected: engine.Unexpected}
		for _, m := range engine.Missing {
			wantDrift.Missing = append(wantDrift.Missing, m.Route)
		}
		for _, w := range engine.WrongNextHop {
			wantDrift.WrongNextHop = append(wantDrift.WrongNextHop, wrongHop{Want: w.Want.Route, Got: w.Got})
		}
		if diff := cmp.Diff(got, wantDrift, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
			cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Fatalf("case %d: want %v, have %v: compareRoutes diff (-got +engine):\n%s", i, want, have, diff)
		}
		if got.inSync() != engine.InSync() {
			t.Fatalf("case %d: inSync() = %v, engine says %v", i, got.inSync(), engine.InSync())
		}
		var engineOps []route.RouteOp
		for _, o := range fabric.RemediationOps("d", engine) {
			engineOps = append(engineOps, o.Op)
		}
		if diff := cmp.Diff(got.remediation(), engineOps, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
			cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Fatalf("case %d: want %v, have %v: remediation diff (-got +engine):\n%s", i, want, have, diff)
		}
	}
}
