package fabric_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/returnpath/returnpath/internal/fabric"
)

// settleOp is op seq of a three-device change (sw1, then fw1, then fw2: one stage each) with
// status s.
func settleOp(seq int, s fabric.OpStatus) fabric.ChangeOp {
	dev := []string{"sw1", "fw1", "fw2"}[seq]
	nh := []string{"10.10.10.101", "10.10.20.1", "10.10.30.1"}[seq]
	return fabric.ChangeOp{Seq: seq, Stage: seq, Device: dev, Status: s, Preview: "add on " + dev,
		Op: fabric.RouteOp{Action: fabric.ActionAdd, Route: fabric.Route{VRF: "default", Prefix: pfx("10.210.0.0/24"), NextHop: addr(nh)}}}
}

func failedOp(seq int, errText, output string) fabric.ChangeOp {
	o := settleOp(seq, fabric.OpFailed)
	o.Error, o.Output = errText, output
	return o
}

// undoOp is the rollback op that undoes settleOp(of), at position seq of the undo.
func undoOp(seq, of int, s fabric.OpStatus) fabric.ChangeOp {
	o := settleOp(of, s)
	o.Seq, o.Stage, o.Rollback, o.Op, o.Preview = seq, seq, true, o.Op.Inverse(), "undo: "+o.Preview
	return o
}

