package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// Enqueuer queues one apply job per device inside the caller's transaction, so that work is
// queued if and only if the approval commits.
type Enqueuer interface {
	EnqueueTx(ctx context.Context, tx pgx.Tx, devices []string) error
}

// EventSink queues the outgoing webhooks of events inside the caller's transaction, so that
// an event is told if and only if the state change it tells of commits.
type EventSink interface {
	EmitTx(ctx context.Context, tx pgx.Tx, events []fabric.Event) error
}

// Changes stores changes and moves them through review.
type Changes struct {
	db      *DB
	inv     atomic.Pointer[fabric.Inventory] // swapped whole by a reload
	preview fabric.PreviewFunc
	policy  fabric.ApprovalPolicy
	enq     Enqueuer
	events  EventSink // nil: no webhooks
	// retryDeadline is the apply engine's: how long an unreachable device's ops are retried
	// (0: ops do not show when the engine gives up on them).
	retryDeadline time.Duration
}

// NewChanges returns the change store. preview renders each op's native lines.
func NewChanges(db *DB, inv *fabric.Inventory, preview fabric.PreviewFunc, policy fabric.ApprovalPolicy) *Changes {
	c := &Changes{db: db, preview: preview, policy: policy}
	c.inv.Store(inv)
	return c
}

// SetInventory makes plans use inv from now on (a reload, once inv is synced).
func (c *Changes) SetInventory(inv *fabric.Inventory) { c.inv.Store(inv) }

// SetEnqueuer connects the apply engine.
func (c *Changes) SetEnqueuer(e Enqueuer) { c.enq = e }

// SetRetryDeadline tells the store the apply engine's retry deadline (apply.retry_deadline), so
// that each pending op of an unreachable device shows when the engine gives up on it.
func (c *Changes) SetRetryDeadline(d time.Duration) { c.retryDeadline = d }

// SetEventSink connects the outgoing webhooks.
func (c *Changes) SetEventSink(s EventSink) { c.events = s }

// emitTx tells the event sink, inside tx, that ch entered its status (if that is an event).
func (c *Changes) emitTx(ctx context.Context, tx pgx.Tx, ch fabric.Change, now time.Time) error {
	if c.events == nil {
		return nil
	}
	kind, ok := fabric.StatusEvent(ch.Status)
	if !ok {
		return nil
	}
	return c.events.EmitTx(ctx, tx, []fabric.Event{{Kind: kind, At: now, Change: &ch}})
}

// Policy returns the approval policy.
func (c *Changes) Policy() fabric.ApprovalPolicy { return c.policy }

func addEvent(ctx context.Context, tx pgx.Tx, changeID int64, at any, what, detail string) error {
	_, err := tx.Exec(ctx, `INSERT INTO change_events (change_id, at, what, detail) VALUES ($1, $2, $3, $4)`, changeID, at, what, detail)
	return formatError(err)
}

// createTx files a change of kind k for host h inside tx, auto-approving it when the policy
// says so.
func (c *Changes) createTx(ctx context.Context, tx pgx.Tx, actor fabric.Actor, h fabric.Host, k fabric.ChangeKind) (fabric.Change, error) {
	ops, err := c.inv.Load().PlanChange(k, h, c.preview)
	if err != nil {
		return fabric.Change{}, err
	}
	return c.insertTx(ctx, tx, actor, &h, k, "", ops)
}

// fileChangeSQL is the part of a statement that files a change for the host in CTE h (whose id
// may be NULL: a change of no host) with its ops, events and audit row, in one round trip.
// Its parameters are $1 to $19, in the order newChange gives them.
const fileChangeSQL = `
	c AS (
		INSERT INTO changes (kind, status, host_id, requested_by, requested_owner, approved_by, plan_hash, created_at, updated_at)
		SELECT $1, $2, h.id, $3, $19, $4, $5, $6, $6 FROM h WHERE $7 RETURNING id),
	o AS (
		INSERT INTO change_ops (change_id, seq, stage, rollback, device, action, prefix, next_hop, vrf, preview, status, updated_at)
		SELECT c.id, u.seq, u.stage, false, u.device, u.action, u.prefix, u.next_hop, u.vrf, u.preview, 'pending', $6
		FROM c, unnest($8::int[], $9::int[], $10::text[], $11::text[], $12::cidr[], $13::inet[], $14::text[], $15::text[])
		     AS u(seq, stage, device, action, prefix, next_hop, vrf, preview)),
	e AS (
		INSERT INTO change_events (change_id, at, what, detail)
		SELECT c.id, $6, u.what, u.detail FROM c, unnest($16::text[], $17::text[]) WITH ORDINALITY AS u(what, detail, n) ORDER BY n),
	ca AS (
		INSERT INTO audit (at, actor, action, object, details)
		SELECT $6, $3, 'change.create', 'change/' || c.id, $18::jsonb FROM c)`

