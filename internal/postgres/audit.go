package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// insertAudit records a mutation inside the transaction that makes it.
func insertAudit(ctx context.Context, tx pgx.Tx, at time.Time, actor, action, object string, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit (at, actor, action, object, details) VALUES ($1, $2, $3, $4, $5)`,
		at, actor, action, object, details)
	return formatError(err)
}

// Audit returns audit entries newest first, and the cursor of the next page (0 at the end).
func (db *DB) Audit(ctx context.Context, f fabric.AuditFilter) ([]fabric.AuditEntry, int64, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	if f.Before <= 0 {
		f.Before = 1<<63 - 1
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT id, at, actor, action, object, details FROM audit
		WHERE id < $1 AND ($2 = '' OR object = $2) ORDER BY id DESC LIMIT $3`, f.Before, f.Object, f.Limit+1)
	if err != nil {
		return nil, 0, formatError(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.AuditEntry, error) {
		var e fabric.AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Object, &e.Details)
		return e, err
	})
	if err != nil {
		return nil, 0, formatError(err)
	}
	var next int64
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[f.Limit-1].ID
	}
	return out, next, nil
}
