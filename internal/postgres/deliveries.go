package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// Deliveries stores outgoing webhook deliveries (migrations/0006).
type Deliveries struct{ db *DB }

// NewDeliveries returns the delivery store.
func NewDeliveries(db *DB) *Deliveries { return &Deliveries{db: db} }

// InsertTx records new pending deliveries inside tx, the transaction of the state change they
// tell of, and returns their ids in order.
func (d *Deliveries) InsertTx(ctx context.Context, tx pgx.Tx, list []fabric.Delivery) ([]int64, error) {
	if len(list) == 0 {
		return nil, nil
	}
	now := d.db.Now()
	hooks, events, bodies := make([]string, len(list)), make([]string, len(list)), make([]string, len(list))
	changes := make([]*int64, len(list))
	for i, dl := range list {
		hooks[i], events[i], bodies[i] = dl.Webhook, string(dl.Event), string(dl.Body)
		if dl.ChangeID != 0 {
			changes[i] = &dl.ChangeID
		}
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO webhook_deliveries (webhook, event, change_id, body, created_at, updated_at)
		SELECT u.webhook, u.event, u.change_id, u.body, @now, @now
		FROM unnest(@webhooks::text[], @events::text[], @changes::bigint[], @bodies::text[]) WITH ORDINALITY AS u(webhook, event, change_id, body, n)
		ORDER BY u.n RETURNING id`,
		pgx.NamedArgs{"now": now, "webhooks": hooks, "events": events, "changes": changes, "bodies": bodies})
	if err != nil {
		return nil, formatError(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, formatError(err)
}

const deliveryColumns = `id, webhook, event, coalesce(change_id, 0), body, status, attempts, coalesce(response_status, 0), coalesce(last_error, ''),
	created_at, updated_at, delivered_at`

func scanDelivery(row pgx.Row) (fabric.Delivery, error) {
	var dl fabric.Delivery
	var event, body, status string
	err := row.Scan(&dl.ID, &dl.Webhook, &event, &dl.ChangeID, &body, &status, &dl.Attempts, &dl.ResponseStatus, &dl.LastError,
		&dl.CreatedAt, &dl.UpdatedAt, &dl.DeliveredAt)
	dl.Event, dl.Body, dl.Status = fabric.EventKind(event), []byte(body), fabric.DeliveryStatus(status)
	return dl, err
}

// Delivery returns one delivery with its body.
func (d *Deliveries) Delivery(ctx context.Context, id int64) (fabric.Delivery, error) {
	dl, err := scanDelivery(d.db.Pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return dl, fabric.Errorf(fabric.ENOTFOUND, "no delivery %d", id)
	}
	return dl, formatError(err)
}

// RecordAttempt stores the outcome of one attempt at delivery id: its new status, the
// receiver's HTTP status (0: no answer) and the error ("" when it was delivered). A delivery
// already final stays as it is: an attempt that raced a restart cannot undo its outcome.
func (d *Deliveries) RecordAttempt(ctx context.Context, id int64, status fabric.DeliveryStatus, code int, lastError string) error {
	now := d.db.Now()
	var delivered *time.Time
	if status == fabric.DeliveryDelivered {
		delivered = &now
	}
	_, err := d.db.Pool.Exec(ctx, `
		UPDATE webhook_deliveries SET status = @status, attempts = attempts + 1, response_status = nullif(@code, 0),
			last_error = nullif(@error, ''), updated_at = @now, delivered_at = @delivered
		WHERE id = @id AND status = 'pending'`,
		pgx.NamedArgs{"id": id, "status": string(status), "code": code, "error": lastError, "now": now, "delivered": delivered})
	return formatError(err)
}

// List returns deliveries newest first, without their bodies, and the cursor of the next page
// (0 at the end).
func (d *Deliveries) List(ctx context.Context, f fabric.DeliveryFilter) ([]fabric.Delivery, int64, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	if f.Before <= 0 {
		f.Before = 1<<63 - 1
	}
	rows, err := d.db.Pool.Query(ctx, `
		SELECT id, webhook, event, coalesce(change_id, 0), '', status, attempts, coalesce(response_status, 0), coalesce(last_error, ''),
			created_at, updated_at, delivered_at
		FROM webhook_deliveries
		WHERE id < @before AND (@status = '' OR status = @status) AND (@webhook = '' OR webhook = @webhook)
		ORDER BY id DESC LIMIT @limit`,
		pgx.NamedArgs{"before": f.Before, "status": string(f.Status), "webhook": f.Webhook, "limit": f.Limit + 1})
	if err != nil {
		return nil, 0, formatError(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, 0, formatError(err)
	}
	var next int64
	if len(list) > f.Limit {
		list = list[:f.Limit]
		next = list[f.Limit-1].ID
	}
	return list, next, nil
}
