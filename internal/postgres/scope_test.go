package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// twoRacks is a fabric of two segments sharing one pool: rack1 (10.10.0.0/16) and rack2
// (10.20.0.0/16).
func twoRacks() *fabric.Inventory {
	inv := inventory("10.210.0.0/16")
	rack2 := inv.Segments[0]
	rack2.Name, rack2.Hosts = "rack2", pfx("10.20.0.0/16")
	inv.Segments = append(inv.Segments, rack2)
	return inv
}

// newRegistry returns a registry of twoRacks that files changes under policy (no apply engine:
// approved changes just stay approved).
func newRegistry(t *testing.T, policy fabric.ApprovalPolicy) (*postgres.DB, *postgres.Hosts, *postgres.Changes) {
	t.Helper()
	db := pgtest.Open(t)
	inv := twoRacks()
	if err := db.SyncInventory(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	preview := func(dev string, ops []fabric.RouteOp) ([]string, error) { return []string{fmt.Sprint(dev, ops)}, nil }
	changes := postgres.NewChanges(db, inv, preview, policy)
	hosts := postgres.NewHosts(db, inv)
	hosts.SetChanges(changes)
	return db, hosts, changes
}

func hostState(t *testing.T, db *postgres.DB, name string) string {
	t.Helper()
	var state string
	err := db.Pool.QueryRow(context.Background(), `SELECT coalesce(max(state), 'none') FROM hosts WHERE name = $1`, name).Scan(&state)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func newestChange(t *testing.T, changes *postgres.Changes, h fabric.Host) fabric.Change {
	t.Helper()
	id, _, _, ok := changes.HostChange(context.Background(), h.ID)
	if !ok {
		t.Fatalf("host %s has no change", h.Name)
	}
	c, err := changes.Change(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenOwnerAndScope(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	inv := twoRacks()
	scoped := fabric.Token{Name: "rack1-boot", Role: fabric.RoleBootstrap, Owner: "team-a", Segments: []string{"rack1"}}
	secret, err := db.CreateToken(ctx, fabric.ActorCLI, scoped, inv)
	if err != nil {
		t.Fatal(err)
	}
	// The second call is answered from the auth cache, which must keep the scope too.
	for i := range 2 {
		a, err := db.Authenticate(ctx, secret)
		if err != nil || a.Name != scoped.Name || a.Owner != "team-a" || !slices.Equal(a.Segments, []string{"rack1"}) {
			t.Fatalf("Authenticate() #%d = %+v, %v", i+1, a, err)
		}
		if a.MaySegment("rack2") {
			t.Errorf("Authenticate() #%d: the actor may use rack2", i+1)
		}
	}
	rev, err := db.CreateToken(ctx, fabric.ActorCLI, fabric.Token{Name: "alice-rev", Role: fabric.RoleReviewer, Owner: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := db.Authenticate(ctx, rev); err != nil || a.Segments != nil || a.Owner != "alice" {
		t.Errorf("Authenticate(unscoped) = %+v, %v; want every segment", a, err)
	}

	refused := []struct {
		name      string
		token     fabric.Token
		wantField string
	}{
		{name: "reserved name", token: fabric.Token{Name: fabric.ActorApply, Role: fabric.RoleViewer}, wantField: "name"},
		{name: "reviewer without owner", token: fabric.Token{Name: "bob-rev", Role: fabric.RoleReviewer}, wantField: "owner"},
		{name: "unknown segment", token: fabric.Token{Name: "r9", Role: fabric.RoleBootstrap, Segments: []string{"rack9"}}, wantField: "segments"},
	}
	for _, tt := range refused {
		_, err := db.CreateToken(ctx, fabric.ActorCLI, tt.token, inv)
		var fe *fabric.Error
		if !errors.As(err, &fe) || fe.Code != fabric.EINVALID || fe.Field != tt.wantField {
			t.Errorf("%s: CreateToken() = %v, want %s on %q", tt.name, err, fabric.EINVALID, tt.wantField)
		}
	}

	tokens, err := db.Tokens(ctx)
	if err != nil || len(tokens) != 2 {
		t.Fatalf("Tokens() = %+v, %v; want the two created", tokens, err)
	}
	if tokens[0].Name != "alice-rev" || tokens[0].Owner != "alice" || tokens[0].Segments != nil {
		t.Errorf("Tokens()[0] = %+v", tokens[0])
	}
	if tokens[1].Name != "rack1-boot" || tokens[1].Owner != "team-a" || !slices.Equal(tokens[1].Segments, []string{"rack1"}) {
		t.Errorf("Tokens()[1] = %+v", tokens[1])
	}
}

// TestScopedRegisterAndRemove: a token scoped to rack1 registers and removes hosts in rack1
// only, and removing a host another token registered always waits for review.
func TestScopedRegisterAndRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Adds wait for review (with no apply engine, an approved add would block the removals).
	autoRemove := fabric.ApprovalPolicy{FourEyes: true, AutoApprove: []fabric.AutoApproveRule{{Kind: fabric.ChangeRemove}}}
	db, hosts, changes := newRegistry(t, autoRemove)
	rack1 := fabric.Actor{Name: "rack1-boot", Role: fabric.RoleBootstrap, Segments: []string{"rack1"}}

	own, _, err := hosts.Register(ctx, rack1, fabric.Registration{Name: "own", Address: addr("10.10.0.1")})
	if err != nil {
		t.Fatalf("Register() in scope = %v", err)
	}
	_, _, err = hosts.Register(ctx, rack1, fabric.Registration{Name: "far", Address: addr("10.20.0.1")})
	var fe *fabric.Error
	if !errors.As(err, &fe) || fe.Code != fabric.EFORBIDDEN || !strings.Contains(fe.Message, "rack2") {
		t.Errorf("Register() outside the scope = %v, want forbidden naming rack2", err)
	}
	if got := hostState(t, db, "far"); got != "none" {
		t.Errorf("the refused registration left host far %s", got)
	}

	// Hosts of the unscoped bob: one in each rack.
	foreign, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "foreign", Address: addr("10.10.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "other-rack", Address: addr("10.20.0.2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := hosts.Remove(ctx, rack1, "other-rack"); fabric.ErrorCode(err) != fabric.EFORBIDDEN || !strings.Contains(fabric.ErrorMessage(err), "rack2") {
		t.Errorf("Remove() outside the scope = %v, want forbidden naming rack2", err)
	}
	if got := hostState(t, db, "other-rack"); got != string(fabric.HostPending) {
		t.Errorf("the refused removal left host other-rack %s", got)
	}

	// Neither host's add was approved, so nothing of them is on any device.
	tests := []struct {
		name       string
		host       fabric.Host
		wantState  fabric.HostState
		wantKind   fabric.ChangeKind
		wantStatus fabric.ChangeStatus
	}{
		{name: "own host: removed at once, its add superseded", host: own,
			wantState: fabric.HostRemoved, wantKind: fabric.ChangeAdd, wantStatus: fabric.ChangeRejected},
		{name: "another token's host: a reviewer must approve", host: foreign,
			wantState: fabric.HostRemoving, wantKind: fabric.ChangeRemove, wantStatus: fabric.ChangePending},
	}
	for _, tt := range tests {
		h, err := hosts.Remove(ctx, rack1, tt.host.Name)
		if err != nil || h.State != tt.wantState {
			t.Errorf("%s: Remove() = %v, %v; want %s", tt.name, h.State, err, tt.wantState)
			continue
		}
		c := newestChange(t, changes, h)
		if c.Kind != tt.wantKind || c.Status != tt.wantStatus {
			t.Errorf("%s: newest change is %s %s (approved by %q), want %s %s", tt.name, c.Kind, c.Status, c.ApprovedBy, tt.wantKind, tt.wantStatus)
		}
	}
}

// TestFourEyesComparesOwners: two tokens of one owner cannot approve each other's changes.
func TestFourEyesComparesOwners(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, hosts, changes := newRegistry(t, fabric.ApprovalPolicy{FourEyes: true})
	requester := fabric.Actor{Name: "alice-admin", Role: fabric.RoleAdmin, Owner: "alice"}
	h, _, err := hosts.Register(ctx, requester, fabric.Registration{Name: "d1", Address: addr("10.10.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	c := newestChange(t, changes, h)
	if c.Status != fabric.ChangePending || c.RequestedBy != "alice-admin" || c.RequestedOwner != "alice" {
		t.Fatalf("change = %s by %q for %q, want pending by alice-admin for alice", c.Status, c.RequestedBy, c.RequestedOwner)
	}
	sameOwner := fabric.Actor{Name: "alice-rev", Role: fabric.RoleReviewer, Owner: "alice"}
	if _, err := changes.Approve(ctx, sameOwner, c.ID, c.PlanHash); fabric.ErrorCode(err) != fabric.EFORBIDDEN {
		t.Errorf("Approve() by the same owner's other token = %v, want forbidden", err)
	}
	if again, err := changes.Change(ctx, c.ID); err != nil || again.Status != fabric.ChangePending {
		t.Errorf("after the refusal the change is %s, %v; want pending", again.Status, err)
	}
	other := fabric.Actor{Name: "bob-rev", Role: fabric.RoleReviewer, Owner: "bob"}
	if got, err := changes.Approve(ctx, other, c.ID, c.PlanHash); err != nil || got.Status != fabric.ChangeApproved {
		t.Errorf("Approve() by another owner = %v, %v", got.Status, err)
	}
}

// TestPendingCap: past limits.pending_per_segment pending hosts in a segment, new
// registrations there are refused with a retry hint; repeats and other segments are not.
func TestPendingCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, hosts, _ := newRegistry(t, fabric.ApprovalPolicy{FourEyes: true})
	hosts.SetPendingCap(2)
	for i := range 2 {
		if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: fmt.Sprintf("d%d", i), Address: addr(fmt.Sprintf("10.10.0.%d", i+1))}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.0.3")})
	var le *fabric.LimitError
	if !errors.As(err, &le) || le.Field != "limits.pending_per_segment" || le.RetryAfter <= 0 || fabric.ErrorCode(err) != fabric.ETOOMANY {
		t.Fatalf("Register() past the cap = %v, want a limit error on limits.pending_per_segment", err)
	}
	if got := hostState(t, db, "d2"); got != "none" {
		t.Errorf("the refused registration left host d2 %s", got)
	}
	if h, created, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d0", Address: addr("10.10.0.1")}); err != nil || created || h.Name != "d0" {
		t.Errorf("repeat Register(d0) past the cap = %v, %v, %v; want the host again", h.Name, created, err)
	}
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "r2", Address: addr("10.20.0.1")}); err != nil {
		t.Errorf("Register() in another segment = %v", err)
	}
	if _, err := hosts.Remove(ctx, bob, "d0"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.0.3")}); err != nil {
		t.Errorf("Register() once a place is free = %v", err)
	}
}
