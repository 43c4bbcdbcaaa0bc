package fabric_test

import (
	"errors"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
)

func TestActorMaySegment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		segments []string
		seg      string
		want     bool
	}{
		{name: "unscoped may use any segment", segments: nil, seg: "rack9", want: true},
		{name: "scoped to the segment", segments: []string{"rack1", "rack2"}, seg: "rack2", want: true},
		{name: "scoped elsewhere", segments: []string{"rack1", "rack2"}, seg: "rack3", want: false},
		{name: "empty scope fails closed", segments: []string{}, seg: "rack1", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := fabric.Actor{Name: "boot", Role: fabric.RoleBootstrap, Segments: tt.segments}
			if got := a.MaySegment(tt.seg); got != tt.want {
				t.Errorf("MaySegment(%q) with scope %q = %v, want %v", tt.seg, tt.segments, got, tt.want)
			}
		})
	}
}

func TestActorPrincipal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		actor fabric.Actor
		want  string
	}{
		{name: "owner", actor: fabric.Actor{Name: "alice-laptop", Owner: "alice"}, want: "alice"},
		{name: "no owner falls back to the name", actor: fabric.Actor{Name: "legacy"}, want: "legacy"},
	}
	for _, tt := range tests {
		if got := tt.actor.Principal(); got != tt.want {
			t.Errorf("%s: Principal() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestTokenValidate(t *testing.T) {
	t.Parallel()
	inv := labInventory()
	tests := []struct {
		name      string
		token     fabric.Token
		inv       *fabric.Inventory
		wantField string // "" means valid
	}{
		{name: "unscoped bootstrap", token: fabric.Token{Name: "ci", Role: fabric.RoleBootstrap}, inv: inv},
		{name: "scoped bootstrap", token: fabric.Token{Name: "ci", Role: fabric.RoleBootstrap, Segments: []string{"rack1"}}, inv: inv},
		{name: "reviewer with owner", token: fabric.Token{Name: "alice-1", Role: fabric.RoleReviewer, Owner: "alice"}, inv: inv},
		{name: "admin with owner", token: fabric.Token{Name: "root", Role: fabric.RoleAdmin, Owner: "alice"}, inv: inv},
		{name: "viewer without owner", token: fabric.Token{Name: "grafana", Role: fabric.RoleViewer}, inv: nil},
		{name: "bad name", token: fabric.Token{Name: "Bad Name", Role: fabric.RoleViewer}, wantField: "name"},
		{name: "reserved apply", token: fabric.Token{Name: fabric.ActorApply, Role: fabric.RoleViewer}, wantField: "name"},
		{name: "reserved drift-check", token: fabric.Token{Name: fabric.ActorDriftCheck, Role: fabric.RoleReviewer, Owner: "alice"}, wantField: "name"},
		{name: "reserved system", token: fabric.Token{Name: fabric.ActorSystem, Role: fabric.RoleAdmin, Owner: "alice"}, wantField: "name"},
		{name: "reserved cli", token: fabric.Token{Name: fabric.ActorCLI, Role: fabric.RoleBootstrap}, wantField: "name"},
		{name: "unknown role", token: fabric.Token{Name: "ci", Role: "root"}, wantField: "role"},
		{name: "reviewer without owner", token: fabric.Token{Name: "rev", Role: fabric.RoleReviewer}, wantField: "owner"},
		{name: "admin without owner", token: fabric.Token{Name: "adm", Role: fabric.RoleAdmin}, wantField: "owner"},
		{name: "bad owner", token: fabric.Token{Name: "rev", Role: fabric.RoleReviewer, Owner: "Alice Smith"}, wantField: "owner"},
		{name: "reserved owner", token: fabric.Token{Name: "rev", Role: fabric.RoleReviewer, Owner: fabric.ActorApply}, wantField: "owner"},
		{name: "unknown segment", token: fabric.Token{Name: "ci", Role: fabric.RoleBootstrap, Segments: []string{"rack1", "rack9"}}, inv: inv, wantField: "segments"},
		{name: "segment without inventory", token: fabric.Token{Name: "ci", Role: fabric.RoleBootstrap, Segments: []string{"rack1"}}, inv: nil, wantField: "segments"},
		{name: "segment twice", token: fabric.Token{Name: "ci", Role: fabric.RoleBootstrap, Segments: []string{"rack1", "rack1"}}, inv: inv, wantField: "segments"},
		{name: "empty scope", token: fabric.Token{Name: "ci", Role: fabric.RoleBootstrap, Segments: []string{}}, inv: inv, wantField: "segments"},
		{name: "scoped reviewer", token: fabric.Token{Name: "rev", Role: fabric.RoleReviewer, Owner: "alice", Segments: []string{"rack1"}}, inv: inv, wantField: "segments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.token.Validate(tt.inv)
			if tt.wantField == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *fabric.Error
			if !errors.As(err, &fe) || fe.Code != fabric.EINVALID || fe.Field != tt.wantField {
				t.Errorf("Validate() = %v, want %s on %q", err, fabric.EINVALID, tt.wantField)
			}
		})
	}
}

func TestAutoApproval(t *testing.T) {
	t.Parallel()
	policy := fabric.ApprovalPolicy{AutoApprove: []fabric.AutoApproveRule{
		{Kind: fabric.ChangeAdd, Segments: []string{"rack1"}},
		{Kind: fabric.ChangeRemove},
	}}
	tests := []struct {
		name     string
		req      fabric.ChangeRequest
		wantRule string // "" means review is needed
	}{
		{name: "add in a listed segment", req: fabric.ChangeRequest{Kind: fabric.ChangeAdd, Segment: "rack1", Requester: "boot", HostCreatedBy: "boot"},
			wantRule: "policy:auto_approve[0]"},
		{name: "add in another segment", req: fabric.ChangeRequest{Kind: fabric.ChangeAdd, Segment: "rack2", Requester: "boot", HostCreatedBy: "boot"}},
		{name: "remove of the requester's own host", req: fabric.ChangeRequest{Kind: fabric.ChangeRemove, Segment: "rack2", Requester: "boot", HostCreatedBy: "boot"},
			wantRule: "policy:auto_approve[1]"},
		{name: "remove of another token's host", req: fabric.ChangeRequest{Kind: fabric.ChangeRemove, Segment: "rack2", Requester: "boot", HostCreatedBy: "other"}},
		{name: "remediate has no rule", req: fabric.ChangeRequest{Kind: fabric.ChangeRemediate, Requester: fabric.ActorDriftCheck}},
		{name: "lease expiry with on_expiry remove", req: fabric.ChangeRequest{Kind: fabric.ChangeRemove, Segment: "rack2", Requester: fabric.ActorLeaseReaper,
			HostCreatedBy: "boot", OnExpiry: fabric.LeaseRemove}, wantRule: "leases.on_expiry"},
		{name: "lease expiry with on_expiry propose, despite a remove rule", req: fabric.ChangeRequest{Kind: fabric.ChangeRemove, Segment: "rack2",
			Requester: fabric.ActorLeaseReaper, HostCreatedBy: fabric.ActorLeaseReaper, OnExpiry: fabric.LeasePropose}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rule, ok := policy.AutoApproval(tt.req)
			if rule != tt.wantRule || ok != (tt.wantRule != "") {
				t.Errorf("AutoApproval(%+v) = %q, %v; want %q", tt.req, rule, ok, tt.wantRule)
			}
		})
	}
	// A rule for every kind and segment still leaves another token's host to a reviewer.
	all := fabric.ApprovalPolicy{AutoApprove: []fabric.AutoApproveRule{{Kind: fabric.ChangeRemove, Segments: []string{"rack1"}}}}
	if rule, ok := all.AutoApproval(fabric.ChangeRequest{Kind: fabric.ChangeRemove, Segment: "rack1", Requester: "a", HostCreatedBy: "b"}); ok {
		t.Errorf("removing another token's host was auto-approved by %s", rule)
	}
}

