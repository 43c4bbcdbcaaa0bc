package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// v6OnlyInventory is dualTwoHopInventory plus rack6, an IPv6-only segment (hosts6 and pool6
// only) of pool only6 (pool6Prefix, /64s) whose firewall hop has a plain IPv6 next hop.
func v6OnlyInventory(pool6Prefix string) *fabric.Inventory {
	inv := dualTwoHopInventory()
	inv.Pools = append(inv.Pools, fabric.Pool{Name: "only6", Prefix: pfx(pool6Prefix), SubnetLength: 64})
	inv.Segments = append(inv.Segments, fabric.Segment{Name: "rack6", Hosts6: pfx("2001:db8:60::/64"), Pool6: "only6",
		RouteVia: []fabric.Hop{
			{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
			{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("2001:db8:20::1")}},
		}})
	return inv
}

// v6OnlyLifecycle is the lifecycle over v6OnlyInventory, with leases on and a settable clock.
func v6OnlyLifecycle(t *testing.T, pool6Prefix string) (*lifecycle, *clock) {
	t.Helper()
	db := pgtest.Open(t)
	inv := v6OnlyInventory(pool6Prefix)
	if _, err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := db.SyncInventory(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	l := &lifecycle{db: db, hosts: postgres.NewHosts(db, inv), changes: postgres.NewChanges(db, inv, preview, autoAll)}
	l.hosts.SetChanges(l.changes)
	c := newClock(db)
	l.hosts.SetLeases(hourLease)
	return l, c
}

// applyNewest applies host h's newest change as the engine would: adds inside-out, deletes
// outside-in.
func (l *lifecycle) applyNewest(t *testing.T, h fabric.Host, devices ...string) {
	t.Helper()
	id := l.newest(t, h)
	for _, dev := range devices {
		if applying, err := l.changes.StartApplying(context.Background(), dev, []int64{id}); err != nil || len(applying) != 1 {
			t.Fatalf("StartApplying(%s) = %v, %v", dev, applying, err)
		}
		l.session(t, dev, fabric.OpApplied, false)
	}
	l.change(t, id, fabric.ChangeApplied)
}

// TestV6OnlyHostLifecycle: an IPv6-only host registers beside an IPv4-only and a dual-stack
// host in the same database, gets only an IPv6 subnet and IPv6 routes, is listed, renewed,
// reaped once its lease lapses and removed, its subnet going back to its pool; the others
// keep what they had.
func TestV6OnlyHostLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, c := v6OnlyLifecycle(t, "2001:db8:b00::/48")
	v4, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "v4", Address: addr("10.10.10.4")})
	if err != nil {
		t.Fatal(err)
	}
	dual, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "dual", Address: addr("10.10.10.5"), Address6: addr("2001:db8:10::5")})
	if err != nil {
		t.Fatal(err)
	}
	reg := fabric.Registration{Name: "six", Address6: addr("2001:db8:60::6")}
	six, created, err := l.hosts.Register(ctx, bob, reg)
	if err != nil || !created {
		t.Fatalf("Register(six) = %v, %v", created, err)
	}
	if six.Address.IsValid() || six.Subnet.IsValid() || six.Pool != "" || six.Subnet6 != pfx("2001:db8:b00::/64") || six.Pool6 != "only6" || six.Segment != "rack6" {
		t.Fatalf("six = %+v, want only the IPv6 family: 2001:db8:b00::/64 of only6 in rack6", six)
	}
	if again, created, err := l.hosts.Register(ctx, bob, reg); err != nil || created || again.ID != six.ID {
		t.Fatalf("Register(six) again = %v, %v, %v; want the same host", again.ID, created, err)
	}
	add := l.change(t, l.newest(t, six), fabric.ChangeApproved)
	if families := opFamilies(add); families[4] != 0 || families[6] != 2 {
		t.Fatalf("six's add ops by family = %v, want 2 IPv6 (sw1 and fw1) and no IPv4", families)
	}
	// The three adds, applied in one session per device.
	for _, dev := range []string{"sw1", "fw1"} {
		l.session(t, dev, fabric.OpApplied, false)
	}
	got := l.host(t, "six")
	if got.State != fabric.HostActive || got.Address.IsValid() || got.Subnet6 != six.Subnet6 {
		t.Fatalf("Host(six) = %+v, want active with only its IPv6 family", got)
	}
	if got.Change == nil || got.Change.Status != fabric.ChangeApplied {
		t.Errorf("six's change = %+v, want applied", got.Change)
	}
	list, _, err := l.hosts.List(ctx, fabric.HostFilter{Segment: "rack6"})
	if err != nil || len(list) != 1 || list[0].Name != "six" {
		t.Fatalf("List(rack6) = %v, %v; want six", list, err)
	}
	all, _, err := l.hosts.List(ctx, fabric.HostFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("List() = %d hosts, %v; want 3", len(all), err)
	}

	// Renewal keeps six; the others lapse and only they are stale.
	c.advance(50 * time.Minute)
	if _, err := l.hosts.Renew(ctx, bob, "six"); err != nil {
		t.Fatalf("Renew(six) = %v", err)
	}
	c.advance(21 * time.Minute)
	stale, _, err := l.hosts.List(ctx, fabric.HostFilter{Stale: true})
	if err != nil || len(stale) != 2 || stale[0].Name != "dual" || stale[1].Name != "v4" {
		t.Fatalf("List(stale) = %v, %v; want dual and v4", stale, err)
	}
	c.advance(time.Hour)
	stale, _, err = l.hosts.List(ctx, fabric.HostFilter{Stale: true})
	if err != nil || len(stale) != 3 {
		t.Fatalf("List(stale) = %v, %v; want all three", stale, err)
	}
	reaped, err := l.hosts.Reap(ctx)
	if err != nil || len(reaped) != 3 {
		t.Fatalf("Reap = %+v, %v; want three removals", reaped, err)
	}
	// Registering six again before its removal is applied cancels it.
	if again, created, err := l.hosts.Register(ctx, bob, reg); err != nil || created || again.State != fabric.HostActive {
		t.Fatalf("Register(six) during its reaping = %v, %v, %v; want six active again", again.State, created, err)
	}
	// The remaining removals (v4, dual) go outside-in.
	for _, dev := range []string{"fw1", "sw1"} {
		l.session(t, dev, fabric.OpApplied, false)
	}
	for _, name := range []string{"v4", "dual"} {
		if _, err := l.hosts.Host(ctx, name); code(err) != fabric.ENOTFOUND {
			t.Errorf("Host(%s) after its removal = %v, want not_found", name, err)
		}
	}
	// A person removes six: the remove change holds its IPv6 routes only.
	if _, err := l.hosts.Remove(ctx, bob, "six"); err != nil {
		t.Fatal(err)
	}
	rm := l.change(t, l.newest(t, six), fabric.ChangeApproved)
	if families := opFamilies(rm); families[4] != 0 || families[6] != 2 {
		t.Fatalf("six's remove ops by family = %v, want 2 IPv6", families)
	}
	l.applyNewest(t, six, "fw1", "sw1")
	var free int
	if err := l.db.Pool.QueryRow(ctx, `SELECT count(*) FROM free_subnets WHERE pool = 'only6' AND subnet = $1`, six.Subnet6).Scan(&free); err != nil || free != 1 {
		t.Fatalf("only6's free list holds %s %d times (%v), want once", six.Subnet6, free, err)
	}
	again, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "six2", Address6: addr("2001:db8:60::7")})
	if err != nil || again.Subnet6 != six.Subnet6 {
		t.Errorf("Register(six2) = %v, %v; want six's freed %v", again.Subnet6, err, six.Subnet6)
	}
	if v4.Subnet != pfx("10.210.0.0/24") || dual.Subnet != pfx("10.210.1.0/24") || dual.Subnet6 != pfx("2001:db8:a00::/64") {
		t.Errorf("v4 %v, dual %v %v: the IPv4 and dual hosts' allocation changed", v4.Subnet, dual.Subnet, dual.Subnet6)
	}
}

