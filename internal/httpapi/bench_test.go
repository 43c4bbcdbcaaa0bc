package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/ssh"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/pgcluster"
	"github.com/returnpath/returnpath/internal/postgres"
)

// benchClients is the number of concurrent bootstrap clients the issue asks for.
const benchClients = 16

// benchInventory has room for 50,000 pre-registered hosts and the benchmark's own.
func benchInventory() *fabric.Inventory {
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: netip.MustParsePrefix("10.0.0.0/8"), SubnetLength: 26}},
		Segments: []fabric.Segment{{Name: "fleet", Hosts: netip.MustParsePrefix("172.16.0.0/12"), Pool: "docker",
			RouteVia: []fabric.Hop{{Device: "sw1", NextHop: fabric.NextHop{Host: true}}}}},
		Devices: []fabric.Device{{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH,
			Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"}},
	}
}

// benchDualInventory is benchInventory with an IPv6 family: every host also gets a /64 of
// fd00:200::/40 (16,777,216 subnets), routed via its address6 in fd10::/64.
func benchDualInventory() *fabric.Inventory {
	inv := benchInventory()
	inv.Pools = append(inv.Pools, fabric.Pool{Name: "docker6", Prefix: netip.MustParsePrefix("fd00:200::/40"), SubnetLength: 64})
	inv.Segments[0].Hosts6, inv.Segments[0].Pool6 = netip.MustParsePrefix("fd10::/64"), "docker6"
	return inv
}

// durableCluster starts a PostgreSQL cluster with production durability (fsync on), so that
// the figures compare with a real server and with pgbench on the same cluster, and with the
// statistics of the breakdown (benchSettings).
func durableCluster(b *testing.B) *pgcluster.Cluster {
	b.Helper()
	c, err := pgcluster.Start(context.Background(), "", pgcluster.Options{Durable: true, Settings: benchSettings})
	if err != nil {
		b.Skipf("no PostgreSQL to benchmark against: %v", err)
	}
	b.Cleanup(func() { _ = c.Stop() })
	return c
}

