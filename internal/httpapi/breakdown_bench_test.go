package httpapi_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/pgcluster"
	"github.com/returnpath/returnpath/internal/postgres"
)

// The registration benchmark's breakdown per step (issue 14: where a target is not met, the
// benchmark shows which step costs what). Its cluster loads pg_stat_statements and times WAL
// syncs (benchSettings), so that every run also reports, per registration:
//   - go-cpu-ms: CPU of this process: the HTTP server, the registry's Go code (planning, the
//     preview), pgx, and the benchmark's own 16 clients, which run on the same two cores;
//   - pg-cpu-ms: CPU of the cluster's server processes (backends, WAL writer, checkpointer);
//   - pg-candidate-ms, pg-insert-ms, pg-fk-ms, pg-other-ms: the server's time (planning plus
//     execution) in the candidate statement, the one statement that inserts the host, its change,
//     ops, events and audit rows, the foreign-key checks that insert fires, and everything else;
//   - wal-syncs and wal-sync-ms: how many WAL flushes a registration's commit shared (group
//     commit) and what they took in all, per registration.

// benchSettings are the benchmark cluster's settings beyond Durable: the statistics the
// breakdown reads. Both the registration benchmark and pgbench's ceiling run with them.
var benchSettings = []string{
	"shared_preload_libraries=pg_stat_statements",
	"pg_stat_statements.track=all",
	"pg_stat_statements.track_planning=on",
	"track_wal_io_timing=on",
}

// usage is a snapshot of the counters the breakdown subtracts.
type usage struct {
	goCPU, pgCPU time.Duration
	stmts        map[string]float64 // step -> server milliseconds (planning and execution)
	walSyncs     int64
	walSyncMs    float64
}

var steps = []struct {
	name string
	re   *regexp.Regexp
}{
	{"candidate", regexp.MustCompile(`^\s*WITH ex AS`)},
	{"insert", regexp.MustCompile(`^\s*WITH h AS \(\s*INSERT INTO hosts`)},
	{"fk", regexp.MustCompile(`FROM ONLY "public"\.`)},
}

// takeUsage reads the counters for database db of cluster c.
func takeUsage(b *testing.B, c *pgcluster.Cluster, db *postgres.DB) usage {
	b.Helper()
	ctx := context.Background()
	var u usage
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	u.goCPU = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
	u.pgCPU = clusterCPU(b, c)
	if _, err := db.Pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		b.Fatal(err)
	}
	rows, err := db.Pool.Query(ctx, `SELECT query, total_plan_time + total_exec_time FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		b.Fatal(err)
	}
	u.stmts = map[string]float64{}
	for rows.Next() {
		var q string
		var ms float64
		if err := rows.Scan(&q, &ms); err != nil {
			b.Fatal(err)
		}
		step := "other"
		for _, s := range steps {
			if s.re.MatchString(q) {
				step = s.name
				break
			}
		}
		u.stmts[step] += ms
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT wal_sync, wal_sync_time FROM pg_stat_wal`).Scan(&u.walSyncs, &u.walSyncMs); err != nil {
		b.Fatal(err)
	}
	return u
}

// reportBreakdown reports what n registrations cost between before and after, per registration.
func reportBreakdown(b *testing.B, before, after usage, n int) {
	per := func(d float64) float64 { return d / float64(n) }
	b.ReportMetric(per(float64(after.goCPU-before.goCPU)/1e6), "go-cpu-ms")
	b.ReportMetric(per(float64(after.pgCPU-before.pgCPU)/1e6), "pg-cpu-ms")
	for _, s := range append([]string{"candidate", "insert", "fk"}, "other") {
		b.ReportMetric(per(after.stmts[s]-before.stmts[s]), "pg-"+s+"-ms")
	}
	b.ReportMetric(per(float64(after.walSyncs-before.walSyncs)), "wal-syncs")
	b.ReportMetric(per(after.walSyncMs-before.walSyncMs), "wal-sync-ms")
}

// clusterCPU is the CPU time of the cluster's postmaster and all its children so far (exited
// backends excepted: the benchmark's pool keeps its connections).
func clusterCPU(b *testing.B, c *pgcluster.Cluster) time.Duration {
	b.Helper()
	pidFile, err := os.ReadFile(filepath.Join(c.Dir, "data", "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pm := strings.SplitN(string(pidFile), "\n", 2)[0]
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// The fields after the command (which may hold spaces) start after its ')'.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 || (e.Name() != pm && f[1] != pm) {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += utime + stime
	}
	return time.Duration(ticks) * time.Second / ticksPerSecond
}
