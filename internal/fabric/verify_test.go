package fabric_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/returnpath/returnpath/internal/fabric"
)

var netipEqual = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func rt(prefix, nextHop string) fabric.Route {
	return fabric.Route{VRF: fabric.DefaultVRF, Prefix: pfx(prefix), NextHop: addr(nextHop)}
}

func want(host string, state fabric.HostState, r fabric.Route) fabric.IntentRoute {
	return fabric.IntentRoute{Route: r, Host: host, State: state}
}

func TestCompareRoutes(t *testing.T) {
	t.Parallel()
	managed := []netip.Prefix{pfx("10.210.0.0/16")}
	a := rt("10.210.1.0/24", "10.10.10.101")
	b := rt("10.210.2.0/24", "10.10.10.102")
	c := rt("10.210.3.0/24", "10.10.10.103")
	tests := []struct {
		name   string
		intent []fabric.IntentRoute
		have   []fabric.Route
		want   fabric.Drift
		inSync bool
	}{
		{
			name:   "in sync",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a), want("h2", fabric.HostActive, b)},
			have:   []fabric.Route{b, a},
			inSync: true,
		},
		{
			name:   "nothing wanted, nothing held",
			inSync: true,
		},
		{
			name:   "missing",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a), want("h2", fabric.HostActive, b)},
			have:   []fabric.Route{a},
			want:   fabric.Drift{Missing: []fabric.IntentRoute{want("h2", fabric.HostActive, b)}},
		},
		{
			name:   "unexpected: a leftover inside the pool",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a)},
			have:   []fabric.Route{c, a},
			want:   fabric.Drift{Unexpected: []fabric.Route{c}},
		},
		{
			name:   "a route outside the managed prefixes is never reported",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a)},
			have:   []fabric.Route{a, rt("10.200.0.0/24", "10.10.10.1"), rt("172.11.0.0/24", "10.10.10.1"), rt("172.0.0.0/8", "10.10.10.1")},
			inSync: true,
		},
		{
			name:   "wrong next hop is not also missing and unexpected",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a)},
			have:   []fabric.Route{rt("10.210.1.0/24", "10.10.10.99")},
			want: fabric.Drift{WrongNextHop: []fabric.WrongNextHop{
				{Want: want("h1", fabric.HostActive, a), Got: rt("10.210.1.0/24", "10.10.10.99")},
			}},
		},
		{
			name:   "wanted route plus a second next hop: the extra is unexpected",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a)},
			have:   []fabric.Route{a, rt("10.210.1.0/24", "10.10.10.99")},
			want:   fabric.Drift{Unexpected: []fabric.Route{rt("10.210.1.0/24", "10.10.10.99")}},
		},
		{
			name:   "two wrong next hops give two entries",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a)},
			have:   []fabric.Route{rt("10.210.1.0/24", "10.10.10.99"), rt("10.210.1.0/24", "10.10.10.98")},
			want: fabric.Drift{WrongNextHop: []fabric.WrongNextHop{
				{Want: want("h1", fabric.HostActive, a), Got: rt("10.210.1.0/24", "10.10.10.98")},
				{Want: want("h1", fabric.HostActive, a), Got: rt("10.210.1.0/24", "10.10.10.99")},
			}},
		},
		{
			name:   "the same prefix in another VRF is unexpected, the wanted one missing",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a)},
			have:   []fabric.Route{{VRF: "blue", Prefix: a.Prefix, NextHop: a.NextHop}},
			want: fabric.Drift{
				Missing:    []fabric.IntentRoute{want("h1", fabric.HostActive, a)},
				Unexpected: []fabric.Route{{VRF: "blue", Prefix: a.Prefix, NextHop: a.NextHop}},
			},
		},
		{
			name: "in flight routes, present or not, are not drift",
			intent: []fabric.IntentRoute{
				want("h1", fabric.HostPending, a), want("h2", fabric.HostPending, b), want("h3", fabric.HostRemoving, c),
			},
			have: []fabric.Route{b, c},
			want: fabric.Drift{InFlight: []fabric.InFlightRoute{
				{IntentRoute: want("h1", fabric.HostPending, a), Present: false},
				{IntentRoute: want("h2", fabric.HostPending, b), Present: true},
				{IntentRoute: want("h3", fabric.HostRemoving, c), Present: true},
			}},
			inSync: true,
		},
		{
			name:   "a pending host's prefix via another next hop is wrong, and in flight absent",
			intent: []fabric.IntentRoute{want("h1", fabric.HostPending, a)},
			have:   []fabric.Route{rt("10.210.1.0/24", "10.10.10.99")},
			want: fabric.Drift{
				WrongNextHop: []fabric.WrongNextHop{{Want: want("h1", fabric.HostPending, a), Got: rt("10.210.1.0/24", "10.10.10.99")}},
				InFlight:     []fabric.InFlightRoute{{IntentRoute: want("h1", fabric.HostPending, a)}},
			},
		},
		{
			name:   "duplicates in have count once",
			intent: []fabric.IntentRoute{want("h1", fabric.HostActive, a)},
			have:   []fabric.Route{a, a, c, c},
			want:   fabric.Drift{Unexpected: []fabric.Route{c}},
		},
		{
			name: "every kind at once, sorted",
			intent: []fabric.IntentRoute{
				want("h3", fabric.HostActive, c), want("h1", fabric.HostActive, a), want("h2", fabric.HostActive, b),
			},
			have: []fabric.Route{rt("10.210.9.0/24", "10.10.10.9"), rt("10.210.2.0/24", "10.10.10.7"), rt("10.210.8.0/24", "10.10.10.8")},
			want: fabric.Drift{
				Missing:      []fabric.IntentRoute{want("h1", fabric.HostActive, a), want("h3", fabric.HostActive, c)},
				Unexpected:   []fabric.Route{rt("10.210.8.0/24", "10.10.10.8"), rt("10.210.9.0/24", "10.10.10.9")},
				WrongNextHop: []fabric.WrongNextHop{{Want: want("h2", fabric.HostActive, b), Got: rt("10.210.2.0/24", "10.10.10.7")}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := fabric.CompareRoutes(tt.intent, tt.have, managed)
			if diff := cmp.Diff(got, tt.want, netipEqual); diff != "" {
				t.Errorf("CompareRoutes() diff (-got +want):\n%s", diff)
			}
			if got.InSync() != tt.inSync {
				t.Errorf("InSync() = %v, want %v", got.InSync(), tt.inSync)
			}
			if n := len(tt.want.Missing) + len(tt.want.Unexpected) + len(tt.want.WrongNextHop); got.Routes() != n {
				t.Errorf("Routes() = %d, want %d", got.Routes(), n)
			}
		})
	}
}

