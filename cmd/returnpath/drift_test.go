package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// TestDriftCheckProposesRemediation wires Main as serve does, with in-memory devices: a route
// deleted behind returnpath's back is found by the periodic check, which files one remediate
// change for review; approving it restores the route.
func TestDriftCheckProposesRemediation(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	cfgText := strings.ReplaceAll(testConfig, "%DB%", pgtest.URL(t))
	cfgText = strings.Replace(cfgText, "  auto_approve: []", "  auto_approve: [{action: add}]\ndrift:\n  interval: 1h\n  remediate: propose", 1)
	cfg, err := loadConfig(writeConfig(t, cfgText), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	sw, fw := drivertest.NewFake("sw1"), drivertest.NewFake("fw1")
	fac := drivertest.FakeFactory(sw, fw)
	m := &Main{Config: cfg, Log: slog.New(slog.DiscardHandler), Migrate: true,
		Factories: map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac, fabric.PlatformLinux: fac}}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })

	boot := fabric.Actor{Name: "boot", Role: fabric.RoleBootstrap}
	h, _, err := m.Hosts.Register(ctx, boot, fabric.Registration{Name: "d1", Address: netip.MustParseAddr("10.10.10.101")})
	if err != nil {
		t.Fatal(err)
	}
	waitFinal := func(id int64) fabric.Change {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := m.Changes.Change(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if c.Status.Final() {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("change %d still %s", id, c.Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	id, _, _, _ := m.Changes.HostChange(ctx, h.ID)
	if c := waitFinal(id); c.Status != fabric.ChangeApplied {
		t.Fatalf("add change %s: %s", c.Status, c.Reason)
	}
	gone := fabric.Route{VRF: "default", Prefix: netip.MustParsePrefix("10.210.0.0/24"), NextHop: netip.MustParseAddr("10.10.20.1")}
	fw.Remove(gone)
	for range 2 { // a second check must not file a second proposal
		if _, err := m.Monitor.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pending, _, err := m.Changes.List(ctx, fabric.ChangeFilter{Status: fabric.ChangePending})
	if err != nil || len(pending) != 1 || pending[0].Kind != fabric.ChangeRemediate || len(pending[0].Ops) != 1 {
		t.Fatalf("pending changes = %+v, %v; want one remediate change with one op", pending, err)
	}
	rc := pending[0]
	if op := rc.Ops[0]; op.Device != "fw1" || op.Op.Action != fabric.ActionAdd || op.Op.Route != gone || rc.RequestedBy != "drift-check" {
		t.Errorf("remediation = %+v requested by %s", op, rc.RequestedBy)
	}
	if _, err := m.Changes.Approve(ctx, fabric.Actor{Name: "alice", Role: fabric.RoleReviewer}, rc.ID, rc.PlanHash); err != nil {
		t.Fatal(err)
	}
	if c := waitFinal(rc.ID); c.Status != fabric.ChangeApplied {
		t.Fatalf("remediation %s: %s", c.Status, c.Reason)
	}
	if fw.OpsApplied(gone) != 2 {
		t.Errorf("the route was pushed %d times in all, want 2 (the add, then the remediation)", fw.OpsApplied(gone))
	}
	// The engine's work shows in /metrics.
	resp, err := http.Get("http://" + m.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`returnpath_changes{status="applied"} 2`,
		`returnpath_ops_total{device="fw1",outcome="applied"} 2`,
		`returnpath_ops_total{device="sw1",outcome="applied"} 1`,
		`returnpath_apply_session_seconds_count{device="fw1"} 2`,
		`returnpath_fabric_drift_routes{device="fw1",kind="missing"} 1`,
		`returnpath_device_logins_total{device="fw1",outcome="ok"} `, // apply and verify sessions: their count varies with the verify cache
		`returnpath_device_login_failures{device="fw1"} 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestDriftCheckSendsDriftFound: the periodic check that finds drift sends drift.found to a
// webhook that asked for it, signed, naming the device and the count of each kind.
func TestDriftCheckSendsDriftFound(t *testing.T) {
	const secret = "drift-secret-7c2a91"
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	t.Setenv("RETURNPATH_TEST_HOOK_SECRET", secret)
	rc := newHookReceiver(t, secret, http.StatusOK, "")
	cfgText := strings.ReplaceAll(testConfig, "%DB%", pgtest.URL(t))
	cfgText = strings.Replace(cfgText, "  auto_approve: []", "  auto_approve: [{action: add}]\ndrift:\n  interval: 1h", 1)
	cfgText += fmt.Sprintf(`events:
  webhooks:
    - name: oncall
      url: %s/hook
      ca_file: %s
      secret_env: RETURNPATH_TEST_HOOK_SECRET
      events: [drift.found]
`, rc.srv.URL, rc.caFile)
	cfg, err := loadConfig(writeConfig(t, cfgText), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	sw, fw := drivertest.NewFake("sw1"), drivertest.NewFake("fw1")
	fac := drivertest.FakeFactory(sw, fw)
	m := &Main{Config: cfg, Log: slog.New(slog.DiscardHandler), Migrate: true,
		Factories: map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac, fabric.PlatformLinux: fac}}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	// A leftover route on the firewall, inside the pool, that no host explains.
	fw.Plant(fabric.Route{VRF: "default", Prefix: netip.MustParsePrefix("10.210.200.0/24"), NextHop: netip.MustParseAddr("10.10.20.1")})
	if _, err := m.Monitor.Check(ctx); err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	select {
	case body = <-rc.got:
	case <-time.After(30 * time.Second):
		t.Fatal("no drift.found webhook within 30s")
	}
	drift, _ := body["drift"].([]any)
	if body["event"] != "drift.found" || len(drift) != 1 {
		t.Fatalf("body = %v, want drift.found for one device", body)
	}
	if d := drift[0].(map[string]any); d["device"] != "fw1" || d["unexpected"] != float64(1) {
		t.Errorf("drift = %v, want fw1 with 1 unexpected route", d)
	}
}
