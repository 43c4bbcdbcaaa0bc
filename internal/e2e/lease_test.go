package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// leaseConfig is fleetConfig with leases on: a one-minute lease, no grace, and onExpiry
// (propose or remove) for hosts that do not renew.
func leaseConfig(tb testing.TB, l *lab.Lab, dbURL, listen, onExpiry string) string {
	tb.Helper()
	b, err := os.ReadFile(fleetConfig(tb, l, dbURL, listen))
	if err != nil {
		tb.Fatal(err)
	}
	cfg := string(b) + fmt.Sprintf("leases: {ttl: 1m, grace: 0s, on_expiry: %s}\n", onExpiry)
	p := filepath.Join(tb.TempDir(), "returnpath-leases.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// firewallRoutes returns the pool's routes in fw1's kernel table (proto 202), one per line
// as `ip route` prints them.
func firewallRoutes(tb testing.TB, l *lab.Lab) []string {
	tb.Helper()
	b, err := l.Exec(context.Background(), "fw1", "ip", "route", "show", "proto", "202")
	if err != nil {
		tb.Fatal(err)
	}
	var rs []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "172.") {
			rs = append(rs, strings.Fields(line)[0]+" via "+nextHopOf(line))
		}
	}
	return rs
}

func nextHopOf(line string) string {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			return f[i+1]
		}
	}
	return ""
}

type leaseHost struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Subnet string `json:"subnet"`
	Lease  *struct {
		Stale bool `json:"stale"`
	} `json:"lease"`
}

// renewHost posts a renewal and returns the host it answers with.
func renewHost(tb testing.TB, url, tok, name string) leaseHost {
	tb.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/hosts/"+name+"/renew", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("renew %s: %d %s", name, resp.StatusCode, b)
	}
	var h leaseHost
	get(tb, url+"/v1/hosts/"+name, tok, &h)
	return h
}

// expire sets host name's renewal back two minutes, past the one-minute lease: what a host
// that stopped renewing looks like, without waiting for it.
func expire(tb testing.TB, db *pgx.Conn, name string) {
	tb.Helper()
	tag, err := db.Exec(context.Background(), `UPDATE hosts SET lease_renewed_at = now() - interval '2 minutes' WHERE name = $1 AND state <> 'removed'`, name)
	if err != nil {
		tb.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		tb.Fatalf("expire %s: %d hosts updated, want 1", name, tag.RowsAffected())
	}
}

