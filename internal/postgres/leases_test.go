package postgres_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
)

// clock is a settable clock for the stores (postgres.DB.Now).
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(db *postgres.DB) *clock {
	c := &clock{}
	c.set(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	db.Now = c.now
	return c
}

func (c *clock) now() time.Time          { return *c.t.Load() }
func (c *clock) set(t time.Time)         { c.t.Store(&t) }
func (c *clock) advance(d time.Duration) { c.set(c.now().Add(d)) }

var hourLease = fabric.LeasePolicy{TTL: time.Hour, Grace: 10 * time.Minute, OnExpiry: fabric.LeaseRemove}

// leased is the lifecycle with leases on (policy p) and a settable clock.
func leased(t *testing.T, p fabric.LeasePolicy) (*lifecycle, *clock) {
	t.Helper()
	l := newLifecycle(t)
	c := newClock(l.db)
	l.hosts.SetLeases(p)
	return l, c
}

// active registers a host and applies its add change on both devices.
func (l *lifecycle) active(t *testing.T, name, address string) fabric.Host {
	t.Helper()
	h := l.register(t, name, address)
	l.session(t, "sw1", fabric.OpApplied, false)
	l.session(t, "fw1", fabric.OpApplied, false)
	l.change(t, l.newest(t, h), fabric.ChangeApplied)
	return h
}

func (l *lifecycle) host(t *testing.T, name string) fabric.Host {
	t.Helper()
	h, err := l.hosts.Host(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRenewExtendsTheLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, c := leased(t, hourLease)
	start := c.now()
	h := l.register(t, "d1", "10.10.10.101")
	if h.Lease == nil || !h.Lease.RenewedAt.Equal(start) || !h.Lease.ExpiresAt.Equal(start.Add(time.Hour)) || h.Lease.Stale {
		t.Fatalf("lease after registration = %+v, want renewed %s, expiring an hour later, not stale", h.Lease, start)
	}
	c.advance(30 * time.Minute)
	h, err := l.hosts.Renew(ctx, bob, "D1")
	if err != nil {
		t.Fatal(err)
	}
	if !h.Lease.ExpiresAt.Equal(start.Add(90 * time.Minute)) {
		t.Errorf("lease after Renew = %+v, want expiry %s", h.Lease, start.Add(90*time.Minute))
	}
	// Registering again is a renewal too.
	c.advance(30 * time.Minute)
	again, created, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")})
	if err != nil || created {
		t.Fatalf("repeat Register = created %v, %v", created, err)
	}
	if !again.Lease.RenewedAt.Equal(start.Add(time.Hour)) {
		t.Errorf("lease after a repeated registration = %+v, want renewed at %s", again.Lease, start.Add(time.Hour))
	}
	if _, err := l.hosts.Renew(ctx, bob, "nope"); code(err) != fabric.ENOTFOUND {
		t.Errorf("Renew(unknown) = %v, want not_found", err)
	}
	scoped := fabric.Actor{Name: "rack2-boot", Role: fabric.RoleBootstrap, Segments: []string{"rack2"}}
	if _, err := l.hosts.Renew(ctx, scoped, "d1"); code(err) != fabric.EFORBIDDEN {
		t.Errorf("Renew by a token scoped elsewhere = %v, want forbidden", err)
	}
}

func TestStaleHosts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, c := leased(t, hourLease)
	l.register(t, "old1", "10.10.10.101")
	l.register(t, "old2", "10.10.10.102")
	c.advance(30 * time.Minute)
	l.register(t, "fresh", "10.10.10.103")
	c.advance(40*time.Minute + time.Second) // old*: 70 min and a second, past ttl + grace
	hosts, next, err := l.hosts.List(ctx, fabric.HostFilter{Stale: true, Limit: 1})
	if err != nil || len(hosts) != 1 || hosts[0].Name != "old1" || next != "old1" || !hosts[0].Lease.Stale {
		t.Fatalf("first page of stale hosts = %v, next %q, %v; want old1, next old1", hosts, next, err)
	}
	hosts, next, err = l.hosts.List(ctx, fabric.HostFilter{Stale: true, After: next, Limit: 1})
	if err != nil || len(hosts) != 1 || hosts[0].Name != "old2" {
		t.Fatalf("second page of stale hosts = %v, next %q, %v; want old2", hosts, next, err)
	}
	if n, err := l.hosts.CountStale(ctx); err != nil || n != 2 {
		t.Errorf("CountStale = %d, %v; want 2", n, err)
	}
	if fresh := l.host(t, "fresh"); fresh.Lease.Stale {
		t.Errorf("fresh host's lease = %+v, want not stale", fresh.Lease)
	}
	// A reload that lengthens the ttl applies to every host at once.
	l.hosts.SetLeases(fabric.LeasePolicy{TTL: 2 * time.Hour, OnExpiry: fabric.LeasePropose})
	if n, err := l.hosts.CountStale(ctx); err != nil || n != 0 {
		t.Errorf("CountStale with a 2h ttl = %d, %v; want 0", n, err)
	}
	l.hosts.SetLeases(fabric.LeasePolicy{})
	if _, _, err := l.hosts.List(ctx, fabric.HostFilter{Stale: true}); code(err) != fabric.EINVALID {
		t.Errorf("List(stale) with leases off = %v, want invalid", err)
	}
	if h := l.host(t, "old1"); h.Lease != nil {
		t.Errorf("lease with leases off = %+v, want none", h.Lease)
	}
}

func TestReapFilesRemovals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		on   fabric.LeaseAction
		want fabric.ChangeStatus
	}{{fabric.LeasePropose, fabric.ChangePending}, {fabric.LeaseRemove, fabric.ChangeApproved}} {
		t.Run(string(tt.on), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			p := hourLease
			p.OnExpiry = tt.on
			l, c := leased(t, p)
			dead := l.active(t, "dead", "10.10.10.101")
			c.advance(50 * time.Minute)
			l.active(t, "alive", "10.10.10.103")
			if reaped, err := l.hosts.Reap(ctx); err != nil || len(reaped) != 0 {
				t.Fatalf("Reap within ttl + grace = %v, %v; want nothing", reaped, err)
			}
			c.advance(21 * time.Minute)
			reaped, err := l.hosts.Reap(ctx)
			if err != nil || len(reaped) != 1 || reaped[0].Host != "dead" || reaped[0].Status != tt.want {
				t.Fatalf("Reap = %+v, %v; want dead's removal %s", reaped, err, tt.want)
			}
			ch := l.change(t, reaped[0].Change, tt.want)
			if ch.Kind != fabric.ChangeRemove || ch.RequestedBy != fabric.ActorLeaseReaper || ch.Host.Name != "dead" {
				t.Errorf("reaper's change = %+v, want a removal of dead requested by %s", ch, fabric.ActorLeaseReaper)
			}
			if h := l.host(t, "dead"); h.State != fabric.HostRemoving {
				t.Errorf("dead is %s, want removing", h.State)
			}
			entries, _, err := l.db.Audit(ctx, fabric.AuditFilter{Object: "host/" + dead.Name, Limit: 10})
			if err != nil || len(entries) == 0 || entries[0].Actor != fabric.ActorLeaseReaper || entries[0].Action != "host.remove" {
				t.Errorf("newest audit entry of dead = %+v, %v; want host.remove by %s", entries, err, fabric.ActorLeaseReaper)
			}
			if again, err := l.hosts.Reap(ctx); err != nil || len(again) != 0 {
				t.Errorf("second Reap = %v, %v; want nothing", again, err)
			}
			if tt.on == fabric.LeaseRemove {
				l.session(t, "fw1", fabric.OpApplied, false) // deletes go outside-in
				l.session(t, "sw1", fabric.OpApplied, false)
				l.change(t, reaped[0].Change, fabric.ChangeApplied)
				if _, err := l.hosts.Host(ctx, "dead"); code(err) != fabric.ENOTFOUND {
					t.Errorf("dead after its removal applied: %v, want not_found", err)
				}
			}
		})
	}
}