// newChange describes a change of kind k about to be filed for host h (or none): its status
// after the approval policy judged req, and the parameters $1 to $19 of fileChangeSQL.
func (c *Changes) newChange(actor fabric.Actor, req fabric.ChangeRequest, k fabric.ChangeKind, ops []fabric.ChangeOp, now time.Time) (fabric.ChangeStatus, string, []any) {
	status, rule := fabric.ChangePending, ""
	var approvedBy *string
	events := []string{"created"}
	details := []string{fmt.Sprintf("%s change with %s, requested by %s", k, fabric.CountOps(len(ops)), actor.Name)}
	if r, auto := c.policy.AutoApproval(req); auto {
		status, rule, approvedBy = fabric.ChangeApproved, r, &r
		events, details = append(events, "approved"), append(details, "auto-approved by "+r)
	}
	o := opArrays(ops)
	return status, rule, []any{string(k), string(status), actor.Name, approvedBy, fabric.PlanHash(ops), now, len(ops) > 0,
		o.seq, o.stage, o.device, o.action, o.prefix, o.nextHop, o.vrf, o.preview,
		events, details, map[string]any{"kind": string(k), "status": string(status)}, actor.Principal()}
}

// changeRequest is what the approval policy needs to know of a change of kind k for host h
// (or none) requested by actor.
func changeRequest(actor fabric.Actor, h *fabric.Host, k fabric.ChangeKind) fabric.ChangeRequest {
	r := fabric.ChangeRequest{Kind: k, Requester: actor.Name}
	if h != nil {
		r.Segment, r.HostCreatedBy = h.Segment, h.CreatedBy
	}
	return r
}

// insertTx files a change of kind k (for host h, or none) with the given ops inside tx, and
// queues its first stage when the policy approves it at once. segment is a reroute's segment
// ("" for other kinds: a host change's segment is its host's).
func (c *Changes) insertTx(ctx context.Context, tx pgx.Tx, actor fabric.Actor, h *fabric.Host, k fabric.ChangeKind, segment string, ops []fabric.ChangeOp) (fabric.Change, error) {
	return c.insertReqTx(ctx, tx, actor, changeRequest(actor, h, k), h, k, segment, ops)
}

// insertReqTx is insertTx with the approval policy judging req, which the caller may have
// added to (the lease reaper's leases.on_expiry).
func (c *Changes) insertReqTx(ctx context.Context, tx pgx.Tx, actor fabric.Actor, req fabric.ChangeRequest, h *fabric.Host, k fabric.ChangeKind, segment string, ops []fabric.ChangeOp) (fabric.Change, error) {
	now := c.db.Now()
	var hostID *int64
	if h != nil {
		hostID = &h.ID
	}
	status, rule, args := c.newChange(actor, req, k, ops, now)
	ch := fabric.Change{Kind: k, Status: status, Host: h, Segment: segment, RequestedBy: actor.Name, RequestedOwner: actor.Principal(), ApprovedBy: rule,
		PlanHash: fabric.PlanHash(ops), CreatedAt: now, UpdatedAt: now, Ops: ops}
	if h != nil {
		ch.Segment = h.Segment
	}
	if err := tx.QueryRow(ctx, `WITH h AS (SELECT $20::bigint AS id),`+fileChangeSQL+` SELECT id FROM c`,
		append(args, hostID)...).Scan(&ch.ID); err != nil {
		return ch, formatError(err)
	}
	if segment != "" {
		// fileChangeSQL's parameters are shared with registration; the segment goes in after.
		if _, err := tx.Exec(ctx, `UPDATE changes SET segment = $2 WHERE id = $1`, ch.ID, segment); err != nil {
			return ch, formatError(err)
		}
	}
	if err := c.emitTx(ctx, tx, ch, now); err != nil {
		return ch, err
	}
	if rule != "" {
		if err := c.enqueueTx(ctx, tx, firstStageDevices(ops)); err != nil {
			return ch, err
		}
	}
	return ch, nil
}

