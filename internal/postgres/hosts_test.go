package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
	bob  = fabric.Actor{Name: "bob", Role: fabric.RoleBootstrap}
)

// inventory returns a fabric whose pool holds size /24 subnets.
func inventory(poolPrefix string) *fabric.Inventory {
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: pfx(poolPrefix), SubnetLength: 24}},
		Segments: []fabric.Segment{{Name: "rack1", Hosts: pfx("10.10.0.0/16"), Pool: "docker",
			RouteVia: []fabric.Hop{{Device: "sw1", NextHop: fabric.NextHop{Host: true}}}}},
		Devices: []fabric.Device{{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH,
			Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"}},
	}
}

func newHosts(t *testing.T, poolPrefix string) (*postgres.DB, *postgres.Hosts) {
	t.Helper()
	db := pgtest.Open(t)
	inv := inventory(poolPrefix)
	if err := db.SyncInventory(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	return db, postgres.NewHosts(db, inv)
}

func code(err error) string { return fabric.ErrorCode(err) }

func TestRegisterAllocatesInOrderAndIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, hosts := newHosts(t, "10.210.0.0/16")
	h1, created, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")})
	if err != nil || !created {
		t.Fatalf("Register(d1) = %v, %v", created, err)
	}
	if h1.Subnet != pfx("10.210.0.0/24") || h1.State != fabric.HostPending || h1.Segment != "rack1" {
		t.Errorf("d1 = %+v", h1)
	}
	h2, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.10.102")})
	if err != nil || h2.Subnet != pfx("10.210.1.0/24") {
		t.Fatalf("Register(d2) = %v, %v", h2.Subnet, err)
	}
	again, created, err := hosts.Register(ctx, bob, fabric.Registration{Name: "D1", Address: addr("10.10.10.101")})
	if err != nil || created || again.Subnet != h1.Subnet {
		t.Errorf("repeat Register(d1) = %v created=%v err=%v, want %v, false, nil", again.Subnet, created, err, h1.Subnet)
	}
}

func TestRegisterConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, hosts := newHosts(t, "10.210.0.0/16")
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Subnet: pfx("10.210.10.0/24")}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		reg       fabric.Registration
		wantCode  string
		wantField string
	}{
		{"same name other address", fabric.Registration{Name: "d1", Address: addr("10.10.10.9")}, fabric.ECONFLICT, "address"},
		{"same address other name", fabric.Registration{Name: "d9", Address: addr("10.10.10.101")}, fabric.ECONFLICT, "address"},
		{"requested subnet taken", fabric.Registration{Name: "d2", Address: addr("10.10.10.102"), Subnet: pfx("10.210.10.0/24")}, fabric.ECONFLICT, "subnet"},
		{"requested subnet outside pool", fabric.Registration{Name: "d2", Address: addr("10.10.10.102"), Subnet: pfx("172.11.10.0/24")}, fabric.EINVALID, "subnet"},
		{"address in no segment", fabric.Registration{Name: "d2", Address: addr("10.99.0.1")}, fabric.EINVALID, "address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := hosts.Register(ctx, bob, tt.reg)
			var fe *fabric.Error
			if !errors.As(err, &fe) || fe.Code != tt.wantCode || fe.Field != tt.wantField {
				t.Fatalf("Register() = %v, want %s on %q", err, tt.wantCode, tt.wantField)
			}
		})
	}
	// The conflicting subnet's holder is named.
	_, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.10.102"), Subnet: pfx("10.210.10.0/24")})
	if got := fabric.ErrorMessage(err); got != "10.210.10.0/24 overlaps the subnet of host d1" {
		t.Errorf("message = %q", got)
	}
}

func TestCursorSkipsRequestedSubnets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, hosts := newHosts(t, "10.210.0.0/16")
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "pinned", Address: addr("10.10.10.1"), Subnet: pfx("10.210.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	h, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "next", Address: addr("10.10.10.2")})
	if err != nil || h.Subnet != pfx("10.210.1.0/24") {
		t.Fatalf("Register() = %v, %v; want 10.210.1.0/24", h.Subnet, err)
	}
}

func TestPoolExhaustion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, hosts := newHosts(t, "10.210.0.0/22") // four /24s
	for i := range 4 {
		if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: fmt.Sprintf("d%d", i), Address: addr(fmt.Sprintf("10.10.10.%d", i+1))}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d4", Address: addr("10.10.10.5")})
	if code(err) != fabric.ECONFLICT || fabric.ErrorMessage(err) != "pool docker (10.210.0.0/22) is exhausted: all 4 /24 subnets are allocated" {
		t.Fatalf("Register() on a full pool = %v", err)
	}
}