// TestReapConcurrently: reapers in several processes at once (River's leader changing hands
// mid-run, say) file each host's removal once.
func TestReapConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, c := leased(t, hourLease)
	const hosts = 30
	for i := range hosts {
		l.register(t, "h"+strconv.Itoa(i), "10.10.11."+strconv.Itoa(10+i))
	}
	for _, dev := range []string{"sw1", "fw1"} {
		l.session(t, dev, fabric.OpApplied, false)
	}
	c.advance(2 * time.Hour)
	var wg sync.WaitGroup
	var total atomic.Int64
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reaped, err := l.hosts.Reap(ctx)
			total.Add(int64(len(reaped)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var changes int
	if err := l.db.Pool.QueryRow(ctx, `SELECT count(*) FROM changes WHERE kind = 'remove'`).Scan(&changes); err != nil {
		t.Fatal(err)
	}
	if total.Load() != hosts || changes != hosts {
		t.Errorf("4 concurrent reapers reaped %d hosts and filed %d removals; want %d of each", total.Load(), changes, hosts)
	}
}

func TestRenewalCancelsAnExpiryRemovalNotStarted(t *testing.T) {
	t.Parallel()
	for _, on := range []fabric.LeaseAction{fabric.LeasePropose, fabric.LeaseRemove} {
		t.Run(string(on), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			p := hourLease
			p.OnExpiry = on
			l, c := leased(t, p)
			l.active(t, "d1", "10.10.10.101")
			c.advance(2 * time.Hour)
			reaped, err := l.hosts.Reap(ctx)
			if err != nil || len(reaped) != 1 {
				t.Fatalf("Reap = %v, %v", reaped, err)
			}
			// The engine read the ready ops before the renewal (the race StartApplying closes).
			ready, err := l.changes.ReadyOps(ctx, "fw1", 10)
			if err != nil {
				t.Fatal(err)
			}
			h, err := l.hosts.Renew(ctx, bob, "d1")
			if err != nil {
				t.Fatal(err)
			}
			if h.State != fabric.HostActive || h.Lease.Stale {
				t.Errorf("renewed host = %s, lease %+v; want active, not stale", h.State, h.Lease)
			}
			ch := l.change(t, reaped[0].Change, fabric.ChangeRejected)
			if ch.Reason != fabric.RenewedReason {
				t.Errorf("cancelled removal's reason = %q, want %q", ch.Reason, fabric.RenewedReason)
			}
			ids := []int64{}
			for _, o := range ready {
				ids = append(ids, o.ChangeID)
			}
			if applying, err := l.changes.StartApplying(ctx, "fw1", ids); err != nil || len(applying) != 0 {
				t.Errorf("StartApplying after the cancellation = %v, %v; want nothing to send", applying, err)
			}
			if ready, err := l.changes.ReadyOps(ctx, "fw1", 10); err != nil || len(ready) != 0 {
				t.Errorf("ready ops after the cancellation = %v, %v; want none", ready, err)
			}
		})
	}
}

