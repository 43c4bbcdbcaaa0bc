package httpapi

import (
	"fmt"
	"testing"
	"time"
)

func TestRateLimiterBucket(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(60, func() time.Time { return now }) // one a second, bursts of 60
	for i := range 60 {
		if _, ok := l.take("a"); !ok {
			t.Fatalf("take %d of a full bucket refused", i)
		}
	}
	if wait, ok := l.take("a"); ok || wait != time.Second {
		t.Errorf("take from an empty bucket = %v, %v; want refused, wait 1s", wait, ok)
	}
	now = now.Add(-time.Hour) // the clock steps back: nothing refills
	if _, ok := l.take("a"); ok {
		t.Error("a clock stepping back refilled the bucket")
	}
	now = now.Add(time.Hour + 1500*time.Millisecond)
	if _, ok := l.take("a"); !ok {
		t.Error("1.5 s later the bucket has nothing")
	}
	if wait, ok := l.take("a"); ok || wait != 500*time.Millisecond {
		t.Errorf("take = %v, %v; want refused, wait 0.5s", wait, ok)
	}
}

// TestRateLimiterBounded: past maxBuckets, idle (full) buckets are dropped and busy ones kept.
func TestRateLimiterBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(2, func() time.Time { return now })
	l.take("busy")
	l.take("busy")
	for i := range maxBuckets {
		l.take(fmt.Sprintf("t%d", i))
	}
	now = now.Add(time.Minute) // every bucket full again but busy's: it takes again at once
	l.take("busy")
	l.take("busy")
	l.take("new") // past maxBuckets: prune
	if n := len(l.buckets); n > 3 {
		t.Errorf("buckets after pruning = %d, want only busy and new (and no idle ones)", n)
	}
	if _, ok := l.take("busy"); ok {
		t.Error("pruning forgot a busy token's empty bucket")
	}
}