type opColumns struct {
	seq, stage                   []int32
	device, action, vrf, preview []string
	prefix                       []netip.Prefix
	nextHop                      []netip.Addr
}

func opArrays(ops []fabric.ChangeOp) opColumns {
	var o opColumns
	for _, op := range ops {
		o.seq, o.stage = append(o.seq, int32(op.Seq)), append(o.stage, int32(op.Stage))
		o.device, o.action = append(o.device, op.Device), append(o.action, string(op.Op.Action))
		o.prefix, o.nextHop = append(o.prefix, op.Op.Route.Prefix), append(o.nextHop, op.Op.Route.NextHop)
		o.vrf, o.preview = append(o.vrf, op.Op.Route.VRF), append(o.preview, op.Preview)
	}
	return o
}

func firstStageDevices(ops []fabric.ChangeOp) []string {
	var out []string
	for _, o := range ops {
		if o.Stage == 0 && !slices.Contains(out, o.Device) {
			out = append(out, o.Device)
		}
	}
	return out
}

func (c *Changes) enqueueTx(ctx context.Context, tx pgx.Tx, devices []string) error {
	return c.wakeTx(ctx, tx, devices)
}

func insertOps(ctx context.Context, tx pgx.Tx, changeID int64, ops []fabric.ChangeOp, now any) error {
	rows := make([][]any, 0, len(ops))
	for _, o := range ops {
		rows = append(rows, []any{changeID, o.Seq, o.Stage, o.Rollback, o.Device, string(o.Op.Action), o.Op.Route.Prefix, o.Op.Route.NextHop,
			o.Op.Route.VRF, o.Preview, string(o.Status), now})
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"change_ops"},
		[]string{"change_id", "seq", "stage", "rollback", "device", "action", "prefix", "next_hop", "vrf", "preview", "status", "updated_at"},
		pgx.CopyFromRows(rows))
	return formatError(err)
}

const changeColumns = `c.id, c.kind, c.status, c.requested_by, c.requested_owner, coalesce(c.approved_by, ''), coalesce(c.reason, ''), c.plan_hash, c.created_at, c.updated_at,
	h.id, h.name, h.address, h.subnet, h.segment, h.state, coalesce(c.segment, h.segment, ''), h.address6, h.subnet6, coalesce(h.pool6, '')`

func scanChange(row pgx.Row) (fabric.Change, error) {
	var ch fabric.Change
	var kind, status string
	var hid *int64
	var hname, hseg, hstate *string
	var haddr netip.Addr // NULL (no host, or one of an IPv6-only segment) scans as invalid
	var hsub netip.Prefix
	var haddr6 netip.Addr // NULL (no host, or an IPv4-only one) scans as invalid
	var hsub6 netip.Prefix
	var hpool6 string
	err := row.Scan(&ch.ID, &kind, &status, &ch.RequestedBy, &ch.RequestedOwner, &ch.ApprovedBy, &ch.Reason, &ch.PlanHash, &ch.CreatedAt, &ch.UpdatedAt,
		&hid, &hname, &haddr, &hsub, &hseg, &hstate, &ch.Segment, &haddr6, &hsub6, &hpool6)
	ch.Kind, ch.Status = fabric.ChangeKind(kind), fabric.ChangeStatus(status)
	if err == nil && hid != nil {
		ch.Host = &fabric.Host{ID: *hid, Name: *hname, Address: haddr, Subnet: hsub, Segment: *hseg, State: fabric.HostState(*hstate),
			Address6: haddr6, Subnet6: hsub6, Pool6: hpool6}
	}
	return ch, err
}

