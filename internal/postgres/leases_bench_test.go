package postgres_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// BenchmarkReap1000Of100000 measures the lease reaper on a registry of 100,000 active hosts,
// 1,000 of them stale: find times the reaper's lookup alone; find+file one Reap, which files
// 1,000 remove changes (plan, ops, events, audit), the removals undone between iterations
// outside the timer. The stale hosts are found through hosts_lease_renewed (migration 0010),
// not a scan of the table.
func BenchmarkReap1000Of100000(b *testing.B) {
	ctx := context.Background()
	db := pgtest.Open(b)
	inv := &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: pfx("10.0.0.0/8"), SubnetLength: 28}},
		Segments: []fabric.Segment{{Name: "rack1", Hosts: pfx("100.64.0.0/10"), Pool: "docker",
			RouteVia: []fabric.Hop{{Device: "sw1", NextHop: fabric.NextHop{Host: true}}}}},
		Devices: []fabric.Device{{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH,
			Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"}},
	}
	if err := db.SyncInventory(ctx, inv); err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	// 100,000 active hosts; every hundredth was last renewed two days ago.
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO hosts (name, address, segment, pool, subnet, state, created_by, created_at, updated_at, lease_renewed_at)
		SELECT 'h' || i, '100.64.0.0'::inet + i, 'rack1', 'docker', set_masklen('10.0.0.0'::inet + i * 16, 28)::cidr, 'active', 'bench',
		       $1::timestamptz, $1::timestamptz, CASE WHEN i % 100 = 0 THEN $1::timestamptz - interval '2 days' ELSE $1::timestamptz END
		FROM generate_series(1, 100000) i`, now); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE hosts`); err != nil {
		b.Fatal(err)
	}
	changes := postgres.NewChanges(db, inv, preview, fabric.ApprovalPolicy{})
	hosts := postgres.NewHosts(db, inv)
	hosts.SetChanges(changes)
	hosts.SetLeases(fabric.LeasePolicy{TTL: 24 * time.Hour, Grace: time.Hour, OnExpiry: fabric.LeaseRemove})
	// find: the reaper's lookup alone (the brief: "finds 1,000 stale hosts among 100,000 in
	// under 1 s"), all 1,000 in one query, locked and released.
	b.Run("find", func(b *testing.B) {
		for range b.N {
			found, err := hosts.FindStale(ctx, 1000)
			if err != nil || len(found) != 1000 {
				b.Fatalf("FindStale = %d hosts, %v; want 1000", len(found), err)
			}
		}
	})
	// find+file: one Reap, which finds them in batches of 200 and files each one's removal.
	b.Run("find+file", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			if _, err := db.Pool.Exec(ctx, `DELETE FROM changes; UPDATE hosts SET state = 'active' WHERE state = 'removing'`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			reaped, err := hosts.Reap(ctx)
			if err != nil || len(reaped) != 1000 {
				b.Fatalf("Reap = %d hosts, %v; want 1000", len(reaped), err)
			}
		}
	})
	rows, err := db.Pool.Query(ctx, `EXPLAIN `+postgres.StaleSQL, now.Add(-25*time.Hour), 1000)
	if err != nil {
		b.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("plan of the reaper's lookup:\n%s", strings.Join(plan, "\n"))
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "hosts_lease_renewed") || strings.Contains(p, "Seq Scan on hosts") {
		b.Errorf("the reaper's lookup does not use hosts_lease_renewed, or scans hosts:\n%s", p)
	}
}
