package toyos_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"

	"example.com/toyos"
)

var (
	nh1    = netip.MustParseAddr("10.0.0.1")
	nh2    = netip.MustParseAddr("10.0.0.2")
	refuse = netip.MustParseAddr("10.0.0.254")

	nh61    = netip.MustParseAddr("2001:db8:10::1")
	nh62    = netip.MustParseAddr("2001:db8:10::2")
	refuse6 = netip.MustParseAddr("2001:db8:10::fe")
)

func config() drivers.Config {
	return drivers.Config{
		Name:     "toy1",
		Platform: toyos.Platform,
		Address:  netip.MustParseAddrPort("192.0.2.10:22"),
		VRF:      route.DefaultVRF,
		Managed:  []netip.Prefix{netip.MustParsePrefix("172.16.0.0/16"), netip.MustParsePrefix("2001:db8:a00::/48")},
		Username: "rp",
		Password: "s3cret-pw",
	}
}

// TestConformance runs returnpath's conformance suite against the driver and an in-memory
// ToyOS device: passing it is what makes a driver fit for the apply engine.
func TestConformance(t *testing.T) {
	dev := toyos.NewDevice("toy1", "rp", "s3cret-pw", []netip.Addr{refuse, refuse6}, "blue")
	fac := toyos.Factory(dev)
	drivertest.Run(t, drivertest.Harness{
		Config:         config(),
		Open:           fac.Open,
		Preview:        fac.Preview,
		NextHops:       []netip.Addr{nh1, nh2},
		NextHops6:      []netip.Addr{nh61, nh62},
		VRF:            "blue",
		Unmanaged:      netip.MustParsePrefix("10.99.0.0/24"),
		Unmanaged6:     netip.MustParsePrefix("2001:db8:99::/64"),
		MarksOwnership: true,
		List:           func(context.Context) ([]route.Route, error) { return dev.AllRoutes(), nil },
		Plant:          func(_ context.Context, r route.Route) error { dev.Plant(r, ""); return nil },
		Remove:         func(_ context.Context, r route.Route) error { dev.Remove(r); return nil },
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				dev.Plant(route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh}, "returnpath")
			}
			return nil
		},
		Reject: func(p netip.Prefix) (route.Route, string) {
			if p.Addr().Is6() {
				return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: refuse6}, "unreachable"
			}
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: refuse}, "unreachable"
		},
		WrongPassword: func(cfg drivers.Config) drivers.Config { cfg.Password = "wrong-pw"; return cfg },
		Unreachable:   func(cfg drivers.Config) drivers.Config { cfg.Name = "nowhere"; return cfg },
		SkipReasons: map[string]string{
			"RepairForeignIndexedNextHop": "ToyOS keys next hops by no index",
			"UnknownHostKey":              "an in-memory device has no host key",
			"KeyMismatch":                 "an in-memory device has no host key",
		},
	})
	if n := dev.Sessions(); n != 0 {
		t.Errorf("open sessions after the suite = %d, want 0", n)
	}
}

func TestPreview(t *testing.T) {
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: route.Route{VRF: "blue", Prefix: netip.MustParsePrefix("172.16.1.0/24"), NextHop: nh1}},
		{Action: route.ActionDelete, Route: route.Route{VRF: route.DefaultVRF, Prefix: netip.MustParsePrefix("172.16.2.0/24"), NextHop: nh2}},
	}
	got, err := toyos.Preview(config(), ops)
	if err != nil {
		t.Fatalf("Preview: %v", err)
	}
	want := []string{
		"route add vrf blue 172.16.1.0/24 via 10.0.0.1 tag returnpath",
		"route del vrf default 172.16.2.0/24 via 10.0.0.2 tag returnpath",
	}
	if len(got) != len(want) {
		t.Fatalf("Preview = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	bad := ops[:1]
	bad[0].Route.VRF = "blue\nroute del"
	if _, err := toyos.Preview(config(), bad); drivers.KindOf(err) != drivers.KindInternal || err == nil {
		t.Errorf("Preview of a VRF with a newline = %v, want a refusal of kind internal", err)
	}
}