// TestGapScanReclaimsLostSubnets covers a subnet lost when a process died between moving the
// cursor and registering: once the cursor is exhausted, the gap is found and used.
func TestGapScanReclaimsLostSubnets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, hosts := newHosts(t, "10.210.0.0/23")                        // two /24s
	if err := postgres.SetCursor(ctx, db, "docker", 1); err != nil { // index 0 "lost"
		t.Fatal(err)
	}
	a, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "a", Address: addr("10.10.10.1")})
	if err != nil || a.Subnet != pfx("10.210.1.0/24") {
		t.Fatalf("a = %v, %v", a.Subnet, err)
	}
	b, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "b", Address: addr("10.10.10.2")})
	if err != nil || b.Subnet != pfx("10.210.0.0/24") {
		t.Fatalf("b = %v, %v; want the lost 10.210.0.0/24", b.Subnet, err)
	}
}

// TestConcurrentRegistration registers many hosts at once from many goroutines (and two
// registries sharing the database, as two service processes would): every host gets a
// subnet, none overlap, and nothing fails.
func TestConcurrentRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, hosts := newHosts(t, "10.210.0.0/16")
	other := postgres.NewHosts(db, inventory("10.210.0.0/16"))
	const n = 200
	subnets := make([]netip.Prefix, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			reg := hosts
			if i%2 == 1 {
				reg = other
			}
			// Every host registers twice at once, as a retrying bootstrap would.
			name, a := fmt.Sprintf("h%03d", i), addr(fmt.Sprintf("10.10.%d.%d", 1+i/200, 1+i%200))
			var inner sync.WaitGroup
			var first netip.Prefix
			var ferr error
			inner.Go(func() {
				h, _, err := reg.Register(ctx, bob, fabric.Registration{Name: name, Address: a})
				first, ferr = h.Subnet, err
			})
			h, _, err := reg.Register(ctx, bob, fabric.Registration{Name: name, Address: a})
			inner.Wait()
			subnets[i], errs[i] = h.Subnet, errors.Join(err, ferr)
			if err == nil && ferr == nil && first != h.Subnet {
				errs[i] = fmt.Errorf("two registrations of %s got %v and %v", name, first, h.Subnet)
			}
		})
	}
	wg.Wait()
	seen := map[netip.Prefix]int{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("host %d: %v", i, err)
		}
		if prev, dup := seen[subnets[i]]; dup {
			t.Errorf("hosts %d and %d both hold %v", prev, i, subnets[i])
		}
		seen[subnets[i]] = i
	}
	var live int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM hosts WHERE state <> 'removed'`).Scan(&live); err != nil || live != n {
		t.Errorf("live hosts = %d, %v; want %d", live, err, n)
	}
}

func TestListPaginationAndFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, hosts := newHosts(t, "10.210.0.0/16")
	for i := range 5 {
		if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: fmt.Sprintf("d%d", i), Address: addr(fmt.Sprintf("10.10.10.%d", i+1))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hosts.Remove(ctx, bob, "d3"); err != nil {
		t.Fatal(err)
	}
	var names []string
	after := ""
	for {
		page, next, err := hosts.List(ctx, fabric.HostFilter{Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range page {
			names = append(names, h.Name)
		}
		if next == "" {
			break
		}
		after = next
	}
	if fmt.Sprint(names) != "[d0 d1 d2 d3 d4]" {
		t.Errorf("pages = %v", names)
	}
	removing, _, err := hosts.List(ctx, fabric.HostFilter{State: fabric.HostRemoving})
	if err != nil || len(removing) != 1 || removing[0].Name != "d3" {
		t.Errorf("List(removing) = %v, %v", removing, err)
	}
}

func TestSyncRefusesToReshapeAPoolInUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, hosts := newHosts(t, "10.210.0.0/16")
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.1")}); err != nil {
		t.Fatal(err)
	}
	err := db.SyncInventory(ctx, inventory("172.20.0.0/16"))
	if code(err) != fabric.ECONFLICT {
		t.Fatalf("SyncInventory(reshaped pool) = %v, want conflict", err)
	}
	if err := db.SyncInventory(ctx, inventory("10.210.0.0/16")); err != nil {
		t.Fatalf("SyncInventory(same) = %v", err)
	}
}

// TestPoolCursorFollowsTheInventory: a pool's cursor (a sequence, migration 0014) starts at
// its first subnet, starts again when an unused pool is reshaped, and goes with the pool when
// the configuration drops it; a pool added again under the same name starts from its start.
func TestPoolCursorFollowsTheInventory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, hosts := newHosts(t, "10.210.0.0/16")
	h, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.1")})
	if err != nil || h.Subnet != pfx("10.210.0.0/24") {
		t.Fatalf("d1 = %v, %v", h.Subnet, err)
	}
	if next, err := postgres.Cursor(ctx, db, "docker"); err != nil || next != 1 {
		t.Fatalf("cursor after one registration = %d, %v; want 1", next, err)
	}
	if _, err := hosts.Remove(ctx, bob, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE hosts SET state = 'removed'`); err != nil { // its removal applied
		t.Fatal(err)
	}
	// Reshaped while no live host holds a subnet of it: the cursor starts again at index 0.
	reshaped := inventory("172.20.0.0/16")
	if err := db.SyncInventory(ctx, reshaped); err != nil {
		t.Fatal(err)
	}
	if next, err := postgres.Cursor(ctx, db, "docker"); err != nil || next != 0 {
		t.Fatalf("cursor after reshaping = %d, %v; want 0", next, err)
	}
	h, _, err = postgres.NewHosts(db, reshaped).Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.10.2")})
	if err != nil || h.Subnet != pfx("172.20.0.0/24") {
		t.Fatalf("d2 = %v, %v; want the reshaped pool's first subnet", h.Subnet, err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE hosts SET state = 'removed'`); err != nil {
		t.Fatal(err)
	}
	// Dropped from the configuration: its sequence goes with it.
	other := inventory("10.220.0.0/16")
	other.Pools[0].Name, other.Segments[0].Pool = "other", "other"
	if err := db.SyncInventory(ctx, other); err != nil {
		t.Fatal(err)
	}
	var seqs int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relkind = 'S' AND relname LIKE 'pool\_cursor\_%'`).Scan(&seqs); err != nil || seqs != 1 {
		t.Fatalf("%d pool cursors (%v) after dropping docker for other, want 1", seqs, err)
	}
	if err := db.SyncInventory(ctx, inventory("172.20.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if next, err := postgres.Cursor(ctx, db, "docker"); err != nil || next != 0 {
		t.Fatalf("cursor of docker added again = %d, %v; want 0", next, err)
	}
}

// TestPoolCursorMigration: migration 0014 turns each pool's next_index into its cursor
// sequence, so that a registry upgraded in place goes on where it stood.
func TestPoolCursorMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.EmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := postgres.MigrateTo(ctx, db, 13); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO pools (name, prefix, subnet_length, next_index)
		VALUES ('docker', '10.210.0.0/16', 24, 7), ('spare', '10.220.0.0/16', 24, 0)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for pool, want := range map[string]int64{"docker": 7, "spare": 0} {
		if next, err := postgres.Cursor(ctx, db, pool); err != nil || next != want {
			t.Errorf("%s cursor after migrating = %d, %v; want %d", pool, next, err, want)
		}
	}
	inv := inventory("10.210.0.0/16")
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	h, _, err := postgres.NewHosts(db, inv).Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.1")})
	if err != nil || h.Subnet != pfx("10.210.7.0/24") {
		t.Fatalf("first registration after the upgrade = %v, %v; want index 7, 10.210.7.0/24", h.Subnet, err)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	secret, err := db.CreateToken(ctx, "cli", fabric.Token{Name: "alice", Role: fabric.RoleReviewer, Owner: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := db.Authenticate(ctx, secret)
	if err != nil || a.Name != "alice" || a.Role != fabric.RoleReviewer {
		t.Fatalf("Authenticate() = %+v, %v", a, err)
	}
	if _, err := db.CreateToken(ctx, "cli", fabric.Token{Name: "alice", Role: fabric.RoleAdmin, Owner: "alice"}, nil); code(err) != fabric.ECONFLICT {
		t.Errorf("duplicate CreateToken() = %v", err)
	}
	if err := db.RevokeToken(ctx, "cli", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, secret); code(err) != fabric.EUNAUTHORIZED {
		t.Errorf("Authenticate(revoked) = %v", err)
	}
	entries, _, err := db.Audit(ctx, fabric.AuditFilter{})
	if err != nil || len(entries) != 2 || entries[0].Action != "token.revoke" || entries[1].Action != "token.create" {
		t.Errorf("Audit() = %+v, %v", entries, err)
	}
}

// TestRevocationAcrossProcesses: a process that looked a token up trusts it for at most the
// cache's TTL after another process revokes it.
func TestRevocationAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	a, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Now()
	a.Now = func() time.Time { return now }
	secret, err := a.CreateToken(ctx, "cli", fabric.Token{Name: "ci", Role: fabric.RoleViewer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := b.RevokeToken(ctx, "cli", "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(ctx, secret); code(err) != fabric.EUNAUTHORIZED {
		t.Errorf("the revoking process still accepts the token: %v", err)
	}
	if _, err := a.Authenticate(ctx, secret); err != nil {
		t.Errorf("within the cache TTL the other process may still accept it, got %v", err)
	}
	now = now.Add(3 * time.Second)
	if _, err := a.Authenticate(ctx, secret); code(err) != fabric.EUNAUTHORIZED {
		t.Errorf("3 s after the revocation the other process accepts the token: %v", err)
	}
}