// Change returns one change with its ops and events.
func (c *Changes) Change(ctx context.Context, id int64) (fabric.Change, error) {
	return c.changeQ(ctx, c.db.Pool, id, false)
}

func (c *Changes) changeQ(ctx context.Context, q querier, id int64, lock bool) (fabric.Change, error) {
	list, err := c.changesQ(ctx, q, []int64{id}, lock)
	if fabric.ErrorCode(err) == fabric.ENOTFOUND {
		return fabric.Change{}, fabric.Errorf(fabric.ENOTFOUND, "no change %d", id)
	}
	if err != nil {
		return fabric.Change{}, err
	}
	return list[0], nil
}

// changesQ returns the changes ids, in id order, with their ops and events; with lock, their
// rows are locked in that order. A missing one is ENOTFOUND.
func (c *Changes) changesQ(ctx context.Context, q querier, ids []int64, lock bool) ([]fabric.Change, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	sql := `SELECT ` + changeColumns + ` FROM changes c LEFT JOIN hosts h ON h.id = c.host_id WHERE c.id = ANY($1) ORDER BY c.id`
	if lock {
		sql += ` FOR UPDATE OF c`
	}
	rows, err := q.Query(ctx, sql, ids)
	if err != nil {
		return nil, formatError(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Change, error) { return scanChange(r) })
	if err != nil {
		return nil, formatError(err)
	}
	if len(list) != len(ids) {
		return nil, fabric.Errorf(fabric.ENOTFOUND, "%d of %d changes not found", len(ids)-len(list), len(ids))
	}
	if err := loadDetails(ctx, q, list, c.retryDeadline); err != nil {
		return nil, err
	}
	return list, nil
}

// loadDetails fills in the ops and events of the given changes with two queries. deadline is
// the apply engine's retry deadline, for each pending op's GivesUpAt (0: not shown).
func loadDetails(ctx context.Context, q querier, list []fabric.Change, deadline time.Duration) error {
	if len(list) == 0 {
		return nil
	}
	ids := make([]int64, len(list))
	idx := map[int64]int{}
	for i, ch := range list {
		ids[i], idx[ch.ID] = ch.ID, i
	}
	// A pending op shows its device's backoff: when the engine may next log in to it.
	rows, err := q.Query(ctx, `
		SELECT o.change_id, o.id, o.seq, o.stage, o.rollback, o.device, o.action, o.prefix, o.next_hop, o.vrf, o.preview, o.status, o.attempts,
		       coalesce(o.error, ''), coalesce(o.output, ''), o.first_error_at, s.next_attempt_at
		FROM change_ops o LEFT JOIN device_schedule s ON s.device = o.device
		WHERE o.change_id = ANY($1) ORDER BY o.change_id, o.rollback, o.seq`, ids)
	if err != nil {
		return formatError(err)
	}
	var cid int64
	var o fabric.ChangeOp
	var action, status string
	var firstErr, nextAttempt *time.Time
	_, err = pgx.ForEachRow(rows, []any{&cid, &o.ID, &o.Seq, &o.Stage, &o.Rollback, &o.Device, &action, &o.Op.Route.Prefix, &o.Op.Route.NextHop,
		&o.Op.Route.VRF, &o.Preview, &status, &o.Attempts, &o.Error, &o.Output, &firstErr, &nextAttempt}, func() error {
		o.Op.Action, o.Status = fabric.Action(action), fabric.OpStatus(status)
		o.FirstErrorAt, o.NextAttemptAt = timeOrZero(firstErr), timeOrZero(nextAttempt)
		list[idx[cid]].Ops = append(list[idx[cid]].Ops, fabric.RetryWindow(o, deadline))
		return nil
	})
	if err != nil {
		return formatError(err)
	}
	rows, err = q.Query(ctx, `SELECT change_id, at, what, detail FROM change_events WHERE change_id = ANY($1) ORDER BY change_id, id`, ids)
	if err != nil {
		return formatError(err)
	}
	var e fabric.ChangeEvent
	_, err = pgx.ForEachRow(rows, []any{&cid, &e.At, &e.What, &e.Detail}, func() error {
		list[idx[cid]].Events = append(list[idx[cid]].Events, e)
		return nil
	})
	return formatError(err)
}

