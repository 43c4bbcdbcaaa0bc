package postgres

import (
	"context"

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
