package fabric_test

import (
	"errors"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

func TestLeasePolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		p          fabric.LeasePolicy
		wantFields []string
	}{
		{name: "ok", p: fabric.LeasePolicy{TTL: 24 * time.Hour, Grace: time.Hour, OnExpiry: fabric.LeasePropose}},
		{name: "a minute, no grace", p: fabric.LeasePolicy{TTL: time.Minute, OnExpiry: fabric.LeaseRemove}},
		{name: "ttl under a minute", p: fabric.LeasePolicy{TTL: 59 * time.Second, OnExpiry: fabric.LeaseRemove}, wantFields: []string{"leases.ttl"}},
		{name: "negative grace", p: fabric.LeasePolicy{TTL: time.Hour, Grace: -time.Second, OnExpiry: fabric.LeaseRemove}, wantFields: []string{"leases.grace"}},
		{name: "unknown action", p: fabric.LeasePolicy{TTL: time.Hour, OnExpiry: "delete"}, wantFields: []string{"leases.on_expiry"}},
		{name: "everything wrong", p: fabric.LeasePolicy{TTL: time.Second, Grace: -1}, wantFields: []string{"leases.ttl", "leases.grace", "leases.on_expiry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := tt.p.Validate()
			if len(errs) != len(tt.wantFields) {
				t.Fatalf("Validate() = %v, want errors for %v", errs, tt.wantFields)
			}
			for i, err := range errs {
				var fe *fabric.Error
				if !errors.As(err, &fe) || fe.Field != tt.wantFields[i] || fe.Code != fabric.EINVALID {
					t.Errorf("error %d = %v, want an invalid %s", i, err, tt.wantFields[i])
				}
			}
		})
	}
}

func TestLease(t *testing.T) {
	t.Parallel()
	p := fabric.LeasePolicy{TTL: time.Hour, Grace: 10 * time.Minute, OnExpiry: fabric.LeasePropose}
	renewed := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		now       time.Time
		wantStale bool
	}{
		{name: "just renewed", now: renewed},
		{name: "expired, within grace", now: renewed.Add(65 * time.Minute)},
		{name: "exactly at the end of grace", now: renewed.Add(70 * time.Minute)},
		{name: "past grace", now: renewed.Add(70*time.Minute + time.Nanosecond), wantStale: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := p.Lease(renewed, tt.now)
			if !l.RenewedAt.Equal(renewed) || !l.ExpiresAt.Equal(renewed.Add(time.Hour)) || l.Stale != tt.wantStale {
				t.Errorf("Lease(%s, %s) = %+v, want expiry %s, stale %v", renewed, tt.now, l, renewed.Add(time.Hour), tt.wantStale)
			}
			// StaleBefore is the same rule in the form the database query uses.
			if byBound := renewed.Before(p.StaleBefore(tt.now)); byBound != tt.wantStale {
				t.Errorf("renewed before StaleBefore(%s) = %v, want %v", tt.now, byBound, tt.wantStale)
			}
		})
	}
	if (fabric.LeasePolicy{}).Enabled() {
		t.Error("the zero policy is enabled; want leases off")
	}
}

func TestReapable(t *testing.T) {
	t.Parallel()
	for state, want := range map[fabric.HostState]bool{fabric.HostPending: false, fabric.HostActive: true, fabric.HostRemoving: false, fabric.HostRemoved: false} {
		if got := fabric.Reapable(fabric.Host{State: state}); got != want {
			t.Errorf("Reapable(%s) = %v, want %v", state, got, want)
		}
	}
}

func TestRenew(t *testing.T) {
	t.Parallel()
	removal := func(by string, s fabric.ChangeStatus) *fabric.Change {
		return &fabric.Change{ID: 7, Kind: fabric.ChangeRemove, RequestedBy: by, Status: s}
	}
	tests := []struct {
		name     string
		state    fabric.HostState
		removal  *fabric.Change
		want     fabric.RenewAction
		wantCode string
	}{
		{name: "active extends", state: fabric.HostActive, want: fabric.RenewExtend},
		{name: "pending extends", state: fabric.HostPending, want: fabric.RenewExtend},
		{name: "expiry removal pending is cancelled", state: fabric.HostRemoving, removal: removal(fabric.ActorLeaseReaper, fabric.ChangePending), want: fabric.RenewCancel},
		{name: "expiry removal approved, not started, is cancelled", state: fabric.HostRemoving, removal: removal(fabric.ActorLeaseReaper, fabric.ChangeApproved), want: fabric.RenewCancel},
		{name: "expiry removal applying must finish", state: fabric.HostRemoving, removal: removal(fabric.ActorLeaseReaper, fabric.ChangeApplying), wantCode: fabric.ECONFLICT},
		{name: "a person's removal is not cancelled", state: fabric.HostRemoving, removal: removal("bob", fabric.ChangePending), wantCode: fabric.ECONFLICT},
		{name: "removing with no live change", state: fabric.HostRemoving, wantCode: fabric.ECONFLICT},
		{name: "removed", state: fabric.HostRemoved, wantCode: fabric.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := fabric.Renew(fabric.Host{Name: "d1", State: tt.state}, tt.removal)
			if fabric.ErrorCode(err) != tt.wantCode && !(err == nil && tt.wantCode == "") {
				t.Fatalf("Renew() error = %v, want code %q", err, tt.wantCode)
			}
			if err == nil && got != tt.want {
				t.Errorf("Renew() = %v, want %v", got, tt.want)
			}
		})
	}
}
