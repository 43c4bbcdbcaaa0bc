// Package pgtest gives each test its own migrated database on a real PostgreSQL server:
// the one at TEST_DATABASE_URL, or a throwaway cluster started for the test binary.
package pgtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/pgcluster"
	"github.com/returnpath/returnpath/internal/postgres"
)

var (
	mu       sync.Mutex // guards cluster and baseURL
	tplMu    sync.Mutex // guards template and serialises template copies
	cluster  *pgcluster.Cluster
	baseURL  string // URL of the admin database ("postgres") on the server in use
	template string // name of the migrated template database, once made
	counter  atomic.Int64
)

// Main runs the package's tests and stops the throwaway cluster, if one was started.
// Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	Cleanup()
	return code
}

// Cleanup stops the throwaway cluster, if one was started. Main calls it; a TestMain that
// runs its tests some other way (e.g. labtest.Main) calls it after them.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stopping cluster:", err)
		}
	}
	if template != "" && cluster == nil {
		dropDatabase(template)
	}
}

// server returns the admin URL of the server, starting a cluster on first use.
func server(tb testing.TB) string {
	mu.Lock()
	defer mu.Unlock()
	if baseURL != "" {
		return baseURL
	}
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		baseURL = u
		return baseURL
	}
	c, err := pgcluster.Start(context.Background(), "", pgcluster.Options{})
	if err != nil {
		tb.Fatalf("pgtest: start a throwaway PostgreSQL cluster (or set TEST_DATABASE_URL): %v", err)
	}
	cluster = c
	baseURL = c.URL("postgres")
	return baseURL
}

func withDatabase(u, db string) string {
	p, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	p.Path = "/" + db
	return p.String()
}

func adminExec(tb testing.TB, sql string) {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), server(tb))
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		tb.Fatalf("pgtest: %s: %v", sql, err)
	}
}

func dropDatabase(name string) {
	conn, err := pgx.Connect(context.Background(), baseURL)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// ensureTemplate creates and migrates the template database once per test binary, so that
// each test's database is a cheap file copy.
func ensureTemplate(tb testing.TB) string {
	srv := server(tb)
	tplMu.Lock()
	defer tplMu.Unlock()
	if template != "" {
		return template
	}
	name := fmt.Sprintf("rp_tpl_%d", os.Getpid())
	adminExec(tb, "CREATE DATABASE "+name)
	db, err := postgres.Open(context.Background(), withDatabase(srv, name))
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer db.Close()
	if err := db.Migrate(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
		tb.Fatalf("pgtest: migrate template: %v", err)
	}
	template = name
	return template
}

// URL returns the URL of a new, migrated database for tb's use alone; it is dropped at
// cleanup when the server is shared.
func URL(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, "t", ensureTemplate(tb))
}

// newDatabase creates a database for tb alone, a copy of template when one is given (else
// empty), dropped at cleanup when the server is shared, and returns its URL.
func newDatabase(tb testing.TB, kind, template string) string {
	tb.Helper()
	name := fmt.Sprintf("rp_%s_%d_%d", kind, os.Getpid(), counter.Add(1))
	if template == "" {
		adminExec(tb, "CREATE DATABASE "+name)
	} else {
		// CREATE DATABASE ... TEMPLATE fails while another copy of the same template is
		// being made; serialise the copies.
		tplMu.Lock()
		adminExec(tb, "CREATE DATABASE "+name+" TEMPLATE "+template)
		tplMu.Unlock()
	}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		tb.Cleanup(func() { dropDatabase(name) })
	}
	return withDatabase(baseURL, name)
}

// EmptyURL returns the URL of a new database without any migration, for tb's use alone (for
// tests of a migration on data written under an older schema).
func EmptyURL(tb testing.TB) string {
	tb.Helper()
	server(tb)
	return newDatabase(tb, "e", "")
}

// Open returns a *postgres.DB on a new migrated database, closed at cleanup.
func Open(tb testing.TB) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), URL(tb))
	if err != nil {
		tb.Fatalf("pgtest: open: %v", err)
	}
	tb.Cleanup(db.Close)
	return db
}
