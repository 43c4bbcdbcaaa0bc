package pgcluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestHaltResume: a halted cluster refuses connections and keeps its data; resumed, it serves
// the same database on the same socket; Stop then removes it.
func TestHaltResume(t *testing.T) {
	if _, err := BinDir(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	c, err := Start(ctx, "", Options{Settings: []string{"synchronous_commit=on"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.CreateDatabase(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, c.URL("kept"))
		if err != nil {
			return err
		}
		defer conn.Close(cctx)
		_, err = conn.Exec(cctx, sql)
		return err
	}
	if err := exec(`CREATE TABLE t (v int); INSERT INTO t VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	if pid, ok := c.PID(); !ok || pid <= 0 {
		t.Errorf("PID of a running cluster = %d, %v", pid, ok)
	}

	if err := c.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exec(`SELECT 1`); err == nil {
		t.Fatal("a halted cluster answered")
	}
	if err := c.Halt(ctx); err == nil {
		t.Error("Halt of a halted cluster succeeded")
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "data", "PG_VERSION")); err != nil {
		t.Fatalf("Halt lost the data directory: %v", err)
	}
	if pid, ok := c.PID(); ok {
		t.Errorf("PID of a halted cluster = %d, running", pid)
	}

	if err := c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(ctx); err == nil {
		t.Error("Resume of a running cluster succeeded")
	}
	if err := exec(`DO $$ BEGIN IF (SELECT v FROM t) <> 42 THEN RAISE 'lost'; END IF; END $$`); err != nil {
		t.Fatalf("after Resume: %v", err)
	}

	// Halted, then stopped: Stop still removes the directory.
	if err := c.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("Stop left %s: %v", c.Dir, err)
	}
}