func TestIntent(t *testing.T) {
	t.Parallel()
	inv := labInventory()
	hosts := []fabric.Host{
		{Name: "h1", Address: addr("10.10.10.101"), Segment: "rack1", Subnet: pfx("10.210.1.0/24"), State: fabric.HostActive},
		{Name: "h2", Address: addr("10.10.10.102"), Segment: "rack1", Subnet: pfx("10.210.2.0/24"), State: fabric.HostRemoving},
		{Name: "gone", Address: addr("10.10.10.103"), Segment: "rack1", Subnet: pfx("10.210.3.0/24"), State: fabric.HostRemoved},
		{Name: "orphan", Address: addr("10.10.40.5"), Segment: "rack9", Subnet: pfx("10.210.4.0/24"), State: fabric.HostActive},
	}
	got, skipped := inv.Intent(hosts)
	inRack1 := func(w fabric.IntentRoute) fabric.IntentRoute { w.Segment = "rack1"; return w }
	wantIntent := map[string][]fabric.IntentRoute{
		"sw1": {inRack1(want("h1", fabric.HostActive, rt("10.210.1.0/24", "10.10.10.101"))), inRack1(want("h2", fabric.HostRemoving, rt("10.210.2.0/24", "10.10.10.102")))},
		"fw1": {inRack1(want("h1", fabric.HostActive, rt("10.210.1.0/24", "10.10.20.1"))), inRack1(want("h2", fabric.HostRemoving, rt("10.210.2.0/24", "10.10.20.1")))},
	}
	if diff := cmp.Diff(got, wantIntent, netipEqual); diff != "" {
		t.Errorf("Intent() diff (-got +want):\n%s", diff)
	}
	if len(skipped) != 1 || skipped[0].Name != "orphan" {
		t.Errorf("Intent() skipped = %v, want only orphan", skipped)
	}
}