func TestRenewalDoesNotCancelAnApplyingRemoval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, c := leased(t, hourLease)
	l.active(t, "d1", "10.10.10.101")
	c.advance(2 * time.Hour)
	reaped, err := l.hosts.Reap(ctx)
	if err != nil || len(reaped) != 1 {
		t.Fatalf("Reap = %v, %v", reaped, err)
	}
	// The engine's first session of the removal (deletes go outside-in: fw1 first).
	if applying, err := l.changes.StartApplying(ctx, "fw1", []int64{reaped[0].Change}); err != nil || len(applying) != 1 {
		t.Fatalf("StartApplying = %v, %v", applying, err)
	}
	l.session(t, "fw1", fabric.OpApplied, false)
	l.change(t, reaped[0].Change, fabric.ChangeApplying)
	if _, err := l.hosts.Renew(ctx, bob, "d1"); code(err) != fabric.ECONFLICT {
		t.Fatalf("Renew during the removal = %v, want conflict", err)
	}
	if _, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")}); code(err) != fabric.ECONFLICT {
		t.Errorf("repeat Register during the removal = %v, want conflict", err)
	}
	l.change(t, reaped[0].Change, fabric.ChangeApplying)
	// A removal someone asked for is not cancelled by a renewal either.
	l.active(t, "d2", "10.10.10.102")
	if _, err := l.hosts.Remove(ctx, bob, "d2"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.hosts.Renew(ctx, bob, "d2"); code(err) != fabric.ECONFLICT {
		t.Errorf("Renew of a host bob is removing = %v, want conflict", err)
	}
}

// TestRenewRacesTheReaper renews stale hosts while two reapers run: whichever wins each host,
// it ends active with no live change, and any removal the reaper filed for it is rejected as
// renewed. Run with -race.
func TestRenewRacesTheReaper(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, c := leased(t, hourLease)
	const hosts = 20
	for i := range hosts {
		l.register(t, "r"+strconv.Itoa(i), "10.10.12."+strconv.Itoa(10+i))
	}
	for _, dev := range []string{"sw1", "fw1"} {
		l.session(t, dev, fabric.OpApplied, false)
	}
	c.advance(2 * time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, hosts+2)
	for range 2 {
		wg.Go(func() {
			_, err := l.hosts.Reap(ctx)
			errs <- err
		})
	}
	for i := range hosts {
		wg.Go(func() {
			_, err := l.hosts.Renew(ctx, bob, "r"+strconv.Itoa(i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Reap or Renew racing each other = %v", err)
		}
	}
	for i := range hosts {
		if h := l.host(t, "r"+strconv.Itoa(i)); h.State != fabric.HostActive || h.Lease == nil || h.Lease.Stale {
			t.Errorf("host %s after the race: %s, lease %+v; want active, not stale", h.Name, h.State, h.Lease)
		}
	}
	var live, removals, renewed int
	if err := l.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status IN ('pending', 'approved', 'applying')),
		count(*) FILTER (WHERE kind = 'remove'), count(*) FILTER (WHERE kind = 'remove' AND status = 'rejected' AND reason = $1)
		FROM changes`, fabric.RenewedReason).Scan(&live, &removals, &renewed); err != nil {
		t.Fatal(err)
	}
	if live != 0 || renewed != removals {
		t.Errorf("after the race: %d live changes, %d removals of which %d rejected as renewed; want none live, every removal rejected", live, removals, renewed)
	}
	t.Logf("the reapers filed %d removals before the renewals", removals)
}
