package verify_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/verify"
)

func TestMonitorCheck(t *testing.T) {
	t.Parallel()
	f := newFleet(
		host("docker-01", "10.10.10.101", "rack1", "10.210.1.0/24", fabric.HostActive),
		host("docker-02", "10.10.10.102", "rack1", "10.210.2.0/24", fabric.HostActive),
	)
	f.converge()
	reg := prometheus.NewRegistry()
	m, err := verify.NewMonitor(f.v, time.Minute, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var drifted []verify.Report
	m.OnDrift = func(_ context.Context, r verify.Report) { drifted = append(drifted, r) }

	// In sync: gauges at zero, last success set, no remediation hook.
	r, err := m.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.LastSuccess()); got != float64(r.CheckedAt.UnixNano())/1e9 {
		t.Errorf("last success = %v, want the check's time %v", got, r.CheckedAt)
	}
	if len(drifted) != 0 {
		t.Errorf("OnDrift called %d times while in sync", len(drifted))
	}

	// Drift on sw1, sw2 unreachable: sw1's gauges move, sw2 keeps its last figures, last
	// success stays where it was.
	before := testutil.ToFloat64(m.LastSuccess())
	f.fakes["sw1"].Remove(rt("10.210.1.0/24", "10.10.10.101"))
	f.fakes["sw1"].Remove(rt("10.210.2.0/24", "10.10.10.102"))
	f.fakes["sw1"].Plant(rt("10.210.9.0/24", "10.10.10.109"))
	f.fakes["sw2"].Set(drivertest.WithUnreachable(true))
	if _, err := m.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[[2]string]float64{
		{"sw1", "missing"}: 2, {"sw1", "unexpected"}: 1, {"sw1", "wrong_next_hop"}: 0,
		{"fw1", "missing"}: 0, {"fw1", "unexpected"}: 0, {"fw1", "wrong_next_hop"}: 0,
		{"sw2", "missing"}: 0, {"sw2", "unexpected"}: 0, {"sw2", "wrong_next_hop"}: 0,
	}
	for k, w := range want {
		if got := testutil.ToFloat64(m.DriftRoutes().WithLabelValues(k[0], k[1])); got != w {
			t.Errorf("returnpath_fabric_drift_routes{device=%q,kind=%q} = %v, want %v", k[0], k[1], got, w)
		}
	}
	if got := testutil.ToFloat64(m.LastSuccess()); got != before {
		t.Errorf("last success moved to %v with a device unreachable, want it kept at %v", got, before)
	}
	if len(drifted) != 1 || drifted[0].Drifted() != 1 {
		t.Errorf("OnDrift got %d reports, want 1 with sw1 drifting", len(drifted))
	}
	// The gauges are served from the registry the monitor was given.
	n, err := testutil.GatherAndCount(reg, "returnpath_fabric_drift_routes", "returnpath_verify_last_success_timestamp", "returnpath_fabric_device_reachable")
	if err != nil {
		t.Fatal(err)
	}
	if n != 9+1+3 {
		t.Errorf("gathered %d series, want 13", n)
	}
}

func TestMonitorRun(t *testing.T) {
	t.Parallel()
	f := newFleet(host("docker-01", "10.10.10.101", "rack1", "10.210.1.0/24", fabric.HostActive))
	m, err := verify.NewMonitor(f.v, 10*time.Millisecond, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan verify.Report)
	m.OnDrift = func(ctx context.Context, r verify.Report) {
		select {
		case reports <- r:
		case <-ctx.Done():
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { m.Run(ctx); close(stopped) }()
	// Nothing converged: every check drifts; two checks prove it repeats.
	for range 2 {
		select {
		case r := <-reports:
			if r.InSync {
				t.Error("OnDrift got an in-sync report")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no drift check within 10 s")
		}
	}
	cancel()
	<-stopped
}

func TestMonitorOff(t *testing.T) {
	t.Parallel()
	f := newFleet()
	m, err := verify.NewMonitor(f.v, 0, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Run(t.Context()) // returns at once: the check is off
	if n := f.fakes["sw1"].Sessions(); n != 0 {
		t.Errorf("an interval of 0 still opened %d sessions", n)
	}
}

func TestMonitorRegistersOnce(t *testing.T) {
	t.Parallel()
	f := newFleet()
	reg := prometheus.NewRegistry()
	if _, err := verify.NewMonitor(f.v, 0, reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.NewMonitor(f.v, 0, reg, nil); err == nil {
		t.Error("a second monitor on the same registry registered its gauges again")
	}
}