// TestV6OnlyRefusals: an IPv4 address for the IPv6-only segment, or address6 alone for a
// segment with IPv4 hosts, is refused naming address, and nothing is written.
func TestV6OnlyRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := v6OnlyLifecycle(t, "2001:db8:b00::/48")
	for _, reg := range []fabric.Registration{
		{Name: "x", Address: addr("10.60.0.5"), Address6: addr("2001:db8:60::5")},
		{Name: "x", Address6: addr("2001:db8:10::5")},
	} {
		var fe *fabric.Error
		_, _, err := l.hosts.Register(ctx, bob, reg)
		if !asFieldError(err, &fe) || fe.Code != fabric.EINVALID || fe.Field != "address" {
			t.Errorf("Register(%+v) = %v, want EINVALID on address", reg, err)
		}
	}
	var n int
	if err := l.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM hosts) + (SELECT count(*) FROM changes) + (SELECT count(*) FROM audit)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows written (%v), want none", n, err)
	}
}

// TestV6OnlyPoolExhausted: rack6's /63 pool holds two /64s; the third host is refused with a
// conflict, writes nothing, and the IPv4 pool is untouched.
func TestV6OnlyPoolExhausted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := v6OnlyLifecycle(t, "2001:db8:b00::/63")
	for i, a := range []string{"2001:db8:60::1", "2001:db8:60::2"} {
		if _, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "s" + string(rune('1'+i)), Address6: addr(a)}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "s3", Address6: addr("2001:db8:60::3")})
	if code(err) != fabric.ECONFLICT {
		t.Fatalf("Register(s3) with only6 exhausted = %v, want ECONFLICT", err)
	}
	if _, err := l.hosts.Host(ctx, "s3"); code(err) != fabric.ENOTFOUND {
		t.Errorf("Host(s3) = %v, want not_found: nothing written", err)
	}
	usage, err := l.db.PoolUsage(ctx, v6OnlyInventory("2001:db8:b00::/63"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"docker": 0, "docker6": 0, "only6": 2}
	for _, u := range usage {
		if u.Allocated != want[u.Pool.Name] {
			t.Errorf("pool %s allocated %d, want %d", u.Pool.Name, u.Allocated, want[u.Pool.Name])
		}
	}
	// IPv6-only hosts took no IPv4 subnet (nor moved the IPv4 cursor): the first IPv4 host
	// gets the pool's first subnet.
	if h, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "v4", Address: addr("10.10.10.4")}); err != nil || h.Subnet != pfx("10.210.0.0/24") {
		t.Errorf("Register(v4) = %v, %v; want 10.210.0.0/24", h.Subnet, err)
	}
}

