package drivertest_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
)

func fakeConfig() drivers.Config {
	return drivers.Config{
		Name:     "fake1",
		Platform: route.PlatformFRR,
		VRF:      route.DefaultVRF,
		Managed:  []netip.Prefix{netip.MustParsePrefix("172.16.0.0/16"), netip.MustParsePrefix("172.20.0.0/16"), netip.MustParsePrefix("2001:db8:a00::/48")},
		Username: "rp",
		Password: "s3cret-pw",
	}
}

func fakeHarness(f *drivertest.Fake) drivertest.Harness {
	fac := f.Factory()
	return drivertest.Harness{
		Config:     fakeConfig(),
		Open:       fac.Open,
		Preview:    fac.Preview,
		NextHops:   []netip.Addr{netip.MustParseAddr("10.10.10.101"), netip.MustParseAddr("10.10.10.102")},
		NextHops6:  []netip.Addr{netip.MustParseAddr("2001:db8:10::101"), netip.MustParseAddr("2001:db8:10::102")},
		VRF:        "blue",
		Unmanaged:  netip.MustParsePrefix("10.99.0.0/24"),
		Unmanaged6: netip.MustParsePrefix("2001:db8:99::/64"),
		List:       func(context.Context) ([]route.Route, error) { return f.AllRoutes(), nil },
		Plant:      func(_ context.Context, r route.Route) error { f.Plant(r); return nil },
		Remove:     func(_ context.Context, r route.Route) error { f.Remove(r); return nil },
		// The Fake holds routes, not next-hop lists: several next hops are several routes.
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				f.Plant(route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh})
			}
			return nil
		},
		SkipReasons: map[string]string{"RepairForeignIndexedNextHop": "the Fake keys next hops by no index"},
		Reject: func(p netip.Prefix) (route.Route, string) {
			f.Set(drivertest.WithReject(p, "% Unknown command: ip route"))
			nh := netip.MustParseAddr("10.10.10.101")
			if p.Addr().Is6() {
				nh = netip.MustParseAddr("2001:db8:10::101")
			}
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh}, "% Unknown command"
		},
		WrongPassword: func(cfg drivers.Config) drivers.Config { cfg.Password = "wrong-pw"; return cfg },
		Unreachable: func(cfg drivers.Config) drivers.Config {
			cfg.Name = "nowhere"
			return cfg
		},
	}
}

// TestFakeConformance runs the suite against the Fake, reached through a fleet factory so that
// the Unreachable case has a device name that answers nothing.
func TestFakeConformance(t *testing.T) {
	t.Parallel()
	f := drivertest.NewFake("fake1", drivertest.WithCredentials("rp", "s3cret-pw"), drivertest.WithVRFs("blue"))
	h := fakeHarness(f)
	h.Open = drivertest.FakeFactory(f).Open
	drivertest.Run(t, h)
	if got := f.OpenSessions(); got != 0 {
		t.Errorf("open sessions after the suite = %d, want 0", got)
	}
}

