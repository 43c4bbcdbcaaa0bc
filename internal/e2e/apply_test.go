package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

type change struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	Ops    []struct {
		Device string `json:"device"`
		Action string `json:"action"`
		Status string `json:"status"`
		Output string `json:"output"`
	} `json:"ops"`
}

func get(tb testing.TB, url, tok string, out any) {
	tb.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		tb.Fatal(err)
	}
}

func waitChange(tb testing.TB, url, tok string, id int64, within time.Duration) change {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		var c change
		get(tb, fmt.Sprintf("%s/v1/changes/%d", url, id), tok, &c)
		switch c.Status {
		case "applied", "rolled_back", "failed", "rejected":
			return c
		}
		if time.Now().After(deadline) {
			tb.Fatalf("change %d still %s after %s", id, c.Status, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFirewallRefusesThenRollback: the firewall refuses the route (its next hop is on no
// connected network), so the switch's route, already applied, is undone and the change ends
// rolled_back with the firewall's own text.
func TestFirewallRefusesThenRollback(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8093"
	cfg := fleetConfigVia(t, l, dbURL, l.Service.String()+":8093", "10.99.99.1")
	svc := startService(t, cfg, url)
	defer svc.stop()
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")
	register(t, url, boot, 0, 1)
	var h struct {
		Change struct{ ID int64 } `json:"change"`
	}
	get(t, url+"/v1/hosts/h0", viewer, &h)
	c := waitChange(t, url, viewer, h.Change.ID, 60*time.Second)
	if c.Status != "rolled_back" || !strings.Contains(strings.ToLower(c.Reason), "gateway") {
		t.Fatalf("change = %s (%s), want rolled_back with the firewall's words", c.Status, c.Reason)
	}
	if sw, fw := deviceRoutes(t, l); sw != 0 || fw != 0 {
		t.Errorf("after the rollback sw1 holds %d and fw1 %d routes, want none", sw, fw)
	}
	var order []string
	for _, o := range c.Ops {
		order = append(order, o.Device+" "+o.Action+" "+o.Status)
	}
	if got := strings.Join(order, ", "); got != "sw1 add rolled_back, fw1 add failed, sw1 delete applied" {
		t.Errorf("ops = %s", got)
	}
	_ = ctx
}

// TestFirewallDownThenUp: while the firewall's SSH port drops packets the change waits
// (applying, with attempts counting up); once it answers again the change is applied.
func TestFirewallDownThenUp(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8094"
	cfg := fleetConfig(t, l, dbURL, l.Service.String()+":8094")
	cfg = rewrite(t, cfg, "connect_timeout: 5s", "connect_timeout: 1s")
	// The firewall's own namespace drops its SSH port: the lab's rule, never the root's.
	block := []string{"nft", "add table inet rpdown { chain in { type filter hook input priority 0 ; tcp dport 22 drop ; } ; }"}
	if out, err := l.Exec(ctx, "fw1", block...); err != nil {
		t.Fatalf("block fw1's ssh: %v %s", err, out)
	}
	unblocked := false
	unblock := func() {
		if !unblocked {
			unblocked = true
			if out, err := l.Exec(ctx, "fw1", "nft", "delete", "table", "inet", "rpdown"); err != nil {
				t.Errorf("unblock: %v %s", err, out)
			}
		}
	}
	defer unblock()
	svc := startService(t, cfg, url)
	defer svc.stop()
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")
	register(t, url, boot, 0, 1)
	var h struct {
		Change struct{ ID int64 } `json:"change"`
	}
	get(t, url+"/v1/hosts/h0", viewer, &h)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var c struct {
			Status string `json:"status"`
			Ops    []struct {
				Device   string `json:"device"`
				Attempts int    `json:"attempts"`
				Error    string `json:"error"`
			} `json:"ops"`
		}
		get(t, fmt.Sprintf("%s/v1/changes/%d", url, h.Change.ID), viewer, &c)
		if len(c.Ops) == 2 && c.Ops[1].Attempts >= 2 {
			if c.Status != "applying" || !strings.Contains(c.Ops[1].Error, "unreachable") {
				t.Fatalf("while fw1 is down: change %s, fw1 op error %q", c.Status, c.Ops[1].Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retries against the blocked firewall: %+v", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
	unblock()
	if c := waitChange(t, url, viewer, h.Change.ID, 60*time.Second); c.Status != "applied" {
		t.Fatalf("after fw1 came back: %s (%s)", c.Status, c.Reason)
	}
	if sw, fw := deviceRoutes(t, l); sw != 1 || fw != 1 {
		t.Errorf("sw1 %d, fw1 %d routes, want 1 each", sw, fw)
	}
	cleanDevices(t, l)
}

// TestTwoServiceProcesses runs two `returnpath serve` processes on one database and registers
// 1,000 hosts through both: every change is applied exactly once, and the switch never sees
// two sessions from returnpath at the same time (its established SSH connections are sampled
// throughout).
func TestTwoServiceProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	urlA, urlB := "http://"+l.Service.String()+":8095", "http://"+l.Service.String()+":8096"
	cfgA := fleetConfig(t, l, dbURL, l.Service.String()+":8095")
	cfgB := fleetConfig(t, l, dbURL, l.Service.String()+":8096")
	a := startService(t, cfgA, urlA)
	defer a.stop()
	b := startService(t, cfgB, urlB)
	defer b.stop()
	boot, viewer := token(t, cfgA, "boot", "bootstrap"), token(t, cfgA, "ci", "viewer")
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)

	var maxSw, maxFw atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for dev, m := range map[string]*atomic.Int64{"sw1": &maxSw, "fw1": &maxFw} {
				if n := sshSessions(t, l, dev); int64(n) > m.Load() {
					m.Store(int64(n))
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	const n = 1000
	var wg sync.WaitGroup
	wg.Go(func() { register(t, urlA, boot, 0, n/2) })
	wg.Go(func() { register(t, urlB, boot, n/2, n/2) })
	wg.Wait()
	waitApplied(t, db, n, 3*time.Minute)
	close(stop)
	sampler.Wait()
	if maxSw.Load() > 1 || maxFw.Load() > 1 {
		t.Errorf("most SSH sessions seen at once: sw1 %d, fw1 %d; want at most 1", maxSw.Load(), maxFw.Load())
	}
	if sw, fw := deviceRoutes(t, l); sw != n || fw != n {
		t.Errorf("sw1 holds %d and fw1 %d routes, want %d each", sw, fw, n)
	}
	var twice int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM change_ops WHERE attempts > 1`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice != 0 {
		t.Errorf("%d ops were sent more than once", twice)
	}
	if r := verifyFabric(t, urlA, viewer); !r.InSync {
		t.Errorf("verify: %+v", r)
	}
	t.Logf("most sessions at once: sw1 %d, fw1 %d", maxSw.Load(), maxFw.Load())
	cleanDevices(t, l)
}

// sshSessions counts established connections to the device's sshd.
func sshSessions(tb testing.TB, l *lab.Lab, dev string) int {
	out, err := l.Exec(context.Background(), dev, "ss", "-Htn", "state", "established", "( sport = :22 )")
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}

func rewrite(tb testing.TB, path, from, to string) string {
	tb.Helper()
	b, err := readAll(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(b, from) {
		tb.Fatalf("%s lacks %q", path, from)
	}
	if err := writeAll(path, strings.ReplaceAll(b, from, to)); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestRemediationOnTheLab: a route deleted by hand on the FRR switch and a leftover route of
// ours inside the pool on the Linux firewall are both reported by verify; the remediation
// change, once approved, puts the first back and removes the second.
func TestRemediationOnTheLab(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8097"
	cfg := fleetConfig(t, l, dbURL, l.Service.String()+":8097")
	svc := startService(t, cfg, url)
	defer svc.stop()
	defer cleanDevices(t, l)
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")
	oncall, alice := token(t, cfg, "oncall", "reviewer"), token(t, cfg, "alice", "reviewer")
	register(t, url, boot, 0, 1)
	var h struct {
		Subnet string             `json:"subnet"`
		Change struct{ ID int64 } `json:"change"`
	}
	get(t, url+"/v1/hosts/h0", viewer, &h)
	if c := waitChange(t, url, viewer, h.Change.ID, 60*time.Second); c.Status != "applied" {
		t.Fatalf("add change: %s %s", c.Status, c.Reason)
	}
	// Drift made by hand: the switch loses the host's route, the firewall keeps a stale one.
	if _, err := l.Vtysh(ctx, "sw1", "no ip route "+h.Subnet+" 10.10.100.1"); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(ctx, "fw1", "ip", "route", "add", "172.31.250.0/24", "via", "10.10.20.1", "proto", "202"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if r := verifyFabric(t, url, viewer); r.InSync || len(r.Devices) != 2 {
		t.Fatalf("verify after the hand-made drift: %+v", r)
	}
	req, _ := http.NewRequest("POST", url+"/v1/verify/remediate", nil)
	req.Header.Set("Authorization", "Bearer "+oncall)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rc struct {
		ID       int64  `json:"id"`
		Kind     string `json:"kind"`
		Status   string `json:"status"`
		PlanHash string `json:"plan_hash"`
		Ops      []struct {
			Device, Action, Prefix string
		} `json:"ops"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || rc.Kind != "remediate" || rc.Status != "pending" || len(rc.Ops) != 2 {
		t.Fatalf("remediate = %d %+v", resp.StatusCode, rc)
	}
	// Deletes outside-in first, then adds inside-out: the firewall's leftover, then the switch.
	if got := fmt.Sprintf("%s %s %s, %s %s %s", rc.Ops[0].Device, rc.Ops[0].Action, rc.Ops[0].Prefix, rc.Ops[1].Device, rc.Ops[1].Action, rc.Ops[1].Prefix); got != "fw1 delete 172.31.250.0/24, sw1 add "+h.Subnet {
		t.Errorf("remediation ops = %s", got)
	}
	body := strings.NewReader(`{"plan_hash":"` + rc.PlanHash + `"}`)
	req, _ = http.NewRequest("POST", fmt.Sprintf("%s/v1/changes/%d/approve", url, rc.ID), body)
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve = %d", resp.StatusCode)
	}
	if c := waitChange(t, url, viewer, rc.ID, 60*time.Second); c.Status != "applied" {
		t.Fatalf("remediation: %s %s", c.Status, c.Reason)
	}
	if r := verifyFabric(t, url, viewer); !r.InSync {
		t.Errorf("verify after the remediation: %+v", r)
	}
}

// TestRemediationRepairsNextHopsOnTheLab: the switch routes a host's subnet via a wrong next
// hop, and the firewall's route for it has gained an extra next hop (a multipath route with
// returnpath's protocol). verify reports both, and one approved remediation leaves each
// device with exactly the intended route.
func TestRemediationRepairsNextHopsOnTheLab(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8098"
	cfg := fleetConfig(t, l, dbURL, l.Service.String()+":8098")
	svc := startService(t, cfg, url)
	defer svc.stop()
	defer cleanDevices(t, l)
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")
	oncall, alice := token(t, cfg, "oncall", "reviewer"), token(t, cfg, "alice", "reviewer")
	register(t, url, boot, 0, 1)
	var h struct {
		Subnet string             `json:"subnet"`
		Change struct{ ID int64 } `json:"change"`
	}
	get(t, url+"/v1/hosts/h0", viewer, &h)
	if c := waitChange(t, url, viewer, h.Change.ID, 60*time.Second); c.Status != "applied" {
		t.Fatalf("add change: %s %s", c.Status, c.Reason)
	}
	// The switch: the host's next hop swapped for another by hand.
	for _, line := range []string{"no ip route " + h.Subnet + " 10.10.100.1", "ip route " + h.Subnet + " 10.10.100.9"} {
		if out, err := l.Vtysh(ctx, "sw1", line); err != nil {
			t.Fatalf("%s: %v %s", line, err, out)
		}
	}
	// The firewall: its route for the host gains a second next hop.
	out, err := l.Exec(ctx, "fw1", "ip", "-json", "route", "show", h.Subnet, "proto", "202")
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var cur []struct{ Gateway string }
	if err := json.Unmarshal(out, &cur); err != nil || len(cur) != 1 || cur[0].Gateway == "" {
		t.Fatalf("fw1's route for %s: %s (%v)", h.Subnet, out, err)
	}
	extra := "10.10.20.3"
	if cur[0].Gateway == extra {
		extra = "10.10.20.1"
	}
	if out, err := l.Exec(ctx, "fw1", "ip", "route", "replace", h.Subnet, "proto", "202",
		"nexthop", "via", cur[0].Gateway, "nexthop", "via", extra); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if r := verifyFabric(t, url, viewer); r.InSync || len(r.Devices) != 2 {
		t.Fatalf("verify after the hand-made drift: %+v", r)
	}
	req, _ := http.NewRequest("POST", url+"/v1/verify/remediate", nil)
	req.Header.Set("Authorization", "Bearer "+oncall)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rc struct {
		ID       int64  `json:"id"`
		PlanHash string `json:"plan_hash"`
		Ops      []struct {
			Device, Action, Prefix, NextHop string
		} `json:"ops"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The firewall's extra next hop and the switch's wrong one go; the switch's right one
	// comes back.
	if resp.StatusCode != 201 || len(rc.Ops) != 3 {
		t.Fatalf("remediate = %d %+v", resp.StatusCode, rc)
	}
	body := strings.NewReader(`{"plan_hash":"` + rc.PlanHash + `"}`)
	req, _ = http.NewRequest("POST", fmt.Sprintf("%s/v1/changes/%d/approve", url, rc.ID), body)
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve = %d", resp.StatusCode)
	}
	if c := waitChange(t, url, viewer, rc.ID, 60*time.Second); c.Status != "applied" {
		t.Fatalf("remediation: %s %s", c.Status, c.Reason)
	}
	// verify answers from readings up to verify.max_age (5s) old, and the last one predates
	// the remediation: wait for a reading taken after it.
	deadline := time.Now().Add(30 * time.Second)
	for r := verifyFabric(t, url, viewer); !r.InSync; r = verifyFabric(t, url, viewer) {
		if time.Now().After(deadline) {
			t.Fatalf("verify after the remediation: %+v", r)
		}
		time.Sleep(500 * time.Millisecond) // polling a condition with a deadline, not synchronising
	}
	out, err = l.Exec(ctx, "fw1", "ip", "-json", "route", "show", h.Subnet, "proto", "202")
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var after []struct {
		Gateway  string
		Nexthops []any
	}
	if err := json.Unmarshal(out, &after); err != nil || len(after) != 1 || after[0].Gateway != cur[0].Gateway || len(after[0].Nexthops) != 0 {
		t.Errorf("fw1's route for %s after the remediation: %s, want only via %s", h.Subnet, out, cur[0].Gateway)
	}
}