func TestCheckApprover(t *testing.T) {
	t.Parallel()
	change := fabric.Change{ID: 7, RequestedBy: "alice-boot", RequestedOwner: "alice"}
	tests := []struct {
		name     string
		fourEyes bool
		change   fabric.Change
		approver fabric.Actor
		wantCode string // "" means allowed
	}{
		{name: "another owner", fourEyes: true, change: change,
			approver: fabric.Actor{Name: "bob-rev", Role: fabric.RoleReviewer, Owner: "bob"}},
		{name: "same owner, other token", fourEyes: true, change: change,
			approver: fabric.Actor{Name: "alice-rev", Role: fabric.RoleReviewer, Owner: "alice"}, wantCode: fabric.EFORBIDDEN},
		{name: "same token", fourEyes: true, change: fabric.Change{ID: 7, RequestedBy: "root", RequestedOwner: "alice"},
			approver: fabric.Actor{Name: "root", Role: fabric.RoleAdmin, Owner: "alice"}, wantCode: fabric.EFORBIDDEN},
		{name: "ownerless requester, approver owned by that name", fourEyes: true, change: fabric.Change{ID: 7, RequestedBy: "alice", RequestedOwner: "alice"},
			approver: fabric.Actor{Name: "alice-rev", Role: fabric.RoleReviewer, Owner: "alice"}, wantCode: fabric.EFORBIDDEN},
		{name: "change filed before owners were recorded", fourEyes: true, change: fabric.Change{ID: 7, RequestedBy: "carol"},
			approver: fabric.Actor{Name: "rev", Role: fabric.RoleReviewer, Owner: "carol"}, wantCode: fabric.EFORBIDDEN},
		{name: "same owner without four eyes", fourEyes: false, change: change,
			approver: fabric.Actor{Name: "alice-rev", Role: fabric.RoleReviewer, Owner: "alice"}},
		{name: "bootstrap may not review", fourEyes: false, change: change,
			approver: fabric.Actor{Name: "bob-boot", Role: fabric.RoleBootstrap, Owner: "bob"}, wantCode: fabric.EFORBIDDEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := fabric.ApprovalPolicy{FourEyes: tt.fourEyes}.CheckApprover(tt.change, tt.approver)
			if got := fabric.ErrorCode(err); got != tt.wantCode {
				t.Errorf("CheckApprover() = %v, want code %q", err, tt.wantCode)
			}
		})
	}
}