// TestHarnessWithoutIPv6 runs the suite in a child process with a harness that gives no IPv6
// values: the IPv6 cases must fail it, unless SkipReasons["IPv6"] says why they cannot run.
func TestHarnessWithoutIPv6(t *testing.T) {
	t.Parallel()
	if mode := os.Getenv("DRIVERTEST_NO_IPV6"); mode != "" {
		f := drivertest.NewFake("fake1", drivertest.WithCredentials("rp", "s3cret-pw"), drivertest.WithVRFs("blue"))
		h := fakeHarness(f)
		h.Open = drivertest.FakeFactory(f).Open
		h.NextHops6, h.Unmanaged6 = nil, netip.Prefix{}
		if mode == "skip" {
			h.SkipReasons["IPv6"] = "no IPv6 here"
		}
		drivertest.Run(t, h)
		return
	}
	for _, tc := range []struct {
		mode     string
		wantFail bool
		want     string
	}{
		{mode: "fail", wantFail: true, want: "--- FAIL: TestHarnessWithoutIPv6/IPv6 "},
		{mode: "skip", wantFail: false, want: "--- SKIP: TestHarnessWithoutIPv6/IPv6 "},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHarnessWithoutIPv6$", "-test.v")
		cmd.Env = append(os.Environ(), "DRIVERTEST_NO_IPV6="+tc.mode)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if failed := errors.As(err, &ee); failed != tc.wantFail || (err != nil && !failed) {
			t.Errorf("mode %s: child exit = %v, want failure %v; output:\n%s", tc.mode, err, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("mode %s: output lacks %q:\n%s", tc.mode, tc.want, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestHarnessWithoutIPv6/AddAndRead") {
			t.Errorf("mode %s: the IPv4 cases did not pass:\n%s", tc.mode, out)
		}
	}
}

func add(r route.Route) route.RouteOp { return route.RouteOp{Action: route.ActionAdd, Route: r} }

func rt(p, nh string) route.Route {
	return route.Route{VRF: route.DefaultVRF, Prefix: netip.MustParsePrefix(p), NextHop: netip.MustParseAddr(nh)}
}

var eq = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func TestFakeStatePersistsAcrossSessions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := drivertest.NewFake("sw1")
	d, err := f.Open(ctx, fakeConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := rt("172.16.1.0/24", "10.0.0.1")
	if err := d.Apply(ctx, []route.RouteOp{add(r)}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2, err := f.Open(ctx, fakeConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	got, err := d2.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, []route.Route{r}, eq); diff != "" {
		t.Errorf("Routes (-got +want):\n%s", diff)
	}
	if got := f.Sessions(); got != 2 {
		t.Errorf("Sessions = %d, want 2", got)
	}
}

func TestFakeIndeterminateAfter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := drivertest.NewFake("sw1", drivertest.WithIndeterminateAfter(2))
	d, err := f.Open(ctx, fakeConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rs := []route.Route{rt("172.16.1.0/24", "10.0.0.1"), rt("172.16.2.0/24", "10.0.0.1"), rt("172.16.3.0/24", "10.0.0.1")}
	err = d.Apply(ctx, []route.RouteOp{add(rs[0]), add(rs[1]), add(rs[2])})
	if got := drivers.KindOf(err); got != drivers.KindIndeterminate {
		t.Fatalf("Apply error kind = %s (%v), want indeterminate", got, err)
	}
	if diff := cmp.Diff(f.AllRoutes(), rs[:2], eq); diff != "" {
		t.Errorf("routes after the break (-got +want):\n%s", diff)
	}
	if got := f.OpsApplied(rs[2]); got != 0 {
		t.Errorf("OpsApplied(third) = %d, want 0", got)
	}
}

func TestFakeUnreachableAndLatency(t *testing.T) {
	t.Parallel()
	f := drivertest.NewFake("sw1", drivertest.WithUnreachable(true))
	if _, err := f.Open(t.Context(), fakeConfig()); drivers.KindOf(err) != drivers.KindUnreachable {
		t.Fatalf("Open = %v, want unreachable", err)
	}
	f.Set(drivertest.WithUnreachable(false), drivertest.WithLatency(time.Hour, 0))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	_, err := f.Open(ctx, fakeConfig())
	if drivers.KindOf(err) != drivers.KindUnreachable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open past the deadline = %v, want unreachable wrapping DeadlineExceeded", err)
	}
	if got := f.Sessions(); got != 0 {
		t.Errorf("Sessions = %d, want 0", got)
	}
}

func TestFakeCountsConcurrentSessions(t *testing.T) {
	t.Parallel()
	f := drivertest.NewFake("sw1")
	var wg sync.WaitGroup
	opened := make(chan *drivertest.FakeDriver, 3)
	for range 3 {
		wg.Go(func() {
			d, err := f.Open(t.Context(), fakeConfig())
			if err != nil {
				t.Error(err)
				return
			}
			opened <- d
		})
	}
	wg.Wait()
	close(opened)
	for d := range opened {
		d.Close()
	}
	if got := f.MaxConcurrentSessions(); got != 3 {
		t.Errorf("MaxConcurrentSessions = %d, want 3", got)
	}
	if got := f.OpenSessions(); got != 0 {
		t.Errorf("OpenSessions = %d, want 0", got)
	}
}

func TestFakeCountsOpsPerRoute(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := drivertest.NewFake("sw1")
	d, err := f.Open(ctx, fakeConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := rt("172.16.1.0/24", "10.0.0.1")
	del := route.RouteOp{Action: route.ActionDelete, Route: r}
	if err := d.Apply(ctx, []route.RouteOp{add(r), del, add(r)}); err != nil {
		t.Fatal(err)
	}
	if got := f.OpsApplied(r); got != 3 {
		t.Errorf("OpsApplied = %d, want 3", got)
	}
	if diff := cmp.Diff(f.Applied(), []route.RouteOp{add(r), del, add(r)}, eq); diff != "" {
		t.Errorf("Applied (-got +want):\n%s", diff)
	}
}
