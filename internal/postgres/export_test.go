package postgres

import (
	"context"
	"fmt"

	"github.com/returnpath/returnpath/internal/fabric"
)

// FindStale runs the lease reaper's lookup alone (staleTx, up to limit hosts) in a
// transaction it rolls back: for the benchmark that times finding stale hosts apart from
// filing their removals.
func (s *Hosts) FindStale(ctx context.Context, limit int) ([]fabric.Host, error) {
	tx, err := s.db.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	return staleTx(ctx, tx, s.Leases().StaleBefore(s.db.Now()), limit)
}

// StaleSQL is the reaper's lookup statement, for the benchmark to show its plan.
const StaleSQL = staleSQL

// SetCursor moves pool's allocation cursor so that its next never-used subnet is index next.
func SetCursor(ctx context.Context, db *DB, pool string, next int64) error {
	_, err := db.Pool.Exec(ctx, `SELECT setval(format('pool_cursor_%s', id)::regclass, $2, false) FROM pools WHERE name = $1`, pool, next)
	return err
}

// Cursor returns the index pool's cursor hands out next.
func Cursor(ctx context.Context, db *DB, pool string) (int64, error) {
	var id int64
	if err := db.Pool.QueryRow(ctx, `SELECT id FROM pools WHERE name = $1`, pool).Scan(&id); err != nil {
		return 0, err
	}
	var last int64
	var called bool
	if err := db.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT last_value, is_called FROM pool_cursor_%d`, id)).Scan(&last, &called); err != nil {
		return 0, err
	}
	if called {
		last++
	}
	return last, nil
}

// MigrateTo applies the migrations up to and including version.
func MigrateTo(ctx context.Context, db *DB, version int64) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}
