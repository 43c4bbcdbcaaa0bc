package apply_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/returnpath/returnpath/internal/fabric"
)

// TestOpsDuringAPushGoInTheNextBatchOnTheSameSession: hosts registered while the switch is
// taking a batch go out in the very next batch, on the same session: one login, two batches.
func TestOpsDuringAPushGoInTheNextBatchOnTheSameSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, autoAll)
	ctx := context.Background()
	var once sync.Once
	e.tl.mu.Lock()
	e.tl.onApply = func(device string, _ []fabric.RouteOp) {
		if device != "sw1" {
			return
		}
		once.Do(func() {
			for i := 1; i <= 5; i++ {
				if _, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: fmt.Sprintf("late%d", i), Address: addr(fmt.Sprintf("10.10.10.%d", 100+i))}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	e.tl.mu.Unlock()
	if _, _, err := e.hosts.Register(ctx, boot, fabric.Registration{Name: "first", Address: addr("10.10.10.1")}); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(t, 6, 60*time.Second)
	e.tl.mu.Lock()
	batches := e.tl.batches["sw1"]
	e.tl.mu.Unlock()
	if batches != 2 {
		t.Errorf("sw1 took %d batches, want 2: the first host's, then the five registered during it", batches)
	}
	if got := e.sw.Sessions(); got != 1 {
		t.Errorf("sw1 logins = %d, want 1", got)
	}
	if got := testutil.ToFloat64(e.devs.Metrics.Open.WithLabelValues("sw1")); got != 1 {
		t.Errorf("sw1 sessions open = %v, want 1 (kept for the next work)", got)
	}
	if got := testutil.ToFloat64(e.devs.Metrics.Reuses.WithLabelValues("sw1")); got < 1 {
		t.Errorf("sw1 session reuses = %v, want at least 1", got)
	}
}
