package postgres_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

var (
	rev     = fabric.Actor{Name: "alice", Role: fabric.RoleReviewer}
	autoAll = fabric.ApprovalPolicy{AutoApprove: []fabric.AutoApproveRule{{Kind: fabric.ChangeAdd}, {Kind: fabric.ChangeRemove}}}
)

// twoHopInventory routes rack1's subnets via sw1 (to the host) then fw1.
func twoHopInventory(fwVRF string) *fabric.Inventory {
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: pfx("10.210.0.0/16"), SubnetLength: 24}},
		Segments: []fabric.Segment{{Name: "rack1", Hosts: pfx("10.10.0.0/16"), Pool: "docker",
			RouteVia: []fabric.Hop{
				{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
				{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("10.10.20.1")}},
			}}},
		Devices: []fabric.Device{
			{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"},
			{Name: "fw1", Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.12:22"), VRF: fwVRF},
		},
	}
}

func preview(_ string, ops []fabric.RouteOp) ([]string, error) { return []string{ops[0].String()}, nil }

// lifecycle is the registry and change store with no apply engine: the test plays the
// engine's part through ReadyOps and Record.
type lifecycle struct {
	db      *postgres.DB
	hosts   *postgres.Hosts
	changes *postgres.Changes
}

func newLifecycle(t *testing.T) *lifecycle {
	t.Helper()
	db := pgtest.Open(t)
	inv := twoHopInventory("default")
	if err := db.SyncInventory(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	l := &lifecycle{db: db, hosts: postgres.NewHosts(db, inv), changes: postgres.NewChanges(db, inv, preview, autoAll)}
	l.hosts.SetChanges(l.changes)
	return l
}

// session records one session on device: each ready op gets the status given for it.
func (l *lifecycle) session(t *testing.T, device string, status fabric.OpStatus, unreachable bool) {
	t.Helper()
	ctx := context.Background()
	ops, err := l.changes.ReadyOps(ctx, device, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) == 0 {
		t.Fatalf("no ready op on %s", device)
	}
	var results []postgres.OpResult
	for _, o := range ops {
		r := postgres.OpResult{OpID: o.ID, ChangeID: o.ChangeID, Status: status, Attempted: true, Unreachable: unreachable}
		if status == fabric.OpFailed {
			r.Error, r.Output = "the device refused it", "% read-only"
		}
		results = append(results, r)
	}
	if _, err := l.changes.Record(ctx, device, results); err != nil {
		t.Fatal(err)
	}
}

func (l *lifecycle) change(t *testing.T, id int64, want fabric.ChangeStatus) fabric.Change {
	t.Helper()
	ch, err := l.changes.Change(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Status != want {
		t.Fatalf("change %d is %s (%s), want %s", id, ch.Status, ch.Reason, want)
	}
	return ch
}

func (l *lifecycle) newest(t *testing.T, h fabric.Host) int64 {
	t.Helper()
	id, _, _, ok := l.changes.HostChange(context.Background(), h.ID)
	if !ok {
		t.Fatalf("host %s has no change", h.Name)
	}
	return id
}

func (l *lifecycle) register(t *testing.T, name, address string) fabric.Host {
	t.Helper()
	h, _, err := l.hosts.Register(context.Background(), bob, fabric.Registration{Name: name, Address: addr(address)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// rolledBackAdd registers a host whose add change is rolled back: fw1 refuses after sw1 took
// the route, and the undo on sw1 succeeds.
func (l *lifecycle) rolledBackAdd(t *testing.T, name, address string) (fabric.Host, int64) {
	t.Helper()
	h := l.register(t, name, address)
	l.session(t, "sw1", fabric.OpApplied, false)
	l.session(t, "fw1", fabric.OpFailed, false)
	l.session(t, "sw1", fabric.OpApplied, false) // the undo
	id := l.newest(t, h)
	l.change(t, id, fabric.ChangeRolledBack)
	return h, id
}

func (l *lifecycle) liveRemoveChanges(t *testing.T, h fabric.Host) int {
	t.Helper()
	var n int
	err := l.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM changes WHERE host_id = $1 AND kind = 'remove'
		AND status IN ('pending', 'approved', 'applying')`, h.ID).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRemoveOfAHostWhoseRemovalRolledBack: the remove change of an active host rolls back
// (fw1 refuses the delete), leaving the host removing. Retry works on the rolled-back change,
// and a repeated DELETE with no live remove change files a new one, while a DELETE repeated
// when one is live files nothing.
func TestRemoveOfAHostWhoseRemovalRolledBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLifecycle(t)
	h := l.register(t, "d1", "10.10.10.101")
	l.session(t, "sw1", fabric.OpApplied, false)
	l.session(t, "fw1", fabric.OpApplied, false)
	if _, err := l.hosts.Remove(ctx, bob, "d1"); err != nil {
		t.Fatal(err)
	}
	first := l.newest(t, h)
	l.session(t, "fw1", fabric.OpFailed, false) // deletes go outside-in: fw1 first
	l.change(t, first, fabric.ChangeRolledBack)
	if got, _ := l.hosts.Host(ctx, "d1"); got.State != fabric.HostRemoving {
		t.Fatalf("host = %s after its removal rolled back, want removing", got.State)
	}

	// Retry takes a rolled-back change.
	retried, err := l.changes.Retry(ctx, rev, first)
	if err != nil {
		t.Fatalf("Retry(rolled_back remove) = %v", err)
	}
	if retried.Status != fabric.ChangeApproved {
		t.Errorf("retried change = %s, want approved", retried.Status)
	}
	l.session(t, "fw1", fabric.OpFailed, false)
	l.change(t, first, fabric.ChangeRolledBack)

	// A repeated DELETE files a new remove change...
	got, err := l.hosts.Remove(ctx, bob, "d1")
	if err != nil || got.State != fabric.HostRemoving {
		t.Fatalf("repeated Remove = %s, %v", got.State, err)
	}
	second := l.newest(t, h)
	if second == first || l.liveRemoveChanges(t, h) != 1 {
		t.Fatalf("repeated Remove filed change %d (first %d), %d live remove changes; want a new one", second, first, l.liveRemoveChanges(t, h))
	}
	// ...once: repeating it while that change is live is harmless.
	if _, err := l.hosts.Remove(ctx, bob, "d1"); err != nil {
		t.Fatal(err)
	}
	if n, id := l.liveRemoveChanges(t, h), l.newest(t, h); n != 1 || id != second {
		t.Errorf("Remove while change %d is live: %d live remove changes, newest %d", second, n, id)
	}
	// The old change may no longer be retried: the host has a newer one.
	if _, err := l.changes.Retry(ctx, rev, first); fabric.ErrorCode(err) != fabric.ECONFLICT {
		t.Errorf("Retry(superseded change) = %v, want conflict", err)
	}
	// The new change removes the host and releases its subnet.
	l.session(t, "fw1", fabric.OpApplied, false)
	l.session(t, "sw1", fabric.OpApplied, false)
	l.change(t, second, fabric.ChangeApplied)
	if _, err := l.hosts.Host(ctx, "d1"); fabric.ErrorCode(err) != fabric.ENOTFOUND {
		t.Errorf("Host(d1) after removal = %v, want not found", err)
	}
}

// TestRetryResetsTheDeadline: the firewall was unreachable (its op has a first error and
// attempts) before the change failed. A retry starts the plan again from scratch: no attempts,
// no first error, so the device gets its whole retry deadline again.
func TestRetryResetsTheDeadline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newLifecycle(t)
	h := l.register(t, "d1", "10.10.10.101")
	id := l.newest(t, h)
	l.session(t, "sw1", fabric.OpApplied, false)
	l.session(t, "fw1", fabric.OpPending, true)
	l.session(t, "fw1", fabric.OpPending, true)
	l.session(t, "fw1", fabric.OpFailed, false)
	l.session(t, "sw1", fabric.OpFailed, false) // the undo fails too
	l.change(t, id, fabric.ChangeFailed)

	ch, err := l.changes.Retry(ctx, rev, id)
	if err != nil {
		t.Fatalf("Retry(failed) = %v", err)
	}
	if ch.Status != fabric.ChangeApproved || ch.Reason != "" {
		t.Errorf("retried change = %s (%q), want approved with no reason", ch.Status, ch.Reason)
	}
	for _, o := range ch.Ops {
		if o.Rollback || o.Status != fabric.OpPending || o.Attempts != 0 || o.Error != "" {
			t.Errorf("op after retry = %s %s %s, %d attempts, error %q; want a pending forward op with none", o.Device, o.Op, o.Status, o.Attempts, o.Error)
		}
	}
	var stale int
	if err := l.db.Pool.QueryRow(ctx, `SELECT count(*) FROM change_ops WHERE change_id = $1 AND first_error_at IS NOT NULL`, id).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d ops keep their first error time after the retry: the deadline would not start again", stale)
	}
	// The plan runs again from its first stage.
	l.session(t, "sw1", fabric.OpApplied, false)
	l.session(t, "fw1", fabric.OpApplied, false)
	l.change(t, id, fabric.ChangeApplied)
	if got, _ := l.hosts.Host(ctx, "d1"); got.State != fabric.HostActive {
		t.Errorf("host = %s, want active", got.State)
	}
}

// TestRetryRefusals: a retry is refused while the change is not over, when the host's subnet
// was released or handed to another host, and when an add's host is no longer pending.
func TestRetryRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("not failed or rolled back", func(t *testing.T) {
		t.Parallel()
		l := newLifecycle(t)
		h := l.register(t, "d1", "10.10.10.101")
		if _, err := l.changes.Retry(ctx, rev, l.newest(t, h)); fabric.ErrorCode(err) != fabric.ECONFLICT {
			t.Errorf("Retry(approved) = %v, want conflict", err)
		}
	})

	t.Run("add of a host no longer pending", func(t *testing.T) {
		t.Parallel()
		l := newLifecycle(t)
		h, add := l.rolledBackAdd(t, "d1", "10.10.10.101")
		if _, err := l.hosts.Remove(ctx, bob, h.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := l.changes.Retry(ctx, rev, add); fabric.ErrorCode(err) != fabric.ECONFLICT {
			t.Errorf("Retry(add of a removing host) = %v, want conflict", err)
		}
	})

	t.Run("subnet released, then reassigned", func(t *testing.T) {
		t.Parallel()
		l := newLifecycle(t)
		h, add := l.rolledBackAdd(t, "d1", "10.10.10.101")
		// Nothing of it is on any device: the removal releases the subnet at once.
		if got, err := l.hosts.Remove(ctx, bob, h.Name); err != nil || got.State != fabric.HostRemoved {
			t.Fatalf("Remove() = %s, %v; want removed", got.State, err)
		}
		_, err := l.changes.Retry(ctx, rev, add)
		if fabric.ErrorCode(err) != fabric.ECONFLICT || !strings.Contains(err.Error(), "released") {
			t.Errorf("Retry(add of a removed host) = %v, want a conflict saying the subnet was released", err)
		}
		d2 := l.register(t, "d2", "10.10.10.102")
		if d2.Subnet != h.Subnet {
			t.Fatalf("d2 got %s, want the released %s", d2.Subnet, h.Subnet)
		}
		_, err = l.changes.Retry(ctx, rev, add)
		if fabric.ErrorCode(err) != fabric.ECONFLICT || !strings.Contains(err.Error(), "d2") {
			t.Errorf("Retry(add whose subnet d2 holds) = %v, want a conflict naming d2", err)
		}
	})

	t.Run("stale plan", func(t *testing.T) {
		t.Parallel()
		l := newLifecycle(t)
		_, add := l.rolledBackAdd(t, "d1", "10.10.10.101")
		before := l.change(t, add, fabric.ChangeRolledBack)
		moved := postgres.NewChanges(l.db, twoHopInventory("blue"), preview, autoAll)
		_, err := moved.Retry(ctx, rev, add)
		var stale *fabric.StalePlanError
		if !errors.As(err, &stale) || fabric.ErrorCode(err) != fabric.ECONFLICT {
			t.Fatalf("Retry after the inventory moved = %v, want a stale-plan conflict", err)
		}
		if stale.Change.PlanHash == before.PlanHash || stale.Change.Status != fabric.ChangeRolledBack || stale.Change.Ops[1].Op.Route.VRF != "blue" {
			t.Fatalf("the refusal shows %s %s %+v, want the new plan of the rolled-back change", stale.Change.Status, stale.Change.PlanHash, stale.Change.Ops)
		}
		// The new plan is stored: retrying again applies it.
		ch, err := moved.Retry(ctx, rev, add)
		if err != nil || ch.Status != fabric.ChangeApproved || ch.PlanHash != stale.Change.PlanHash {
			t.Errorf("second Retry = %s %s, %v; want approved with the new plan", ch.Status, ch.PlanHash, err)
		}
	})
}

// TestRemoveReleasesAHostWithNothingOnDevices: removing a host whose add change was rejected,
// or rolled back with every applied op undone, releases its subnet at once: the host is
// removed, audited, no change is filed and no device has work. A host whose add left a route
// on a device still goes through a remove change.
func TestRemoveReleasesAHostWithNothingOnDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// setup registers d1 and leaves its add change ended somehow.
		setup       func(t *testing.T, l *lifecycle) fabric.Host
		review      bool // adds wait for review (else they are approved at once)
		wantRelease bool
	}{
		{name: "add rejected", review: true, wantRelease: true, setup: func(t *testing.T, l *lifecycle) fabric.Host {
			h := l.register(t, "d1", "10.10.10.101")
			if _, err := l.changes.Reject(ctx, rev, l.newest(t, h), "wrong rack"); err != nil {
				t.Fatal(err)
			}
			return h
		}},
		{name: "add pending", review: true, wantRelease: true, setup: func(t *testing.T, l *lifecycle) fabric.Host {
			return l.register(t, "d1", "10.10.10.101")
		}},
		{name: "add rolled back, its applied op undone", wantRelease: true, setup: func(t *testing.T, l *lifecycle) fabric.Host {
			h, _ := l.rolledBackAdd(t, "d1", "10.10.10.101")
			return h
		}},
		{name: "add applied", wantRelease: false, setup: func(t *testing.T, l *lifecycle) fabric.Host {
			h := l.register(t, "d1", "10.10.10.101")
			l.session(t, "sw1", fabric.OpApplied, false)
			l.session(t, "fw1", fabric.OpApplied, false)
			return h
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLifecycle(t)
			if tt.review {
				l.changes = postgres.NewChanges(l.db, twoHopInventory("default"), preview, fabric.ApprovalPolicy{})
				l.hosts.SetChanges(l.changes)
			}
			h := tt.setup(t, l)
			var changesBefore int
			if err := l.db.Pool.QueryRow(ctx, `SELECT count(*) FROM changes WHERE host_id = $1`, h.ID).Scan(&changesBefore); err != nil {
				t.Fatal(err)
			}
			got, err := l.hosts.Remove(ctx, bob, "d1")
			if err != nil {
				t.Fatal(err)
			}
			var changesAfter, released, audited int
			err = l.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM changes WHERE host_id = $1),
				(SELECT count(*) FROM free_subnets WHERE subnet = $2),
				(SELECT count(*) FROM audit WHERE action = 'host.removed' AND object = 'host/d1' AND actor = $3)`,
				h.ID, h.Subnet, bob.Name).Scan(&changesAfter, &released, &audited)
			if err != nil {
				t.Fatal(err)
			}
			ready := 0
			for _, dev := range []string{"sw1", "fw1"} {
				ops, err := l.changes.ReadyOps(ctx, dev, 100)
				if err != nil {
					t.Fatal(err)
				}
				ready += len(ops)
			}
			if !tt.wantRelease {
				if got.State != fabric.HostRemoving || changesAfter != changesBefore+1 || released != 0 {
					t.Errorf("Remove() = %s, %d new changes, released %d; want removing with a remove change", got.State, changesAfter-changesBefore, released)
				}
				return
			}
			if got.State != fabric.HostRemoved || changesAfter != changesBefore || released != 1 || audited != 1 || ready != 0 {
				t.Errorf("Remove() = %s, %d new changes, released %d, audited %d, %d ops ready; want removed at once, released and audited, nothing filed or pushed",
					got.State, changesAfter-changesBefore, released, audited, ready)
			}
			if _, err := l.hosts.Host(ctx, "d1"); fabric.ErrorCode(err) != fabric.ENOTFOUND {
				t.Errorf("Host(d1) after the release = %v, want not found", err)
			}
			// The subnet is free: the next registration gets it.
			if d2 := l.register(t, "d2", "10.10.10.102"); d2.Subnet != h.Subnet {
				t.Errorf("d2 got %s, want the released %s", d2.Subnet, h.Subnet)
			}
		})
	}
}
