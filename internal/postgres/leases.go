package postgres

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// SetLeases puts lease policy p in force (leases; the zero policy turns leases off). A reload
// calls it again: the expiry is always the renewal time plus the ttl in force.
func (s *Hosts) SetLeases(p fabric.LeasePolicy) { s.leases.Store(&p) }

// Leases returns the lease policy in force.
func (s *Hosts) Leases() fabric.LeasePolicy { return *s.leases.Load() }

// withLease fills in h's lease as of now, when leases are on.
func (s *Hosts) withLease(h fabric.Host) fabric.Host {
	if p := s.Leases(); p.Enabled() && h.ID != 0 && h.State != fabric.HostRemoved {
		l := p.Lease(h.LeaseRenewedAt, s.db.Now())
		h.Lease = &l
	}
	return h
}

// repeated reports whether a registration that created nothing found its own host (same name
// and address): the idempotent repeat, or the conflict of a host being removed, which a
// renewal may cancel when the lease reaper filed the removal.
func repeated(h fabric.Host, reg fabric.Registration, err error) bool {
	if h.ID == 0 || h.Name != reg.Name || h.Address != reg.Address || h.Address6 != reg.Address6 {
		return false
	}
	if err == nil {
		return true
	}
	return h.State == fabric.HostRemoving && fabric.ErrorCode(err) == fabric.ECONFLICT && (!reg.Subnet.IsValid() || reg.Subnet == h.Subnet)
}

// Renew extends the lease of the live host called name (POST /v1/hosts/{name}/renew). A host
// whose lease-expiry removal has not started is active again and the removal is rejected; one
// whose removal is applying, or that a person is removing, is refused with a conflict (see
// fabric.Renew). Renewals are recorded whether or not leases are on, so that turning them on
// starts from the hosts' real renewal times.
func (s *Hosts) Renew(ctx context.Context, actor fabric.Actor, name string) (fabric.Host, error) {
	return s.renew(ctx, actor, strings.ToLower(name), netip.Addr{})
}

// renew is Renew; a valid addr must be the host's (a repeated registration).
func (s *Hosts) renew(ctx context.Context, actor fabric.Actor, name string, addr netip.Addr) (fabric.Host, error) {
	var h fabric.Host
	err := s.db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		h, err = scanHost(tx.QueryRow(ctx, `SELECT `+hostColumns+` FROM hosts WHERE name = $1 AND state <> 'removed' FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fabric.Errorf(fabric.ENOTFOUND, "no host named %q; register it first", name)
		}
		if err != nil {
			return formatError(err)
		}
		if addr.IsValid() && addr != h.Address {
			return fabric.FieldErrorf(fabric.ECONFLICT, "address", "host %s is already registered with address %s", h.Name, h.Address)
		}
		if !actor.MaySegment(h.Segment) {
			return fabric.Errorf(fabric.EFORBIDDEN, "host %s is in segment %s, and token %s may renew hosts only in %s", h.Name, h.Segment, actor.Name, strings.Join(actor.Segments, ", "))
		}
		var removal *fabric.Change
		if h.State == fabric.HostRemoving {
			var c fabric.Change
			var kind, status string
			err := tx.QueryRow(ctx, `SELECT id, kind, status, requested_by FROM changes
				WHERE host_id = $1 AND status IN ('pending', 'approved', 'applying') ORDER BY id DESC LIMIT 1 FOR UPDATE`, h.ID).Scan(&c.ID, &kind, &status, &c.RequestedBy)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return formatError(err)
			default:
				c.Kind, c.Status = fabric.ChangeKind(kind), fabric.ChangeStatus(status)
				removal = &c
			}
		}
		action, err := fabric.Renew(h, removal)
		if err != nil {
			return err
		}
		now := s.db.Now()
		if action == fabric.RenewCancel {
			if err := s.cancelRemovalTx(ctx, tx, actor, &h, *removal, now); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE hosts SET lease_renewed_at = $2 WHERE id = $1`, h.ID, now); err != nil {
			return formatError(err)
		}
		h.LeaseRenewedAt = now
		return nil
	})
	if err != nil {
		return fabric.Host{}, err
	}
	return s.Host(ctx, h.Name)
}

