// Package postgres stores returnpath's registry in PostgreSQL with pgx: the synced inventory,
// hosts and their subnets, API tokens and the audit log. The database enforces the invariants
// (no overlapping subnets, unique names and addresses) so that any number of service processes
// can share it.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/migrations"
)

// DB is a connection pool to returnpath's database.
type DB struct {
	Pool *pgxpool.Pool
	// Now is the clock; tests may replace it.
	Now func() time.Time

	auth authCache
}

// Open connects to the database at url. It does not migrate.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors may echo the URL, password included: keep only the gist.
		return nil, fabric.Errorf(fabric.EINVALID, "database_url: cannot parse the connection string")
	}
	// Each device session in progress holds a connection for its advisory locks (one apply
	// job per device, and the device's session budget), beside the API's and River's own.
	if cfg.MaxConns < 32 {
		cfg.MaxConns = 32
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return &DB{Pool: pool, Now: func() time.Time { return time.Now().UTC() }}, nil
}

// Close closes every connection.
func (db *DB) Close() { db.Pool.Close() }

func (db *DB) provider() (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	sqlDB := stdlib.OpenDBFromPool(db.Pool)
	return goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS,
		goose.WithSessionLocker(locker), goose.WithLogger(goose.NopLogger()))
}

// Migrate applies every pending migration under a Postgres advisory lock, so that several
// processes starting at once migrate exactly once.
func (db *DB) Migrate(ctx context.Context, log *slog.Logger) error {
	p, err := db.provider()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("applied migration", "version", r.Source.Version, "file", r.Source.Path, "took_ms", r.Duration.Milliseconds())
	}
	return db.migrateRiver(ctx, log)
}

// migrateRiver applies the job queue's own schema (River's migrations), under an advisory
// lock of ours so that processes starting together do it once.
func (db *DB) migrateRiver(ctx context.Context, log *slog.Logger) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('returnpath.river_migrate'))`); err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('returnpath.river_migrate'))`) //nolint:errcheck
	m, err := rivermigrate.New(riverpgxv5.New(db.Pool), nil)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	for _, v := range res.Versions {
		log.Info("applied river migration", "version", v.Version)
	}
	return nil
}

// Ready reports whether the database answers and every migration is applied.
func (db *DB) Ready(ctx context.Context) error {
	if err := db.Pool.Ping(ctx); err != nil {
		return fabric.Errorf(fabric.EUNAVAILABLE, "database unreachable")
	}
	p, err := db.provider()
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fabric.Errorf(fabric.EUNAVAILABLE, "cannot read the migration state")
	}
	if pending {
		return fabric.Errorf(fabric.EUNAVAILABLE, "migrations are pending: run 'returnpath migrate'")
	}
	return nil
}

// querier is what a pool and a transaction have in common.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// inTx runs fn in a transaction and commits if fn returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		return formatError(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	return formatError(tx.Commit(ctx))
}

// formatError maps database errors to domain errors with user-safe messages.
func formatError(err error) error {
	if err == nil {
		return nil
	}
	var fe *fabric.Error
	if errors.As(err, &fe) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505", "23P01":
			return &fabric.Error{Code: fabric.ECONFLICT, Message: "conflicts with an existing record"}
		case "57P01", "57P02", "57P03", "53300":
			return &fabric.Error{Code: fabric.EUNAVAILABLE, Message: "database unavailable"}
		}
		return fmt.Errorf("database: %w", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return &fabric.Error{Code: fabric.EUNAVAILABLE, Message: "database unavailable"}
	}
	return err
}

// TryLockDevice takes the session-level advisory lock that allows one session per device
// across every service process on this database. ok is false when another holds it. The
// lock lives on its own connection and dies with it, so a killed process never leaves a
// device locked.
func (db *DB) TryLockDevice(ctx context.Context, device string) (unlock func(), ok bool, err error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, formatError(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('returnpath.device'), hashtext($1))`, device).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, formatError(err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() {
		_, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('returnpath.device'), hashtext($1))`, device)
		if err != nil {
			// Closing the connection is what releases the lock for sure.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}, true, nil
}
