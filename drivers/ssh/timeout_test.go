package ssh

import (
	"testing"
	"time"

	"github.com/returnpath/returnpath/drivers"
)

// TestApplyTimeout: a batch's push gets the op timeout once per 1,000 lines begun, and a
// small batch exactly the op timeout (the fault tests' timeouts stay what they set).
func TestApplyTimeout(t *testing.T) {
	for _, tc := range []struct {
		op   time.Duration
		n    int
		want time.Duration
	}{
		{op: 0, n: 1, want: DefaultOpTimeout},
		{op: 3 * time.Second, n: 0, want: 3 * time.Second},
		{op: 3 * time.Second, n: 1000, want: 3 * time.Second},
		{op: 3 * time.Second, n: 1001, want: 6 * time.Second},
		{op: 30 * time.Second, n: 5000, want: 150 * time.Second},
	} {
		if got := applyTimeout(drivers.Config{OpTimeout: tc.op}, tc.n); got != tc.want {
			t.Errorf("applyTimeout(op %s, %d ops) = %s, want %s", tc.op, tc.n, got, tc.want)
		}
	}
}