// List returns changes newest first, and the cursor of the next page (0 at the end).
func (c *Changes) List(ctx context.Context, f fabric.ChangeFilter) ([]fabric.Change, int64, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	if f.Before <= 0 {
		f.Before = 1<<63 - 1
	}
	rows, err := c.db.Pool.Query(ctx, `SELECT `+changeColumns+` FROM changes c LEFT JOIN hosts h ON h.id = c.host_id
		WHERE c.id < $1 AND ($2 = '' OR c.status = $2) AND ($3 = '' OR h.name = $3)
			AND ($5 = '' OR coalesce(c.segment, h.segment, '') = $5)
		ORDER BY c.id DESC LIMIT $4`, f.Before, string(f.Status), f.Host, f.Limit+1, f.Segment)
	if err != nil {
		return nil, 0, formatError(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Change, error) { return scanChange(r) })
	if err != nil {
		return nil, 0, formatError(err)
	}
	var next int64
	if len(list) > f.Limit {
		list = list[:f.Limit]
		next = list[f.Limit-1].ID
	}
	return list, next, loadDetails(ctx, c.db.Pool, list, c.retryDeadline)
}

// hostChangesTx returns every change of a host with its ops, oldest first.
func (c *Changes) hostChangesTx(ctx context.Context, tx pgx.Tx, hostID int64) ([]fabric.Change, error) {
	rows, err := tx.Query(ctx, `SELECT `+changeColumns+` FROM changes c LEFT JOIN hosts h ON h.id = c.host_id WHERE c.host_id = $1 ORDER BY c.id`, hostID)
	if err != nil {
		return nil, formatError(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Change, error) { return scanChange(r) })
	if err != nil {
		return nil, formatError(err)
	}
	return list, loadDetails(ctx, tx, list, c.retryDeadline)
}

// HostChange returns the newest change of a host.
func (c *Changes) HostChange(ctx context.Context, hostID int64) (int64, fabric.ChangeStatus, string, bool) {
	var id int64
	var status, reason string
	err := c.db.Pool.QueryRow(ctx, `SELECT id, status, coalesce(reason, '') FROM changes WHERE host_id = $1 ORDER BY id DESC LIMIT 1`, hostID).Scan(&id, &status, &reason)
	if err != nil {
		return 0, "", "", false
	}
	return id, fabric.ChangeStatus(status), reason, true
}

// replan returns the plan the change would have if it were filed now, for add and remove
// changes (the inventory may have changed since); other kinds keep theirs.
func (c *Changes) replan(ch fabric.Change) ([]fabric.ChangeOp, error) {
	if ch.Host == nil || (ch.Kind != fabric.ChangeAdd && ch.Kind != fabric.ChangeRemove) {
		return ch.Ops, nil
	}
	return c.inv.Load().PlanChange(ch.Kind, *ch.Host, c.preview)
}

