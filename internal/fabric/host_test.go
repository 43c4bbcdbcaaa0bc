package fabric_test

import (
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
)

func TestNothingToRemove(t *testing.T) {
	t.Parallel()
	op := func(status fabric.OpStatus, rollback bool) fabric.ChangeOp {
		return fabric.ChangeOp{Device: "sw1", Status: status, Rollback: rollback}
	}
	add := func(status fabric.ChangeStatus, ops ...fabric.ChangeOp) fabric.Change {
		return fabric.Change{Kind: fabric.ChangeAdd, Status: status, Ops: ops}
	}
	tests := []struct {
		name    string
		state   fabric.HostState
		changes []fabric.Change
		want    bool
	}{
		{name: "add rejected", state: fabric.HostPending, changes: []fabric.Change{add(fabric.ChangeRejected, op(fabric.OpSkipped, false))}, want: true},
		{name: "add pending (superseded)", state: fabric.HostPending, changes: []fabric.Change{add(fabric.ChangePending, op(fabric.OpPending, false))}, want: true},
		{name: "no change at all", state: fabric.HostPending, want: true},
		{name: "rolled back, nothing applied", state: fabric.HostPending,
			changes: []fabric.Change{add(fabric.ChangeRolledBack, op(fabric.OpFailed, false), op(fabric.OpSkipped, false))}, want: true},
		{name: "rolled back, every applied op undone", state: fabric.HostPending,
			changes: []fabric.Change{add(fabric.ChangeRolledBack, op(fabric.OpRolledBack, false), op(fabric.OpFailed, false), op(fabric.OpApplied, true))}, want: true},
		{name: "rolled back, an op still applied", state: fabric.HostPending,
			changes: []fabric.Change{add(fabric.ChangeRolledBack, op(fabric.OpApplied, false), op(fabric.OpFailed, false))}, want: false},
		{name: "rolled back, an undo not applied", state: fabric.HostPending,
			changes: []fabric.Change{add(fabric.ChangeRolledBack, op(fabric.OpRolledBack, false), op(fabric.OpFailed, true))}, want: false},
		{name: "add failed (the undo failed)", state: fabric.HostPending, changes: []fabric.Change{add(fabric.ChangeFailed, op(fabric.OpFailed, false))}, want: false},
		{name: "add applying", state: fabric.HostPending, changes: []fabric.Change{add(fabric.ChangeApplying, op(fabric.OpPending, false))}, want: false},
		{name: "add approved", state: fabric.HostPending, changes: []fabric.Change{add(fabric.ChangeApproved, op(fabric.OpPending, false))}, want: false},
		{name: "active host", state: fabric.HostActive, changes: []fabric.Change{add(fabric.ChangeApplied, op(fabric.OpApplied, false))}, want: false},
		{name: "removing after a rejected add and a pending remove", state: fabric.HostRemoving,
			changes: []fabric.Change{add(fabric.ChangeRejected), {Kind: fabric.ChangeRemove, Status: fabric.ChangePending}}, want: true},
		{name: "removing after an applied add", state: fabric.HostRemoving,
			changes: []fabric.Change{add(fabric.ChangeApplied, op(fabric.OpApplied, false)), {Kind: fabric.ChangeRemove, Status: fabric.ChangeRolledBack}}, want: false},
	}
	for _, tt := range tests {
		if got := fabric.NothingToRemove(fabric.Host{Name: "d1", State: tt.state}, tt.changes); got != tt.want {
			t.Errorf("%s: NothingToRemove = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestHostNote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		state  fabric.HostState
		change *fabric.ChangeRef
		want   []string // parts of the note; none: no note
	}{
		{name: "no change", state: fabric.HostPending},
		{name: "awaiting review", state: fabric.HostPending, change: &fabric.ChangeRef{ID: 3, Status: fabric.ChangePending}},
		{name: "applied", state: fabric.HostActive, change: &fabric.ChangeRef{ID: 3, Status: fabric.ChangeApplied}},
		{name: "rejected", state: fabric.HostPending, change: &fabric.ChangeRef{ID: 3, Status: fabric.ChangeRejected, Reason: "wrong rack"},
			want: []string{"change 3", "rejected: wrong rack", "will not be installed", "Remove the host", "10.210.0.0/24"}},
		{name: "rolled back", state: fabric.HostPending, change: &fabric.ChangeRef{ID: 3, Status: fabric.ChangeRolledBack, Reason: "sw1 refused"},
			want: []string{"rolled back: sw1 refused", "Retry"}},
		{name: "failed", state: fabric.HostPending, change: &fabric.ChangeRef{ID: 3, Status: fabric.ChangeFailed},
			want: []string{"failed", "devices may hold part of it"}},
		{name: "remove rejected", state: fabric.HostRemoving, change: &fabric.ChangeRef{ID: 4, Status: fabric.ChangeRejected},
			want: []string{"removing this host's return routes was rejected", "Remove it again"}},
	}
	for _, tt := range tests {
		h := fabric.Host{Name: "d1", State: tt.state, Subnet: pfx("10.210.0.0/24"), Change: tt.change}
		note := h.Note()
		if len(tt.want) == 0 && note != "" {
			t.Errorf("%s: Note() = %q, want none", tt.name, note)
		}
		for _, w := range tt.want {
			if !strings.Contains(note, w) {
				t.Errorf("%s: Note() = %q, want it to say %q", tt.name, note, w)
			}
		}
	}
}

func TestReleaseAtOnce(t *testing.T) {
	t.Parallel()
	h := fabric.Host{Name: "d1", State: fabric.HostPending, CreatedBy: "boot-a"}
	rejected := []fabric.Change{{Kind: fabric.ChangeAdd, Status: fabric.ChangeRejected}}
	applied := []fabric.Change{{Kind: fabric.ChangeAdd, Status: fabric.ChangeApplied}}
	tests := []struct {
		name    string
		actor   fabric.Actor
		changes []fabric.Change
		want    bool
	}{
		{name: "the registering token", actor: fabric.Actor{Name: "boot-a", Role: fabric.RoleBootstrap}, changes: rejected, want: true},
		{name: "an admin", actor: fabric.Actor{Name: "root", Role: fabric.RoleAdmin}, changes: rejected, want: true},
		{name: "another bootstrap token", actor: fabric.Actor{Name: "boot-b", Role: fabric.RoleBootstrap}, changes: rejected, want: false},
		{name: "routes on devices", actor: fabric.Actor{Name: "boot-a", Role: fabric.RoleBootstrap}, changes: applied, want: false},
	}
	for _, tt := range tests {
		if got := fabric.ReleaseAtOnce(h, tt.changes, tt.actor); got != tt.want {
			t.Errorf("%s: ReleaseAtOnce = %v, want %v", tt.name, got, tt.want)
		}
	}
}
