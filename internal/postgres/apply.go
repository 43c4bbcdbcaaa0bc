package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// ReadyOp is an op the apply engine may send now: its change is approved and every op of an
// earlier stage of the same change is applied.
type ReadyOp struct {
	ChangeID     int64
	FirstErrorAt *time.Time
	fabric.ChangeOp
}

// ReadyOps returns up to limit ready ops for device, oldest change first.
func (c *Changes) ReadyOps(ctx context.Context, device string, limit int) ([]ReadyOp, error) {
	rows, err := c.db.Pool.Query(ctx, `
		SELECT o.change_id, o.first_error_at, o.id, o.seq, o.stage, o.rollback, o.device, o.action, o.prefix, o.next_hop, o.vrf, o.preview, o.attempts
		FROM change_ops o JOIN changes c ON c.id = o.change_id
		WHERE o.device = $1 AND o.status = 'pending' AND c.status IN ('approved', 'applying')
		  AND NOT EXISTS (SELECT 1 FROM change_ops p WHERE p.change_id = o.change_id AND p.rollback = o.rollback
		                  AND p.stage < o.stage AND p.status <> 'applied')
		ORDER BY o.change_id, o.rollback, o.seq LIMIT $2`, device, limit)
	if err != nil {
		return nil, formatError(err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReadyOp, error) {
		var o ReadyOp
		var action string
		err := r.Scan(&o.ChangeID, &o.FirstErrorAt, &o.ID, &o.Seq, &o.Stage, &o.Rollback, &o.Device, &action, &o.Op.Route.Prefix,
			&o.Op.Route.NextHop, &o.Op.Route.VRF, &o.Preview, &o.Attempts)
		o.Op.Action, o.Status = fabric.Action(action), fabric.OpPending
		return o, err
	})
}

