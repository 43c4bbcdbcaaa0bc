package session_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
	"github.com/returnpath/returnpath/internal/session"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// processes opens n "processes" (each its own connection pool) on one test database, each
// with its own Devices for one fake device sw1 whose budget is max.
func processes(t *testing.T, n, max int) []*session.Devices {
	t.Helper()
	url := pgtest.URL(t)
	fac := drivertest.FakeFactory(drivertest.NewFake("sw1"))
	var out []*session.Devices
	for range n {
		db, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		out = append(out, &session.Devices{
			Configs:     map[string]drivers.Config{"sw1": {Name: "sw1", Platform: fabric.PlatformFRR}},
			Factories:   map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac},
			MaxSessions: map[string]int{"sw1": max},
			Budget:      db,
		})
	}
	return out
}

// TestBudgetHoldsAcrossProcesses: callers in two processes hold sw1's slots; at no time do
// more than max of them hold one, and every caller gets its turn.
func TestBudgetHoldsAcrossProcesses(t *testing.T) {
	t.Parallel()
	for _, budget := range []int{1, 2} {
		procs := processes(t, 2, budget)
		var mu sync.Mutex
		cur, peak, served := 0, 0, 0
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				l, err := procs[i%2].Acquire(ctx, "sw1")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				cur++
				peak = max(peak, cur)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // hold the slot while others try
				mu.Lock()
				cur--
				served++
				mu.Unlock()
				l.Release()
			})
		}
		wg.Wait()
		if peak != budget || served != 12 {
			t.Errorf("max_sessions %d: at most %d held a slot at once and %d of 12 were served, want %d and 12", budget, peak, served, budget)
		}
	}
}

// TestBusyWhenTheBudgetStaysTaken: a caller that cannot get a slot before its context ends
// gets a *BusyError (nothing was sent to the device), and the slot is free again once
// released.
func TestBusyWhenTheBudgetStaysTaken(t *testing.T) {
	t.Parallel()
	procs := processes(t, 2, 1)
	held, err := procs[0].Acquire(context.Background(), "sw1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := procs[1].Acquire(ctx, "sw1"); !session.IsBusy(err) {
		t.Fatalf("Acquire while the only slot is held elsewhere = %v, want a BusyError", err)
	}
	held.Release()
	held.Release() // harmless twice
	l, err := procs[1].Acquire(context.Background(), "sw1")
	if err != nil {
		t.Fatalf("Acquire after release = %v", err)
	}
	l.Release()
	if _, err := procs[1].Acquire(context.Background(), "nope"); drivers.KindOf(err) != drivers.KindInternal {
		t.Errorf("Acquire of an unconfigured device = %v, want an internal driver error", err)
	}
}