// Approve approves a pending change whose plan hashes to planHash, and queues its first stage
// in the same transaction.
func (c *Changes) Approve(ctx context.Context, actor fabric.Actor, id int64, planHash string) (fabric.Change, error) {
	var changed *fabric.StalePlanError
	out, err := c.transition(ctx, id, fabric.ChangePending, ", not pending", func(tx pgx.Tx, ch fabric.Change, now time.Time) error {
		if err := c.policy.CheckApprover(ch, actor); err != nil {
			return err
		}
		ops, err := c.replan(ch)
		if err != nil {
			return err
		}
		h := fabric.PlanHash(ops)
		if err := fabric.CheckPlanHash(ch, h, planHash); err != nil {
			if errors.As(err, &changed) && changed.Reason == fabric.PlanChanged {
				// The plan changed under the reviewer: store the new one (committed) and show it.
				return c.replanTx(ctx, tx, id, ops, h, now)
			}
			changed = nil
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE changes SET status = 'approved', approved_by = $2, updated_at = $3 WHERE id = $1`, id, actor.Name, now); err != nil {
			return formatError(err)
		}
		if err := addEvent(ctx, tx, id, now, "approved", "approved by "+actor.Name); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, now, actor.Name, "change.approve", fmt.Sprintf("change/%d", id), map[string]any{"plan_hash": planHash}); err != nil {
			return err
		}
		ch.Status, ch.ApprovedBy, ch.UpdatedAt = fabric.ChangeApproved, actor.Name, now
		if err := c.emitTx(ctx, tx, ch, now); err != nil {
			return err
		}
		return c.enqueueTx(ctx, tx, firstStageDevices(ch.Ops))
	})
	if err == nil && changed != nil {
		changed.Change = out
		return out, changed
	}
	return out, err
}

// Reject rejects a pending change; the reason is required and recorded.
func (c *Changes) Reject(ctx context.Context, actor fabric.Actor, id int64, reason string) (fabric.Change, error) {
	if reason == "" {
		return fabric.Change{}, fabric.FieldErrorf(fabric.EINVALID, "reason", "is required")
	}
	return c.transition(ctx, id, fabric.ChangePending, ", not pending", func(tx pgx.Tx, _ fabric.Change, now time.Time) error {
		if err := c.rejectTx(ctx, tx, id, now, actor.Name, reason); err != nil {
			return err
		}
		return insertAudit(ctx, tx, now, actor.Name, "change.reject", fmt.Sprintf("change/%d", id), map[string]any{"reason": reason})
	})
}

// transition locks change id, requires it to be in status from, runs fn in the same
// transaction and returns the change as fn left it.
func (c *Changes) transition(ctx context.Context, id int64, from fabric.ChangeStatus, refusal string, fn func(tx pgx.Tx, ch fabric.Change, now time.Time) error) (fabric.Change, error) {
	var out fabric.Change
	err := c.db.inTx(ctx, func(tx pgx.Tx) error {
		ch, err := c.changeQ(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if ch.Status != from {
			return fabric.Errorf(fabric.ECONFLICT, "change %d is %s%s", id, ch.Status, refusal)
		}
		if err := fn(tx, ch, c.db.Now()); err != nil {
			return err
		}
		out, err = c.changeQ(ctx, tx, id, false)
		return err
	})
	return out, err
}

func (c *Changes) rejectTx(ctx context.Context, tx pgx.Tx, id int64, now any, who, reason string) error {
	if _, err := tx.Exec(ctx, `UPDATE changes SET status = 'rejected', reason = $2, updated_at = $3 WHERE id = $1`, id, reason, now); err != nil {
		return formatError(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE change_ops SET status = 'skipped', updated_at = $2 WHERE change_id = $1 AND status = 'pending'`, id, now); err != nil {
		return formatError(err)
	}
	return addEvent(ctx, tx, id, now, "rejected", fmt.Sprintf("rejected by %s: %s", who, reason))
}

// replanTx stores ops as the plan of change id, in place of the one it had.
func (c *Changes) replanTx(ctx context.Context, tx pgx.Tx, id int64, ops []fabric.ChangeOp, hash string, now time.Time) error {
	if _, err := tx.Exec(ctx, `DELETE FROM change_ops WHERE change_id = $1`, id); err != nil {
		return formatError(err)
	}
	if err := insertOps(ctx, tx, id, ops, now); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE changes SET plan_hash = $2, updated_at = $3 WHERE id = $1`, id, hash, now); err != nil {
		return formatError(err)
	}
	return addEvent(ctx, tx, id, now, "replanned", "the inventory changed since the change was filed; review the new plan")
}

// Retry applies a failed or rolled-back change again, from the start of a plan computed anew
// (see fabric.Retry). When that plan is not the stored one, it is stored and the retry refused
// with a StalePlanError showing it; retrying again applies it.
func (c *Changes) Retry(ctx context.Context, actor fabric.Actor, id int64) (fabric.Change, error) {
	var out fabric.Change
	var stale string
	err := c.db.inTx(ctx, func(tx pgx.Tx) error {
		ch, err := c.changeQ(ctx, tx, id, true)
		if err != nil {
			return err
		}
		st, err := c.retryStateTx(ctx, tx, ch)
		if err != nil {
			return err
		}
		plan, err := fabric.Retry(ch, st)
		if err != nil {
			return err
		}
		now := c.db.Now()
		if plan.Replanned {
			stale = fmt.Sprintf("the plan of change %d changed since it was applied (now %s); review it and retry again", id, plan.PlanHash)
			if err := c.replanTx(ctx, tx, id, plan.Ops, plan.PlanHash, now); err != nil {
				return err
			}
		} else if err := c.retryTx(ctx, tx, actor, ch, plan, now); err != nil {
			return err
		}
		out, err = c.changeQ(ctx, tx, id, false)
		return err
	})
	if err == nil && stale != "" {
		return out, &fabric.StalePlanError{Change: out, Message: stale, Reason: fabric.PlanChanged}
	}
	return out, err
}

// retryStateTx reads what fabric.Retry needs to know about the change's host.
func (c *Changes) retryStateTx(ctx context.Context, tx pgx.Tx, ch fabric.Change) (fabric.RetryState, error) {
	st := fabric.RetryState{Replan: func() ([]fabric.ChangeOp, error) { return c.replan(ch) }}
	if ch.Host == nil {
		return st, nil
	}
	err := tx.QueryRow(ctx, `SELECT max(id) FROM changes WHERE host_id = $1`, ch.Host.ID).Scan(&st.NewestChange)
	if err != nil {
		return st, formatError(err)
	}
	err = tx.QueryRow(ctx, `SELECT name FROM hosts WHERE state <> 'removed' AND id <> $1 AND (subnet && $2 OR subnet6 && $3) ORDER BY name LIMIT 1`,
		ch.Host.ID, ch.Host.Subnet, ch.Host.Subnet6).Scan(&st.Overlap)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return st, formatError(err)
	}
	return st, nil
}

// retryTx queues the change's plan again from its first op. Leftover rollback ops are dropped
// and every forward op is pending again with no attempts and no first error, so that each
// device gets the whole retry deadline again; the engine sends only what a device lacks.
func (c *Changes) retryTx(ctx context.Context, tx pgx.Tx, actor fabric.Actor, ch fabric.Change, plan fabric.RetryPlan, now time.Time) error {
	id := ch.ID
	if _, err := tx.Exec(ctx, `DELETE FROM change_ops WHERE change_id = $1 AND rollback`, id); err != nil {
		return formatError(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE change_ops SET status = 'pending', attempts = 0, first_error_at = NULL, error = NULL, output = NULL, updated_at = $2
		WHERE change_id = $1`, id, now); err != nil {
		return formatError(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE changes SET status = 'approved', reason = NULL, updated_at = $2 WHERE id = $1`, id, now); err != nil {
		return formatError(err)
	}
	if err := addEvent(ctx, tx, id, now, "retried", "retried by "+actor.Name); err != nil {
		return err
	}
	if err := insertAudit(ctx, tx, now, actor.Name, "change.retry", fmt.Sprintf("change/%d", id), nil); err != nil {
		return err
	}
	// A retry approves the change again: reviewers hear of it as an approval.
	ch.Status, ch.Reason, ch.Ops, ch.UpdatedAt = fabric.ChangeApproved, "", plan.Ops, now
	if err := c.emitTx(ctx, tx, ch, now); err != nil {
		return err
	}
	return c.enqueueTx(ctx, tx, plan.Ready)
}

// Remediate files a remediate change with ops that restore intent, staged along the return
// paths (deletes outside-in, adds inside-out). It is reviewed like any change unless the
// approval policy auto-approves remediation.
func (c *Changes) Remediate(ctx context.Context, actor fabric.Actor, ops []fabric.DeviceOp) (fabric.Change, error) {
	if len(ops) == 0 {
		return fabric.Change{}, fabric.Errorf(fabric.ECONFLICT, "nothing to remediate: every device read holds its intent")
	}
	staged, err := fabric.StageOps(fabric.Sequential(c.inv.Load().DeviceOrder()), ops, c.preview)
	if err != nil {
		return fabric.Change{}, err
	}
	var out fabric.Change
	err = c.db.inTx(ctx, func(tx pgx.Tx) error {
		ch, err := c.insertTx(ctx, tx, actor, nil, fabric.ChangeRemediate, "", staged)
		if err != nil {
			return err
		}
		out, err = c.changeQ(ctx, tx, ch.ID, false)
		return err
	})
	return out, err
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
