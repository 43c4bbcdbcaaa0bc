package fabric

import (
	"fmt"
	"time"
)

// LeaseAction is what happens to a host whose lease ran out (leases.on_expiry).
type LeaseAction string

// Lease actions. Either files a normal remove change for the host; they differ only in
// whether it waits for a reviewer.
const (
	LeasePropose LeaseAction = "propose" // the remove change waits for review
	LeaseRemove  LeaseAction = "remove"  // the remove change is approved at once
)

// MinLeaseTTL is the shortest lease: a renewal timer cannot reliably beat anything shorter.
const MinLeaseTTL = time.Minute

// LeasePolicy is leases: how long a registration or renewal keeps a host alive, how long
// past that the service waits, and what it does then. The zero value (TTL 0) means leases are
// off: nothing expires.
type LeasePolicy struct {
	TTL      time.Duration
	Grace    time.Duration
	OnExpiry LeaseAction
}

// Enabled reports whether hosts hold leases at all.
func (p LeasePolicy) Enabled() bool { return p.TTL > 0 }

// Validate checks a policy that is enabled, naming the key at fault (leases.ttl, ...).
func (p LeasePolicy) Validate() []error {
	var errs []error
	if p.TTL < MinLeaseTTL {
		errs = append(errs, FieldErrorf(EINVALID, "leases.ttl", "want at least %s (a renewal timer cannot beat a shorter lease), got %s", MinLeaseTTL, p.TTL))
	}
	if p.Grace < 0 {
		errs = append(errs, FieldErrorf(EINVALID, "leases.grace", "must not be negative, got %s", p.Grace))
	}
	switch p.OnExpiry {
	case LeasePropose, LeaseRemove:
	default:
		errs = append(errs, FieldErrorf(EINVALID, "leases.on_expiry", "want propose or remove, got %q", string(p.OnExpiry)))
	}
	return errs
}

// Lease is where a host's lease stands.
type Lease struct {
	RenewedAt time.Time // the host's registration or its last renewal
	ExpiresAt time.Time // RenewedAt + ttl
	// Stale: now is past ExpiresAt + grace. A stale active host is removed by the reaper.
	Stale bool
}

// Lease returns the lease of a host last renewed at renewedAt, as of now.
func (p LeasePolicy) Lease(renewedAt, now time.Time) Lease {
	exp := renewedAt.Add(p.TTL)
	return Lease{RenewedAt: renewedAt, ExpiresAt: exp, Stale: now.After(exp.Add(p.Grace))}
}

// StaleBefore is the renewal time before which a host is stale at now: the query bound that
// lets an index on the renewal time find stale hosts without computing each one's expiry.
// A host renewed at r is stale iff r < StaleBefore(now).
func (p LeasePolicy) StaleBefore(now time.Time) time.Time { return now.Add(-p.TTL - p.Grace) }

// Reapable reports whether the reaper files a removal for host h, whose lease is stale: only
// active hosts. A pending host's add change waits for a reviewer or the engine, who decide its
// fate; a removing host is already on its way out.
func Reapable(h Host) bool { return h.State == HostActive }

// LeaseRemovalReason is the reason recorded on the remove change the reaper files.
func LeaseRemovalReason(l Lease, grace time.Duration) string {
	return fmt.Sprintf("lease expired at %s and was not renewed within the grace period of %s", l.ExpiresAt.UTC().Format(time.RFC3339), grace)
}

// RenewedReason is the reason a lease-expiry removal is rejected with when its host renews.
const RenewedReason = "host renewed its lease"

// RenewAction is what a renewal does.
type RenewAction int

// Renewal outcomes.
const (
	// RenewExtend extends the lease of a live host.
	RenewExtend RenewAction = iota
	// RenewCancel extends the lease and rejects the host's lease-expiry removal, which has not
	// started: the host is active again, its routes were never touched.
	RenewCancel
)

// Renew decides what a renewal of host h does. removal is the host's live change (pending,
// approved or applying) when h is removing, else nil. A removal filed by the lease reaper
// that has not started (pending, or approved with no session yet) is cancelled; one applying
// must finish, as any removal must (the host registers again after); a removal someone asked
// for is theirs: the renewal is refused.
func Renew(h Host, removal *Change) (RenewAction, error) {
	switch h.State {
	case HostPending, HostActive:
		return RenewExtend, nil
	case HostRemoved:
		return 0, Errorf(ENOTFOUND, "host %s has been removed; register it again", h.Name)
	}
	if removal == nil || removal.Kind != ChangeRemove {
		return 0, FieldErrorf(ECONFLICT, "name", "host %s is being removed; register it again once it is removed", h.Name)
	}
	if removal.RequestedBy != ActorLeaseReaper {
		return 0, FieldErrorf(ECONFLICT, "name", "host %s is being removed (change %d, requested by %s); register it again once it is removed", h.Name, removal.ID, removal.RequestedBy)
	}
	switch removal.Status {
	case ChangePending, ChangeApproved:
		return RenewCancel, nil
	}
	return 0, FieldErrorf(ECONFLICT, "name", "host %s's lease expired and change %d removing it is %s; it must finish: register the host again once it is removed", h.Name, removal.ID, removal.Status)
}
