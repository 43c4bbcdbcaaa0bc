package fabric_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
)

func TestRetry(t *testing.T) {
	t.Parallel()
	// The plan as filed: sw1 applied, fw1 failed, and a leftover undo.
	stored := []fabric.ChangeOp{settleOp(0, fabric.OpApplied), failedOp(1, "refused", "% no"), undoOp(0, 0, fabric.OpFailed)}
	stored[0].Attempts, stored[1].Attempts, stored[0].ID = 3, 9, 41
	fresh := []fabric.ChangeOp{settleOp(0, fabric.OpPending), settleOp(1, fabric.OpPending)}
	moved := []fabric.ChangeOp{settleOp(0, fabric.OpPending), settleOp(1, fabric.OpPending)}
	moved[1].Op.Route.VRF = "blue"
	hash := fabric.PlanHash(fresh)
	host := func(s fabric.HostState) *fabric.Host {
		return &fabric.Host{ID: 7, Name: "d1", Subnet: pfx("10.210.0.0/24"), State: s}
	}
	planErr := fabric.Errorf(fabric.EINVALID, "segment rack1 is gone")
	tests := []struct {
		name    string
		kind    fabric.ChangeKind
		status  fabric.ChangeStatus
		host    *fabric.Host
		newest  int64
		overlap string
		plan    []fabric.ChangeOp
		planErr error
		want    fabric.RetryPlan
		wantErr string // the error code; "" for none
	}{
		{name: "rolled-back add of a pending host: the whole plan again, no attempts",
			kind: fabric.ChangeAdd, status: fabric.ChangeRolledBack, host: host(fabric.HostPending), newest: 1, plan: fresh,
			want: fabric.RetryPlan{Ops: fresh, PlanHash: hash, Ready: []string{"sw1"}}},
		{name: "failed add: the stored plan's statuses, attempts and undo are dropped",
			kind: fabric.ChangeAdd, status: fabric.ChangeFailed, host: host(fabric.HostPending), newest: 1, plan: stored,
			want: fabric.RetryPlan{Ops: fresh, PlanHash: hash, Ready: []string{"sw1"}}},
		{name: "rolled-back remove of a removing host",
			kind: fabric.ChangeRemove, status: fabric.ChangeRolledBack, host: host(fabric.HostRemoving), newest: 1, plan: fresh,
			want: fabric.RetryPlan{Ops: fresh, PlanHash: hash, Ready: []string{"sw1"}}},
		{name: "remediate (no host)",
			kind: fabric.ChangeRemediate, status: fabric.ChangeFailed, plan: stored,
			want: fabric.RetryPlan{Ops: fresh, PlanHash: hash, Ready: []string{"sw1"}}},
		{name: "the inventory moved: replanned, to be stored and shown",
			kind: fabric.ChangeAdd, status: fabric.ChangeRolledBack, host: host(fabric.HostPending), newest: 1, plan: moved,
			want: fabric.RetryPlan{Ops: moved, PlanHash: fabric.PlanHash(moved), Replanned: true, Ready: []string{"sw1"}}},
		{name: "pending change", kind: fabric.ChangeAdd, status: fabric.ChangePending, host: host(fabric.HostPending), newest: 1, plan: fresh,
			wantErr: fabric.ECONFLICT},
		{name: "applying change", kind: fabric.ChangeAdd, status: fabric.ChangeApplying, host: host(fabric.HostPending), newest: 1, plan: fresh,
			wantErr: fabric.ECONFLICT},
		{name: "applied change", kind: fabric.ChangeAdd, status: fabric.ChangeApplied, host: host(fabric.HostActive), newest: 1, plan: fresh,
			wantErr: fabric.ECONFLICT},
		{name: "rejected change", kind: fabric.ChangeRemove, status: fabric.ChangeRejected, host: host(fabric.HostRemoving), newest: 1, plan: fresh,
			wantErr: fabric.ECONFLICT},
		{name: "subnet released: host removed", kind: fabric.ChangeAdd, status: fabric.ChangeRolledBack, host: host(fabric.HostRemoved), newest: 2, plan: fresh,
			wantErr: fabric.ECONFLICT},
		{name: "subnet reassigned to another host", kind: fabric.ChangeAdd, status: fabric.ChangeRolledBack, host: host(fabric.HostRemoved), newest: 2,
			overlap: "d2", plan: fresh, wantErr: fabric.ECONFLICT},
		{name: "add of a host no longer pending", kind: fabric.ChangeAdd, status: fabric.ChangeFailed, host: host(fabric.HostRemoving), newest: 1, plan: fresh,
			wantErr: fabric.ECONFLICT},
		{name: "remove of a host no longer removing", kind: fabric.ChangeRemove, status: fabric.ChangeFailed, host: host(fabric.HostActive), newest: 1, plan: fresh,
			wantErr: fabric.ECONFLICT},
		{name: "the host has a newer change", kind: fabric.ChangeRemove, status: fabric.ChangeRolledBack, host: host(fabric.HostRemoving), newest: 5, plan: fresh,
			wantErr: fabric.ECONFLICT},
		{name: "the plan cannot be made now", kind: fabric.ChangeAdd, status: fabric.ChangeRolledBack, host: host(fabric.HostPending), newest: 1,
			planErr: planErr, wantErr: fabric.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch := fabric.Change{ID: 1, Kind: tt.kind, Status: tt.status, Host: tt.host, PlanHash: hash, Ops: stored}
			replans := 0
			got, err := fabric.Retry(ch, fabric.RetryState{NewestChange: tt.newest, Overlap: tt.overlap, Replan: func() ([]fabric.ChangeOp, error) {
				replans++
				return tt.plan, tt.planErr
			}})
			if code := fabric.ErrorCode(err); code != tt.wantErr {
				t.Fatalf("Retry() error = %v (code %q), want code %q", err, code, tt.wantErr)
			}
			if tt.wantErr != "" {
				if tt.planErr == nil && replans != 0 {
					t.Errorf("a refused retry computed the plan %d times, want none", replans)
				}
				if tt.planErr != nil && !errors.Is(err, planErr) {
					t.Errorf("Retry() error = %v, want the plan's error", err)
				}
				return
			}
			if diff := cmp.Diff(got, tt.want, equateAddrs); diff != "" {
				t.Errorf("Retry() (-got +want):\n%s", diff)
			}
		})
	}
}