// cancelRemovalTx rejects the lease-expiry removal c of host h, which has not started (the
// apply engine starts only changes still approved: see Changes.StartApplying), and makes the
// host active again: its routes were never touched.
func (s *Hosts) cancelRemovalTx(ctx context.Context, tx pgx.Tx, actor fabric.Actor, h *fabric.Host, c fabric.Change, now time.Time) error {
	if s.changes == nil {
		return fabric.Errorf(fabric.EINTERNAL, "host %s has a removal but no change store is connected", h.Name)
	}
	if err := s.changes.rejectTx(ctx, tx, c.ID, now, actor.Name, fabric.RenewedReason); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE hosts SET state = 'active', updated_at = $2 WHERE id = $1`, h.ID, now); err != nil {
		return formatError(err)
	}
	h.State, h.UpdatedAt = fabric.HostActive, now
	if err := insertAudit(ctx, tx, now, actor.Name, "host.renew", "host/"+h.Name, map[string]any{"cancelled_change": c.ID, "reason": fabric.RenewedReason}); err != nil {
		return err
	}
	c.Status, c.Reason, c.Host, c.UpdatedAt = fabric.ChangeRejected, fabric.RenewedReason, h, now
	return s.changes.emitTx(ctx, tx, c, now)
}

// CountStale counts pending and active hosts whose lease is past its expiry and grace (0 with
// leases off), for returnpath_hosts_stale.
func (s *Hosts) CountStale(ctx context.Context) (int64, error) {
	p := s.Leases()
	if !p.Enabled() {
		return 0, nil
	}
	var n int64
	err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM hosts WHERE state IN ('pending', 'active') AND lease_renewed_at < $1`,
		p.StaleBefore(s.db.Now())).Scan(&n)
	return n, formatError(err)
}

// reapBatch is how many hosts one reaper transaction takes.
const reapBatch = 200

// Reaped is a host the lease reaper filed a removal for.
type Reaped struct {
	Host   string
	Change int64
	Status fabric.ChangeStatus // pending (leases.on_expiry propose) or approved (remove)
}

// Reap files a remove change for every active host whose lease is stale: pending review with
// leases.on_expiry propose, approved at once with remove (fabric.ApprovalPolicy.AutoApproval),
// audited as the lease reaper. It is safe to run in several processes at once: each batch
// takes its hosts FOR UPDATE SKIP LOCKED and only hosts still active past their lease, so a
// host is reaped once. A host with a change in flight (its reroute, say) is left for the next
// run. With leases off it does nothing.
func (s *Hosts) Reap(ctx context.Context) ([]Reaped, error) {
	var out []Reaped
	for {
		batch, more, err := s.reapBatch(ctx)
		out = append(out, batch...)
		if err != nil || !more {
			return out, err
		}
	}
}

func (s *Hosts) reapBatch(ctx context.Context) (reaped []Reaped, more bool, err error) {
	p := s.Leases()
	if !p.Enabled() || s.changes == nil {
		return nil, false, nil
	}
	actor := fabric.Actor{Name: fabric.ActorLeaseReaper, Role: fabric.RoleAdmin}
	err = s.db.inTx(ctx, func(tx pgx.Tx) error {
		reaped = reaped[:0]
		now := s.db.Now()
		hosts, err := staleTx(ctx, tx, p.StaleBefore(now), reapBatch)
		if err != nil {
			return err
		}
		more = len(hosts) == reapBatch
		inv := s.inv.Load()
		for _, h := range hosts {
			if !fabric.Reapable(h) {
				continue
			}
			ops, err := inv.PlanChange(fabric.ChangeRemove, h, s.changes.preview)
			if err != nil {
				return err
			}
			reason := fabric.LeaseRemovalReason(p.Lease(h.LeaseRenewedAt, now), p.Grace)
			if _, err := tx.Exec(ctx, `UPDATE hosts SET state = 'removing', updated_at = $2 WHERE id = $1`, h.ID, now); err != nil {
				return formatError(err)
			}
			h.State, h.UpdatedAt = fabric.HostRemoving, now
			if err := insertAudit(ctx, tx, now, actor.Name, "host.remove", "host/"+h.Name, subnetDetails(h, map[string]any{"reason": reason})); err != nil {
				return err
			}
			req := changeRequest(actor, &h, fabric.ChangeRemove)
			req.OnExpiry = p.OnExpiry
			ch, err := s.changes.insertReqTx(ctx, tx, actor, req, &h, fabric.ChangeRemove, "", ops)
			if err != nil {
				return err
			}
			if err := addEvent(ctx, tx, ch.ID, now, "lease_expired", reason); err != nil {
				return err
			}
			reaped = append(reaped, Reaped{Host: h.Name, Change: ch.ID, Status: ch.Status})
		}
		return nil
	})
	return reaped, more, err
}

// staleTx locks and returns up to limit active hosts last renewed before staleBefore that have
// no change in flight, oldest first: the reaper's lookup, which the partial index
// hosts_lease_renewed answers without a scan of the table. SKIP LOCKED leaves hosts another
// reaper holds to that reaper.
func staleTx(ctx context.Context, tx pgx.Tx, staleBefore time.Time, limit int) ([]fabric.Host, error) {
	rows, err := tx.Query(ctx, staleSQL, staleBefore, limit)
	if err != nil {
		return nil, formatError(err)
	}
	hosts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Host, error) { return scanHost(r) })
	return hosts, formatError(err)
}

// staleSQL is staleTx's statement: $1 the stale-before bound, $2 the limit.
const staleSQL = `SELECT ` + hostColumns + ` FROM hosts h
	WHERE state = 'active' AND lease_renewed_at < $1
	  AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.host_id = h.id AND c.status IN ('pending', 'approved', 'applying'))
	ORDER BY lease_renewed_at LIMIT $2 FOR UPDATE SKIP LOCKED`