func createDB(b *testing.B, c *pgcluster.Cluster, name string) *postgres.DB {
	b.Helper()
	ctx := context.Background()
	admin, err := postgres.Open(ctx, c.URL("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := admin.Pool.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	admin.Close()
	db, err := postgres.Open(ctx, c.URL(name))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	if err := db.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkRegisterHosts drives POST /v1/hosts over loopback HTTP from 16 concurrent clients,
// on an empty registry, on an empty one with dual-stack registrations (address6 too: two
// subnets, routes of both families) and on one already holding 50,000 hosts, and reports
// registrations per second and latency percentiles. The IPv4-only and dual-stack runs on an
// empty registry come back to back, so that their ratio is taken under the same load.
//
//	go test -run '^$' -bench BenchmarkRegisterHosts -benchtime 1x ./internal/httpapi/
func BenchmarkRegisterHosts(b *testing.B) {
	c := durableCluster(b)
	for _, tc := range []struct {
		name    string
		prefill int
		dual    bool
	}{{name: "empty"}, {name: "dual-stack-empty", dual: true}, {name: "prefilled-50000", prefill: 50000}} {
		b.Run(tc.name, func(b *testing.B) {
			db := createDB(b, c, strings.ReplaceAll("bench_"+tc.name, "-", "_"))
			inv := benchInventory()
			if tc.dual {
				inv = benchDualInventory()
			}
			ctx := context.Background()
			if err := db.SyncInventory(ctx, inv); err != nil {
				b.Fatal(err)
			}
			if tc.prefill > 0 {
				prefill(b, db, tc.prefill)
			}
			secret, err := db.CreateToken(ctx, "bench", fabric.Token{Name: "bench", Role: fabric.RoleBootstrap}, nil)
			if err != nil {
				b.Fatal(err)
			}
			// The real path: every registration also files its add change, with the FRR
			// preview rendered, in the same transaction.
			swCfg := drivers.Config{Name: "sw1", Platform: fabric.PlatformFRR, VRF: "default", Managed: inv.ManagedPrefixes()}
			preview := func(_ string, ops []fabric.RouteOp) ([]string, error) { return ssh.FRRPreview(swCfg, ops) }
			hosts := postgres.NewHosts(db, inv)
			hosts.SetChanges(postgres.NewChanges(db, inv, preview, fabric.ApprovalPolicy{FourEyes: true}))
			srv := httpapi.New(httpapi.Config{}, inv, hosts, db, slog.New(slog.DiscardHandler))
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
			const perRun = 6000
			for b.Loop() {
				before := takeUsage(b, c, db)
				lat, took := driveHosts(b, client, ts.URL, secret, perRun, tc.prefill, tc.dual)
				reportBreakdown(b, before, takeUsage(b, c, db), len(lat))
				slices.Sort(lat)
				pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
				b.ReportMetric(float64(len(lat))/took.Seconds(), "registrations/s")
				b.ReportMetric(pct(0.50), "p50-ms")
				b.ReportMetric(pct(0.99), "p99-ms")
				b.ReportMetric(pct(1), "max-ms")
			}
		})
	}
}

// prefill registers n hosts directly in SQL, as a registry that has grown would hold them.
func prefill(b *testing.B, db *postgres.DB, n int) {
	b.Helper()
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO hosts (name, address, segment, pool, subnet, state, created_by, created_at, updated_at)
		SELECT 'old-' || i, '172.16.0.0'::inet + 1 + i, 'fleet', 'docker',
		       set_masklen('10.0.0.0'::inet + (i::bigint << 6), 26)::cidr, 'active', 'bench', now(), now()
		FROM generate_series(0, $1 - 1) AS i`, n)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `SELECT setval(format('pool_cursor_%s', id)::regclass, $1, false) FROM pools`, n); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE hosts`); err != nil {
		b.Fatal(err)
	}
}

var runID atomic.Int64

// drive registers n IPv4-only hosts from benchClients concurrent clients, and returns each
// registration's latency and the time all of them took.
func drive(b *testing.B, client *http.Client, url, secret string, n, offset int) ([]time.Duration, time.Duration) {
	return driveHosts(b, client, url, secret, n, offset, false)
}

// driveHosts is drive with an address6 in every registration when dual.
func driveHosts(b *testing.B, client *http.Client, url, secret string, n, offset int, dual bool) ([]time.Duration, time.Duration) {
	run := runID.Add(1)
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				k := uint32(0xAC110000) + uint32(offset+int(run)*n+i+1) // from 172.17.0.0
				a := netip.AddrFrom4([4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)})
				body := fmt.Sprintf(`{"name":"r%d-h%d","address":"%s"}`, run, i, a)
				if dual {
					a6 := netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x10, 12: byte(k >> 24), 13: byte(k >> 16), 14: byte(k >> 8), 15: byte(k)})
					body = fmt.Sprintf(`{"name":"r%d-h%d","address":"%s","address6":"%s"}`, run, i, a, a6)
				}
				req, _ := http.NewRequest("POST", url+"/v1/hosts", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+secret)
				t0 := time.Now()
				resp, err := client.Do(req)
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d registrations failed", f, n)
	}
	return lat, took
}

// BenchmarkPostgresCeiling runs pgbench on the same kind of cluster: single-row inserts into a
// table with the same GiST exclusion constraint, 16 clients, 10 s. It is the ceiling an
// allocation endpoint can approach.
//
//	go test -run '^$' -bench BenchmarkPostgresCeiling -benchtime 1x ./internal/httpapi/
func BenchmarkPostgresCeiling(b *testing.B) {
	c := durableCluster(b)
	bin, err := pgcluster.BinDir()
	if err != nil {
		b.Skip(err)
	}
	db := createDB(b, c, "ceiling")
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `
		CREATE TABLE ceiling (id bigserial PRIMARY KEY, subnet cidr NOT NULL,
			EXCLUDE USING gist (subnet inet_ops WITH &&));
		CREATE SEQUENCE ceiling_seq`); err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(b.TempDir(), "insert.sql")
	if err := os.WriteFile(script, []byte("INSERT INTO ceiling (subnet) VALUES (set_masklen('10.0.0.0'::inet + (nextval('ceiling_seq') << 6), 26)::cidr);\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	tps := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	for b.Loop() {
		out, err := exec.Command(filepath.Join(bin, "pgbench"), "-n", "-c", fmt.Sprint(benchClients), "-j", "2", "-T", "10",
			"-f", script, "-h", c.Dir, "-U", "postgres", "ceiling").CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out)
		}
		m := tps.FindSubmatch(out)
		if m == nil {
			b.Fatalf("no tps in pgbench output:\n%s", out)
		}
		var v float64
		fmt.Sscan(string(m[1]), &v)
		b.ReportMetric(v, "inserts/s")
	}
}
