package verify_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/verify"
)

// countOpens wraps every factory of f's verifier so that it counts sessions opened per device.
func countOpens(f *fleet) map[string]*atomic.Int64 {
	counts := map[string]*atomic.Int64{}
	for name := range f.fakes {
		counts[name] = &atomic.Int64{}
	}
	for p, fac := range f.v.Devices.Factories {
		open := fac.Open
		fac.Open = func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
			counts[cfg.Name].Add(1)
			return open(ctx, cfg)
		}
		f.v.Devices.Factories[p] = fac
	}
	return counts
}

// TestVerifyConcurrentCallersShareReadings: 40 concurrent GET /v1/verify used to open 40
// sessions to each device. Callers now share one reading per device while it is at most
// MaxAge old; an admin's Fresh call, or an older reading, reads again.
func TestVerifyConcurrentCallersShareReadings(t *testing.T) {
	t.Parallel()
	f := newFleet()
	for _, fk := range f.fakes {
		fk.Set(drivertest.WithLatency(0, 50*time.Millisecond)) // all callers arrive while the read is in flight
	}
	opens := countOpens(f)
	var mu sync.Mutex
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	f.v.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f.v.MaxAge = 5 * time.Second
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			r, err := f.v.Verify(context.Background(), verify.Filter{})
			if err != nil {
				t.Error(err)
				return
			}
			if !r.InSync {
				t.Errorf("report not in sync: %+v", r)
			}
		})
	}
	wg.Wait()
	for name, n := range opens {
		if got := n.Load(); got != 1 {
			t.Errorf("%s: %d sessions for 40 concurrent verifications, want 1", name, got)
		}
	}
	steps := []struct {
		name    string
		advance time.Duration
		fresh   bool
		want    int64 // sessions per device so far
	}{
		{name: "within max_age", advance: 4 * time.Second, want: 1},
		{name: "fresh", fresh: true, want: 2},
		{name: "older than max_age", advance: 6 * time.Second, want: 3},
	}
	for _, s := range steps {
		mu.Lock()
		now = now.Add(s.advance)
		mu.Unlock()
		r, err := f.v.Verify(context.Background(), verify.Filter{Fresh: s.fresh})
		if err != nil {
			t.Fatal(err)
		}
		for name, n := range opens {
			if got := n.Load(); got != s.want {
				t.Errorf("%s: %s: %d sessions in all, want %d", s.name, name, got, s.want)
			}
		}
		if d := r.Devices[0]; d.ReadAt.IsZero() || d.ReadAt.After(now) {
			t.Errorf("%s: read_at %v, want set and not after %v", s.name, d.ReadAt, now)
		}
	}
}

// TestVerifyUnreachableIsNotHammered: a device that cannot be read is not logged in to again
// by every caller within MaxAge either.
func TestVerifyUnreachableIsNotHammered(t *testing.T) {
	t.Parallel()
	f := newFleet()
	f.fakes["sw1"].Set(drivertest.WithUnreachable(true))
	opens := countOpens(f)
	f.v.MaxAge = time.Minute
	for range 5 {
		r, err := f.v.Verify(context.Background(), verify.Filter{Device: "sw1"})
		if err != nil {
			t.Fatal(err)
		}
		if d := r.Devices[0]; d.Status != verify.StatusUnreachable {
			t.Errorf("sw1 = %+v, want unreachable", d)
		}
	}
	if got := opens["sw1"].Load(); got != 1 {
		t.Errorf("%d logins to an unreachable device for 5 verifications within max_age, want 1", got)
	}
}

// TestVerifyForgetAfterAChange: after the apply engine changed a device (Forget), the next
// verification reads that device again, and only that one.
func TestVerifyForgetAfterAChange(t *testing.T) {
	t.Parallel()
	f := newFleet()
	opens := countOpens(f)
	f.v.MaxAge = time.Minute
	for range 2 {
		if _, err := f.v.Verify(context.Background(), verify.Filter{}); err != nil {
			t.Fatal(err)
		}
	}
	f.v.Forget("sw1")
	if _, err := f.v.Verify(context.Background(), verify.Filter{}); err != nil {
		t.Fatal(err)
	}
	for name, n := range opens {
		want := int64(1)
		if name == "sw1" {
			want = 2
		}
		if got := n.Load(); got != want {
			t.Errorf("%s: %d sessions, want %d", name, got, want)
		}
	}
}