// StartApplying moves approved changes to applying, and returns those of ids that are now
// applying: the engine sends only their ops. A change rejected since ReadyOps read it (a
// lease-expiry removal its host's renewal cancelled: see Hosts.Renew, which locks the change
// and refuses once it is applying) is left out, so nothing of it reaches a device.
func (c *Changes) StartApplying(ctx context.Context, device string, ids []int64) ([]int64, error) {
	var applying []int64
	err := c.db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE changes SET status = 'applying', updated_at = $2 WHERE id = ANY($1) AND status = 'approved' RETURNING id`, ids, c.db.Now())
		if err != nil {
			return formatError(err)
		}
		started, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return formatError(err)
		}
		for _, id := range started {
			if err := addEvent(ctx, tx, id, c.db.Now(), "applying", "first session to "+device); err != nil {
				return err
			}
		}
		rows, err = tx.Query(ctx, `SELECT id FROM changes WHERE id = ANY($1) AND status = 'applying'`, ids)
		if err != nil {
			return formatError(err)
		}
		applying, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return formatError(err)
	})
	return applying, err
}

// OpResult is what happened to one op in a session.
type OpResult struct {
	OpID      int64
	ChangeID  int64
	Status    fabric.OpStatus // applied, failed, or pending (to be retried)
	Attempted bool            // bytes were sent for it
	Error     string
	Output    string
	// Unreachable marks a pending result whose device could not be reached: it starts the
	// op's retry deadline.
	Unreachable bool
}

// Record stores a session's results and settles every change it touched: applied, rolled
// back, failed, or its next stage queued, all in one transaction. It returns the changes that
// ended, each with its ops in their final status, for the engine to log and count.
func (c *Changes) Record(ctx context.Context, device string, results []OpResult) ([]fabric.Ended, error) {
	if len(results) == 0 {
		return nil, nil
	}
	var ended []fabric.Ended
	err := c.db.inTx(ctx, func(tx pgx.Tx) error {
		ended = ended[:0] // a retried transaction starts again
		now := c.db.Now()
		batch := &pgx.Batch{}
		var changed []int64
		seen := make(map[int64]bool, len(results))
		for _, r := range results {
			attempts := 0
			if r.Attempted {
				attempts = 1
			}
			batch.Queue(`UPDATE change_ops SET status = $2, attempts = attempts + $3, error = nullif($4, ''), output = nullif($5, ''),
				first_error_at = CASE WHEN $6 THEN coalesce(first_error_at, $7) ELSE first_error_at END, updated_at = $7
				WHERE id = $1`, r.OpID, string(r.Status), attempts, r.Error, r.Output, r.Unreachable, now)
			if !seen[r.ChangeID] {
				seen[r.ChangeID] = true
				changed = append(changed, r.ChangeID)
			}
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return formatError(err)
		}
		// Sessions of the devices of one stage record at the same time: locking their changes
		// in one order keeps two of them from waiting on each other. The changes are read, and
		// the ended ones read back, in one query each (with their ops and events in two more),
		// not per change: a 5,000-op batch touches 5,000 changes.
		slices.Sort(changed)
		list, err := c.changesQ(ctx, tx, changed, true)
		if err != nil {
			return err
		}
		var next []string
		var finals []int64
		for _, ch := range list {
			devs, final, err := c.storeSettlementTx(ctx, tx, ch, now)
			if err != nil {
				return err
			}
			if final {
				finals = append(finals, ch.ID)
			}
			for _, d := range devs {
				if !slices.Contains(next, d) {
					next = append(next, d)
				}
			}
		}
		// Read back what the settlement stored (ops skipped or rolled back, the final reason).
		done, err := c.changesQ(ctx, tx, finals, false)
		if err != nil {
			return err
		}
		for _, ch := range done {
			ended = append(ended, fabric.Summarize(ch, now))
		}
		return c.enqueueTx(ctx, tx, next)
	})
	if err != nil {
		return nil, err
	}
	return ended, nil
}

// storeSettlementTx stores what fabric.Settle decides for ch and returns the devices that now
// have work for it, and whether it ended.
func (c *Changes) storeSettlementTx(ctx context.Context, tx pgx.Tx, ch fabric.Change, now time.Time) ([]string, bool, error) {
	id := ch.ID
	s := fabric.Settle(ch)
	if s.SkipPending {
		if _, err := tx.Exec(ctx, `UPDATE change_ops SET status = 'skipped', updated_at = $2 WHERE change_id = $1 AND status = 'pending'`, id, now); err != nil {
			return nil, false, formatError(err)
		}
	}
	if s.UndoneForward {
		if _, err := tx.Exec(ctx, `UPDATE change_ops SET status = 'rolled_back', updated_at = $2 WHERE change_id = $1 AND NOT rollback AND status = 'applied'`, id, now); err != nil {
			return nil, false, formatError(err)
		}
	}
	if s.Final != "" {
		if err := c.finishTx(ctx, tx, ch, s.Final, s.Reason, now); err != nil {
			return nil, false, err
		}
		return nil, true, c.moveHostTx(ctx, tx, ch.Host, s.Host, now)
	}
	if s.Reason != "" {
		if _, err := tx.Exec(ctx, `UPDATE changes SET reason = $2, updated_at = $3 WHERE id = $1`, id, s.Reason, now); err != nil {
			return nil, false, formatError(err)
		}
	}
	if s.Event.What != "" {
		if err := addEvent(ctx, tx, id, now, s.Event.What, s.Event.Detail); err != nil {
			return nil, false, err
		}
	}
	if len(s.Undo) > 0 {
		if err := insertOps(ctx, tx, id, s.Undo, now); err != nil {
			return nil, false, err
		}
	}
	return s.Ready, false, nil
}

// moveHostTx stores the host's new state after its change ended: active, or removed with its
// subnet released.
func (c *Changes) moveHostTx(ctx context.Context, tx pgx.Tx, h *fabric.Host, state fabric.HostState, now time.Time) error {
	if h == nil {
		return nil
	}
	switch state {
	case fabric.HostActive:
		_, err := tx.Exec(ctx, `UPDATE hosts SET state = 'active', updated_at = $2 WHERE id = $1 AND state = 'pending'`, h.ID, now)
		return formatError(err)
	case fabric.HostRemoved:
		rel := *h
		err := tx.QueryRow(ctx, `UPDATE hosts SET state = 'removed', updated_at = $2 WHERE id = $1 AND state = 'removing' RETURNING coalesce(pool, ''), subnet, coalesce(pool6, ''), subnet6`,
			h.ID, now).Scan(&rel.Pool, &rel.Subnet, &rel.Pool6, &rel.Subnet6)
		if err != nil {
			return formatError(err)
		}
		if err := releaseSubnetsTx(ctx, tx, rel); err != nil {
			return err
		}
		details := subnetDetails(rel, map[string]any{"released": true})
		if rel.Subnet6.IsValid() {
			details["subnet6"] = rel.Subnet6.String()
		}
		return insertAudit(ctx, tx, now, "apply", "host.removed", "host/"+h.Name, details)
	}
	return nil
}

func (c *Changes) finishTx(ctx context.Context, tx pgx.Tx, ch fabric.Change, status fabric.ChangeStatus, reason string, now time.Time) error {
	id := ch.ID
	if _, err := tx.Exec(ctx, `UPDATE changes SET status = $2, reason = coalesce(nullif($3, ''), reason), updated_at = $4 WHERE id = $1`, id, string(status), reason, now); err != nil {
		return formatError(err)
	}
	if err := addEvent(ctx, tx, id, now, string(status), reason); err != nil {
		return err
	}
	if err := insertAudit(ctx, tx, now, "apply", "change."+string(status), fmt.Sprintf("change/%d", id), nil); err != nil {
		return err
	}
	ch.Status, ch.UpdatedAt = status, now
	if reason != "" {
		ch.Reason = reason
	}
	return c.emitTx(ctx, tx, ch, now)
}

// ChangesByStatus counts changes by status, for metrics.
func (c *Changes) ChangesByStatus(ctx context.Context) (map[fabric.ChangeStatus]int64, error) {
	rows, err := c.db.Pool.Query(ctx, `SELECT status, count(*) FROM changes GROUP BY status`)
	if err != nil {
		return nil, formatError(err)
	}
	out := map[fabric.ChangeStatus]int64{}
	var s string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&s, &n}, func() error { out[fabric.ChangeStatus(s)] = n; return nil })
	return out, formatError(err)
}