// TestLeaseReaper runs the lease reaper against the lab. With on_expiry remove, a host that
// stopped renewing is removed on its own: its routes leave sw1's running configuration and
// fw1's kernel table, its subnet goes back to the pool, and the host that renewed keeps its
// routes. With on_expiry propose the reaper only files a pending removal, nothing leaves the
// devices, and the host's renewal cancels it.
func TestLeaseReaper(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	listen := l.Service.String() + ":8111"
	url := "http://" + listen
	cfg := leaseConfig(t, l, dbURL, listen, "remove")
	svc := startService(t, cfg, url)
	defer func() { svc.stop() }()
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)

	// Two hosts, both routes on both devices.
	for _, h := range []struct{ name, addr string }{{"keep", "10.10.100.1"}, {"gone", "10.10.100.2"}} {
		id := registerHost(t, url, boot, h.name, h.addr)
		if c := waitChange(t, url, viewer, id, 60*time.Second); c.Status != "applied" {
			t.Fatalf("registering %s: change %d %s", h.name, id, c.Status)
		}
	}
	var keep, gone leaseHost
	get(t, url+"/v1/hosts/keep", viewer, &keep)
	get(t, url+"/v1/hosts/gone", viewer, &gone)
	if keep.Lease == nil || keep.Lease.Stale {
		t.Fatalf("keep's lease after registering: %+v, want a live lease", keep.Lease)
	}
	swBoth := []string{"ip route " + keep.Subnet + " 10.10.100.1", "ip route " + gone.Subnet + " 10.10.100.2"}
	fwBoth := []string{keep.Subnet + " via 10.10.20.1", gone.Subnet + " via 10.10.20.1"}
	checkDevices(t, l, "after registering both", swBoth, fwBoth)
	if allocated := poolAllocated(t, url, viewer); allocated != 2 {
		t.Fatalf("pool docker has %d subnets allocated, want 2", allocated)
	}

	// keep renews; gone's renewal is set back past its lease; the reaper runs on start.
	if h := renewHost(t, url, boot, "keep"); h.State != "active" {
		t.Fatalf("keep after renewing: %s, want active", h.State)
	}
	svc.stop()
	expire(t, db, "gone")
	svc = startService(t, cfg, url)

	deadline := time.Now().Add(90 * time.Second)
	for {
		var state string
		if err := db.QueryRow(ctx, `SELECT state FROM hosts WHERE name = 'gone' ORDER BY id DESC LIMIT 1`).Scan(&state); err != nil {
			t.Fatal(err)
		}
		if state == "removed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gone is still %s 90s after the restart; changes %v\n%s", state, countChanges(t, db), svc.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var requestedBy, status string
	if err := db.QueryRow(ctx, `SELECT c.requested_by, c.status FROM changes c JOIN hosts h ON h.id = c.host_id
		WHERE h.name = 'gone' AND c.kind = 'remove'`).Scan(&requestedBy, &status); err != nil {
		t.Fatal(err)
	}
	if requestedBy != "lease-reaper" || status != "applied" {
		t.Errorf("gone's removal: requested by %s, %s; want lease-reaper, applied", requestedBy, status)
	}
	checkDevices(t, l, "after the reaper removed gone", swBoth[:1], fwBoth[:1])
	if got := poolAllocated(t, url, viewer); got != 1 {
		t.Errorf("after gone's removal the pool has %d subnets allocated, want 1 (keep's)", got)
	}
	var free int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM free_subnets WHERE subnet = $1::cidr`, gone.Subnet).Scan(&free); err != nil {
		t.Fatal(err)
	}
	if free != 1 {
		t.Errorf("gone's subnet %s is on the free list %d times, want once", gone.Subnet, free)
	}
	get(t, url+"/v1/hosts/keep", viewer, &keep)
	if keep.State != "active" || keep.Lease == nil || keep.Lease.Stale {
		t.Errorf("keep after the reaper ran: %s, lease %+v; want active and not stale", keep.State, keep.Lease)
	}

	// on_expiry propose: the reaper files keep's removal for review and the devices keep the route.
	svc.stop()
	cfg = leaseConfig(t, l, dbURL, listen, "propose")
	expire(t, db, "keep")
	svc = startService(t, cfg, url)
	id := waitPendingRemoval(t, url, viewer, "keep", 60*time.Second)
	c := changeNow(t, url, viewer, id)
	if c.Status != "pending" {
		t.Fatalf("the proposed removal %d is %s, want pending", id, c.Status)
	}
	get(t, url+"/v1/hosts/keep", viewer, &keep)
	if keep.State != "removing" {
		t.Errorf("keep with its removal proposed: %s, want removing", keep.State)
	}
	checkDevices(t, l, "with keep's removal proposed", swBoth[:1], fwBoth[:1])

	// keep renews: the removal is rejected, keep is active, the devices are untouched.
	if h := renewHost(t, url, boot, "keep"); h.State != "active" || h.Lease == nil || h.Lease.Stale {
		t.Errorf("keep after renewing: %s, lease %+v; want active and not stale", h.State, h.Lease)
	}
	c = changeNow(t, url, viewer, id)
	if c.Status != "rejected" || !strings.Contains(c.Reason, "renewed") {
		t.Errorf("the proposed removal after keep renewed: %s (%q), want rejected as renewed", c.Status, c.Reason)
	}
	var pending struct {
		Items []struct{ ID int64 } `json:"items"`
	}
	get(t, url+"/v1/changes?status=pending", viewer, &pending)
	if len(pending.Items) != 0 {
		t.Errorf("pending changes after the renewal: %+v, want none", pending.Items)
	}
	checkDevices(t, l, "after keep renewed", swBoth[:1], fwBoth[:1])
	if r := verifyInSync(t, url, viewer, 30*time.Second); !r.InSync {
		t.Errorf("verify at the end: %+v", r)
	}

	// Leave the devices clean for the next test.
	req, _ := http.NewRequest("DELETE", url+"/v1/hosts/keep", nil)
	req.Header.Set("Authorization", "Bearer "+boot)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		if sw, fw := deviceRoutes(t, l); sw == 0 && fw == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after deregistering keep: sw1 %d, fw1 %d routes left", sw, fw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkDevices compares what sw1's running configuration and fw1's kernel table hold with sw
// and fw, in any order.
func checkDevices(tb testing.TB, l *lab.Lab, when string, sw, fw []string) {
	tb.Helper()
	if got := staticRoutes(tb, l, "sw1"); !sameSet(got, sw) {
		tb.Errorf("%s: sw1 holds %q, want %q", when, got, sw)
	}
	if got := firewallRoutes(tb, l); !sameSet(got, fw) {
		tb.Errorf("%s: fw1 holds %q, want %q", when, got, fw)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s] == 0 {
			return false
		}
		seen[s]--
	}
	return true
}

func poolAllocated(tb testing.TB, url, tok string) int {
	tb.Helper()
	var pools struct {
		Items []struct {
			Name      string `json:"name"`
			Allocated int    `json:"allocated"`
		} `json:"items"`
	}
	get(tb, url+"/v1/pools", tok, &pools)
	for _, p := range pools.Items {
		if p.Name == "docker" {
			return p.Allocated
		}
	}
	tb.Fatalf("no pool docker in %+v", pools)
	return 0
}

// waitPendingRemoval waits until GET /v1/changes?status=pending lists a removal of host name
// requested by the lease reaper, and returns its id.
func waitPendingRemoval(tb testing.TB, url, tok, name string, within time.Duration) int64 {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		var list struct {
			Items []struct {
				ID          int64  `json:"id"`
				Kind        string `json:"kind"`
				RequestedBy string `json:"requested_by"`
				Host        *struct {
					Name string `json:"name"`
				} `json:"host"`
			} `json:"items"`
		}
		get(tb, url+"/v1/changes?status=pending", tok, &list)
		for _, c := range list.Items {
			if c.Kind == "remove" && c.RequestedBy == "lease-reaper" && c.Host != nil && c.Host.Name == name {
				return c.ID
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no pending removal of %s by the lease reaper after %s: %+v", name, within, list.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// changeNow reads a change once, whatever its status.
func changeNow(tb testing.TB, url, tok string, id int64) change {
	tb.Helper()
	var c change
	get(tb, fmt.Sprintf("%s/v1/changes/%d", url, id), tok, &c)
	return c
}
