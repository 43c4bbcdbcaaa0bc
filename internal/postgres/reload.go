package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// supersededReason is the reason recorded on a pending remediate change a reroute replaces.
const supersededReason = "superseded: the inventory changed and the return paths with it; verify again"

// SyncInventory makes the database's inventory match inv and, for every segment whose return
// path changed, files one reroute change (pending review) that moves its live hosts' routes
// from the stored path to inv's (see fabric.PlanReroutes). preview renders the ops with inv's
// device settings. Pending remediate changes on the rerouted devices are rejected as
// superseded (fabric.SupersededBy).
//
// Everything happens in one transaction under the inventory lock, planned against the
// inventory the database holds, not against the caller's: a second process syncing the same
// inventory finds nothing changed and files nothing. The unique index on unfinished reroutes
// per segment would refuse a duplicate anyway.
func (c *Changes) SyncInventory(ctx context.Context, actor fabric.Actor, inv *fabric.Inventory, preview fabric.PreviewFunc) (fabric.InventorySync, error) {
	var out fabric.InventorySync
	err := c.db.inTx(ctx, func(tx pgx.Tx) error {
		out = fabric.InventorySync{}
		if err := lockInventory(ctx, tx); err != nil {
			return err
		}
		from, err := loadInventoryTx(ctx, tx)
		if err != nil {
			return err
		}
		hosts, err := liveHostsTx(ctx, tx)
		if err != nil {
			return err
		}
		reroutes, warnings := fabric.PlanReroutes(from, inv, hosts)
		out.Warnings = warnings
		open, err := c.openChangesTx(ctx, tx)
		if err != nil {
			return err
		}
		if err := fabric.CheckReroutes(inv, reroutes, open); err != nil {
			return err
		}
		if err := syncInventoryTx(ctx, tx, inv); err != nil {
			return err
		}
		now := c.db.Now()
		for _, id := range fabric.SupersededBy(reroutes, open) {
			if err := c.rejectTx(ctx, tx, id, now, actor.Name, supersededReason); err != nil {
				return err
			}
			if err := insertAudit(ctx, tx, now, actor.Name, "change.reject", fmt.Sprintf("change/%d", id), map[string]any{"reason": supersededReason}); err != nil {
				return err
			}
			out.Superseded = append(out.Superseded, id)
		}
		for _, r := range reroutes {
			out.Changed = append(out.Changed, r.Segment)
			if len(r.Ops) == 0 {
				continue
			}
			staged, err := fabric.StageOps(r.Path, r.Ops, preview)
			if err != nil {
				return err
			}
			ch, err := c.insertTx(ctx, tx, actor, nil, fabric.ChangeReroute, r.Segment, staged)
			if err != nil {
				return err
			}
			if ch, err = c.changeQ(ctx, tx, ch.ID, false); err != nil {
				return err
			}
			out.Reroutes = append(out.Reroutes, ch)
		}
		if len(out.Changed) == 0 {
			return nil
		}
		ids := make([]int64, 0, len(out.Reroutes))
		for _, ch := range out.Reroutes {
			ids = append(ids, ch.ID)
		}
		return insertAudit(ctx, tx, now, actor.Name, "inventory.reroute", "inventory",
			map[string]any{"segments": out.Changed, "changes": ids, "superseded": out.Superseded})
	})
	if err != nil {
		return fabric.InventorySync{}, err
	}
	return out, nil
}

// liveHostsTx returns every host that is not removed, by name.
func liveHostsTx(ctx context.Context, tx pgx.Tx) ([]fabric.Host, error) {
	rows, err := tx.Query(ctx, `SELECT `+hostColumns+` FROM hosts WHERE state <> 'removed' ORDER BY name`)
	if err != nil {
		return nil, formatError(err)
	}
	hosts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Host, error) { return scanHost(r) })
	return hosts, formatError(err)
}

// openChangesTx returns every change not yet final, with the ops of the pending remediate
// ones (all fabric.SupersededBy looks at).
func (c *Changes) openChangesTx(ctx context.Context, tx pgx.Tx) ([]fabric.Change, error) {
	rows, err := tx.Query(ctx, `SELECT `+changeColumns+` FROM changes c LEFT JOIN hosts h ON h.id = c.host_id
		WHERE c.status IN ('pending', 'approved', 'applying') ORDER BY c.id`)
	if err != nil {
		return nil, formatError(err)
	}
	open, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Change, error) { return scanChange(r) })
	if err != nil {
		return nil, formatError(err)
	}
	var remediate []fabric.Change
	at := map[int64]int{}
	for i, ch := range open {
		if ch.Kind == fabric.ChangeRemediate && ch.Status == fabric.ChangePending {
			at[ch.ID] = i
			remediate = append(remediate, ch)
		}
	}
	if err := loadDetails(ctx, tx, remediate, c.retryDeadline); err != nil {
		return nil, err
	}
	for _, ch := range remediate {
		open[at[ch.ID]] = ch
	}
	return open, nil
}