// equateAddrs compares addresses and prefixes by value.
var equateAddrs = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func TestSettle(t *testing.T) {
	t.Parallel()
	host := &fabric.Host{ID: 7, Name: "d1", Subnet: pfx("10.210.0.0/24"), State: fabric.HostPending}
	const fw2Failure = "fw2: add 10.210.0.0/24 via 10.10.30.1 vrf default: the device refused it (device said: % table is read-only)"
	tests := []struct {
		name   string
		kind   fabric.ChangeKind
		status fabric.ChangeStatus
		host   *fabric.Host
		reason string
		ops    []fabric.ChangeOp
		want   fabric.Settlement
	}{
		{
			name: "nothing sent yet: the first stage has work",
			kind: fabric.ChangeAdd, status: fabric.ChangeApproved, host: host,
			ops:  []fabric.ChangeOp{settleOp(0, fabric.OpPending), settleOp(1, fabric.OpPending), settleOp(2, fabric.OpPending)},
			want: fabric.Settlement{Ready: []string{"sw1"}},
		},
		{
			name: "first stage applied: the next stage has work",
			kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host,
			ops:  []fabric.ChangeOp{settleOp(0, fabric.OpApplied), settleOp(1, fabric.OpPending), settleOp(2, fabric.OpPending)},
			want: fabric.Settlement{Ready: []string{"fw1"}},
		},
		{
			name: "an op of an earlier stage still pending (retrying): no later stage starts",
			kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host,
			ops:  []fabric.ChangeOp{settleOp(0, fabric.OpPending), settleOp(1, fabric.OpApplied), settleOp(2, fabric.OpPending)},
			want: fabric.Settlement{Ready: []string{"sw1"}},
		},
		{
			name: "all applied, add: the host becomes active",
			kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host,
			ops:  []fabric.ChangeOp{settleOp(0, fabric.OpApplied), settleOp(1, fabric.OpApplied), settleOp(2, fabric.OpApplied)},
			want: fabric.Settlement{Final: fabric.ChangeApplied, Host: fabric.HostActive},
		},
		{
			name: "all applied, remove: the host is removed and its subnet released",
			kind: fabric.ChangeRemove, status: fabric.ChangeApplying, host: host,
			ops:  []fabric.ChangeOp{settleOp(0, fabric.OpApplied), settleOp(1, fabric.OpApplied)},
			want: fabric.Settlement{Final: fabric.ChangeApplied, Host: fabric.HostRemoved},
		},
		{
			name: "all applied, remediate: no host to move",
			kind: fabric.ChangeRemediate, status: fabric.ChangeApplying,
			ops:  []fabric.ChangeOp{settleOp(0, fabric.OpApplied)},
			want: fabric.Settlement{Final: fabric.ChangeApplied},
		},
		{
			name: "one failed with applied ops: undo them, last applied first, and skip the rest",
			kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host,
			ops: []fabric.ChangeOp{settleOp(0, fabric.OpApplied), settleOp(1, fabric.OpApplied), failedOp(2, "the device refused it", "% table is read-only")},
			want: fabric.Settlement{
				SkipPending: true,
				Undo:        []fabric.ChangeOp{undoOp(0, 1, fabric.OpPending), undoOp(1, 0, fabric.OpPending)},
				Ready:       []string{"fw1"},
				Reason:      fw2Failure,
				Event:       fabric.ChangeEvent{What: "rolling_back", Detail: "undoing 2 applied ops because " + fw2Failure},
			},
		},
		{
			name: "failed with nothing applied: rolled back at once",
			kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host,
			ops: []fabric.ChangeOp{failedOp(0, "device unreachable for more than 5m0s: dial tcp: refused", ""),
				settleOp(1, fabric.OpPending), settleOp(2, fabric.OpPending)},
			want: fabric.Settlement{SkipPending: true, Final: fabric.ChangeRolledBack,
				Reason: "nothing was applied: sw1: add 10.210.0.0/24 via 10.10.10.101 vrf default: device unreachable for more than 5m0s: dial tcp: refused"},
		},
		{
			name: "undo in progress: the undo's next stage has work",
			kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host, reason: fw2Failure,
			ops: []fabric.ChangeOp{settleOp(0, fabric.OpApplied), settleOp(1, fabric.OpApplied), failedOp(2, "the device refused it", "% table is read-only"),
				undoOp(0, 1, fabric.OpApplied), undoOp(1, 0, fabric.OpPending)},
			want: fabric.Settlement{Ready: []string{"sw1"}},
		},
		{
			name: "undo failed: failed, naming what each device holds",
			kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host, reason: fw2Failure,
			ops: []fabric.ChangeOp{settleOp(0, fabric.OpApplied), settleOp(1, fabric.OpApplied), failedOp(2, "the device refused it", "% table is read-only"),
				func() fabric.ChangeOp {
					o := undoOp(0, 1, fabric.OpFailed)
					o.Error = "session dropped"
					return o
				}(), undoOp(1, 0, fabric.OpPending)},
			want: fabric.Settlement{SkipPending: true, Final: fabric.ChangeFailed,
				Reason: fw2Failure + "; the undo failed too (fw1: delete 10.210.0.0/24 via 10.10.20.1 vrf default: session dropped); device state: " +
					"sw1 add 10.210.0.0/24 via 10.10.10.101 vrf default: applied; fw1 add 10.210.0.0/24 via 10.10.20.1 vrf default: applied; " +
					"fw2 add 10.210.0.0/24 via 10.10.30.1 vrf default: failed; fw1 undo delete 10.210.0.0/24 via 10.10.20.1 vrf default: failed; " +
					"sw1 undo delete 10.210.0.0/24 via 10.10.10.101 vrf default: pending"},
		},
		{
			name: "undo done: rolled back, the applied ops marked undone, the reason kept",
			kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host, reason: fw2Failure,
			ops: []fabric.ChangeOp{settleOp(0, fabric.OpApplied), settleOp(1, fabric.OpApplied), failedOp(2, "the device refused it", "% table is read-only"),
				undoOp(0, 1, fabric.OpApplied), undoOp(1, 0, fabric.OpApplied)},
			want: fabric.Settlement{UndoneForward: true, Final: fabric.ChangeRolledBack, Reason: fw2Failure},
		},
		{
			name: "already final (a late session's results): left alone",
			kind: fabric.ChangeAdd, status: fabric.ChangeRolledBack, host: host,
			ops:  []fabric.ChangeOp{settleOp(0, fabric.OpApplied), failedOp(1, "refused", "")},
			want: fabric.Settlement{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch := fabric.Change{ID: 1, Kind: tt.kind, Status: tt.status, Host: tt.host, Reason: tt.reason, Ops: tt.ops}
			got := fabric.Settle(ch)
			if diff := cmp.Diff(got, tt.want, equateAddrs); diff != "" {
				t.Errorf("Settle (-got +want):\n%s", diff)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	filed := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	started := filed.Add(time.Minute)
	end := started.Add(1500 * time.Millisecond)
	host := &fabric.Host{Name: "d1"}
	ops := []fabric.ChangeOp{{Device: "sw1", Status: fabric.OpApplied}, {Device: "fw1", Status: fabric.OpApplied}, {Device: "sw1", Status: fabric.OpApplied, Rollback: true}}
	tests := []struct {
		name string
		ch   fabric.Change
		want fabric.Ended
	}{
		{
			name: "timed from the first apply session",
			ch: fabric.Change{ID: 7, Kind: fabric.ChangeAdd, Status: fabric.ChangeRolledBack, Reason: "fw1 refused", Host: host, CreatedAt: filed, Ops: ops,
				Events: []fabric.ChangeEvent{{At: filed, What: "created"}, {At: started, What: "applying"}, {At: end, What: "applying"}}},
			want: fabric.Ended{ID: 7, Kind: fabric.ChangeAdd, Host: "d1", Status: fabric.ChangeRolledBack, Reason: "fw1 refused",
				Devices: []string{"sw1", "fw1"}, Took: 1500 * time.Millisecond, Ops: ops},
		},
		{
			name: "no host, never applied: timed from filing",
			ch:   fabric.Change{ID: 8, Kind: fabric.ChangeRemediate, Status: fabric.ChangeFailed, CreatedAt: filed},
			want: fabric.Ended{ID: 8, Kind: fabric.ChangeRemediate, Status: fabric.ChangeFailed, Took: end.Sub(filed)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(fabric.Summarize(tt.ch, end), tt.want, equateAddrs); diff != "" {
				t.Errorf("Summarize (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRetryWindow(t *testing.T) {
	first := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	next := first.Add(8 * time.Second)
	tests := []struct {
		name     string
		op       fabric.ChangeOp
		deadline time.Duration
		wantNext time.Time
		wantEnd  time.Time
	}{
		{name: "pending on an unreachable device", op: fabric.ChangeOp{Status: fabric.OpPending, FirstErrorAt: first, NextAttemptAt: next},
			deadline: 5 * time.Minute, wantNext: next, wantEnd: first.Add(5 * time.Minute)},
		{name: "pending, never unreachable", op: fabric.ChangeOp{Status: fabric.OpPending}, deadline: 5 * time.Minute},
		{name: "deadline unknown", op: fabric.ChangeOp{Status: fabric.OpPending, FirstErrorAt: first, NextAttemptAt: next}, wantNext: next},
		{name: "failed: no promise left", op: fabric.ChangeOp{Status: fabric.OpFailed, FirstErrorAt: first, NextAttemptAt: next}, deadline: 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fabric.RetryWindow(tt.op, tt.deadline)
			if !got.NextAttemptAt.Equal(tt.wantNext) || !got.GivesUpAt.Equal(tt.wantEnd) {
				t.Errorf("next %v, gives up %v; want %v, %v", got.NextAttemptAt, got.GivesUpAt, tt.wantNext, tt.wantEnd)
			}
		})
	}
}

func TestCountOps(t *testing.T) {
	for n, want := range map[int]string{0: "0 ops", 1: "1 op", 2: "2 ops"} {
		if got := fabric.CountOps(n); got != want {
			t.Errorf("CountOps(%d) = %q, want %q", n, got, want)
		}
	}
}
