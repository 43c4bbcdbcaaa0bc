package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// recordingEnqueuer records the devices it is asked to queue a job for.
type recordingEnqueuer struct {
	mu    sync.Mutex
	woken []string
}

func (r *recordingEnqueuer) EnqueueTx(_ context.Context, _ pgx.Tx, devices []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.woken = append(r.woken, devices...)
	return nil
}

func (r *recordingEnqueuer) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.woken
	r.woken = nil
	slices.Sort(out)
	return out
}

// TestWakeQueuesOneJobPerDevice: however many changes want a device, one job is queued for it
// until that job begins its work; then the next change queues a new one.
func TestWakeQueuesOneJobPerDevice(t *testing.T) {
	t.Parallel()
	l := newLifecycle(t)
	enq := &recordingEnqueuer{}
	l.changes.SetEnqueuer(enq)
	ctx := context.Background()
	for i, a := range []string{"10.10.10.1", "10.10.10.2", "10.10.10.3"} {
		if _, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "h" + string(rune('a'+i)), Address: addr(a)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := enq.take(); !slices.Equal(got, []string{"sw1"}) {
		t.Fatalf("jobs queued for three auto-approved registrations: %v, want one for sw1", got)
	}
	begun, err := l.changes.BeginDeviceWork(ctx, "sw1")
	if err != nil || begun.Wait != 0 {
		t.Fatalf("BeginDeviceWork = %+v, %v", begun, err)
	}
	if _, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "hd", Address: addr("10.10.10.4")}); err != nil {
		t.Fatal(err)
	}
	if got := enq.take(); !slices.Equal(got, []string{"sw1"}) {
		t.Errorf("jobs queued after the job began: %v, want a new one for sw1", got)
	}
}

// TestWakeRepairsALostJob: a device whose flag says a job is queued, with no such job (River
// discarded it, or the process that fetched it died before it began), gets a new one from the
// kicker, unless a live job holds the device's apply lock.
func TestWakeRepairsALostJob(t *testing.T) {
	t.Parallel()
	l := newLifecycle(t)
	enq := &recordingEnqueuer{}
	l.changes.SetEnqueuer(enq)
	ctx := context.Background()
	if _, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "h1", Address: addr("10.10.10.1")}); err != nil {
		t.Fatal(err)
	}
	enq.take() // sw1's flag is now set, and the recorder queued no River job
	if err := l.changes.WakeDevicesWithWork(ctx, "returnpath_apply_device"); err != nil {
		t.Fatal(err)
	}
	// A flag younger than the grace may belong to a live job that has not locked yet.
	if got := enq.take(); !slices.Equal(got, []string{"fw1"}) {
		t.Errorf("woken while sw1's flag is fresh: %v, want [fw1]", got)
	}
	if _, err := l.db.Pool.Exec(ctx, `UPDATE device_schedule SET queued_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}

	unlock, ok, err := l.db.TryLockDevice(ctx, "sw1")
	if err != nil || !ok {
		t.Fatalf("TryLockDevice = %v, %v", ok, err)
	}
	if err := l.changes.WakeDevicesWithWork(ctx, "returnpath_apply_device"); err != nil {
		t.Fatal(err)
	}
	// fw1's flag is old and its job lost too, so it gets a new one; sw1 is held by a live
	// job and is left alone.
	if got := enq.take(); !slices.Equal(got, []string{"fw1"}) {
		t.Errorf("woken while sw1's apply lock is held: %v, want [fw1]", got)
	}
	if _, err := l.db.Pool.Exec(ctx, `UPDATE device_schedule SET queued_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := l.changes.WakeDevicesWithWork(ctx, "returnpath_apply_device"); err != nil {
		t.Fatal(err)
	}
	// Both flags are set and no River job exists for either (the recorder queues none).
	if got := enq.take(); !slices.Equal(got, []string{"fw1", "sw1"}) {
		t.Errorf("woken once nobody holds sw1: %v, want [fw1 sw1]", got)
	}
}

// TestWakeNeverDeadlocks: registrations that wake a device while its job keeps beginning its
// work (clearing the flag) never deadlock. A registration that found the flag set share-locks
// the device's row; when the job cleared the flag in between, the lock it took on the newer
// row was kept though the row did not match, and two such registrations then both waited to
// update the row they both share-locked (PostgreSQL's deadlock detector failed one of them:
// a 500 to the host). Now such a lock is given back before the flag is set.
func TestWakeNeverDeadlocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	inv := twoHopInventory("default")
	inv.Pools[0].Prefix = pfx("10.0.0.0/8")
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	hosts, changes := postgres.NewHosts(db, inv), postgres.NewChanges(db, inv, preview, autoAll)
	hosts.SetChanges(changes)
	changes.SetEnqueuer(&recordingEnqueuer{})
	stop := make(chan struct{})
	var job sync.WaitGroup
	job.Go(func() { // the device's job, beginning its work again and again
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := changes.BeginDeviceWork(ctx, "sw1"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	const n = 1500
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var failed atomic.Int64
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			reg := fabric.Registration{Name: fmt.Sprintf("h%04d", i), Address: addr(fmt.Sprintf("10.10.%d.%d", 1+i/250, 1+i%250))}
			if _, _, err := hosts.Register(ctx, bob, reg); err != nil && failed.Add(1) <= 5 {
				t.Errorf("%s: %v", reg.Name, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	job.Wait()
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d registrations failed", f, n)
	}
}