// TestHostsCheckRefusesAHalfFamily: the database refuses a host whose IPv4 family is half
// there, or that has no family at all, whatever the service does.
func TestHostsCheckRefusesAHalfFamily(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := v6OnlyLifecycle(t, "2001:db8:b00::/48")
	for _, tt := range []struct{ name, address, pool, subnet, address6, pool6, subnet6 string }{
		{name: "address without subnet", address: "10.10.10.9", pool: "docker", address6: "2001:db8:60::9", pool6: "only6", subnet6: "2001:db8:b00:9::/64"},
		{name: "subnet without address", pool: "docker", subnet: "10.210.9.0/24", address6: "2001:db8:60::9", pool6: "only6", subnet6: "2001:db8:b00:9::/64"},
		{name: "pool alone", pool: "docker", address6: "2001:db8:60::9", pool6: "only6", subnet6: "2001:db8:b00:9::/64"},
		{name: "no family"},
	} {
		_, err := l.db.Pool.Exec(ctx, `INSERT INTO hosts (name, address, segment, pool, subnet, state, created_by, created_at, updated_at, address6, pool6, subnet6)
			VALUES ('half', NULLIF($1, '')::inet, 'rack6', NULLIF($2, ''), NULLIF($3, '')::cidr, 'pending', 'bob', now(), now(), NULLIF($4, '')::inet, NULLIF($5, ''), NULLIF($6, '')::cidr)`,
			tt.address, tt.pool, tt.subnet, tt.address6, tt.pool6, tt.subnet6)
		if code := pgCode(err); code != "23514" {
			t.Errorf("%s: insert = %v, want a check violation (23514)", tt.name, err)
		}
	}
}

func asFieldError(err error, fe **fabric.Error) bool { return errors.As(err, fe) }

// pgCode is the SQLSTATE of a Postgres error, "" for any other.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
