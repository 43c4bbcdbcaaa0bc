package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// newDualHosts is newHosts with an IPv6 family: pool6 of /64s in pool6Prefix.
func newDualHosts(t *testing.T, poolPrefix, pool6Prefix string) (*postgres.DB, *postgres.Hosts) {
	t.Helper()
	db := pgtest.Open(t)
	inv := dualInventory(poolPrefix, pool6Prefix)
	if err := db.SyncInventory(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	return db, postgres.NewHosts(db, inv)
}

func dualInventory(poolPrefix, pool6Prefix string) *fabric.Inventory {
	inv := inventory(poolPrefix)
	inv.Pools = append(inv.Pools, fabric.Pool{Name: "docker6", Prefix: pfx(pool6Prefix), SubnetLength: 64})
	inv.Segments[0].Hosts6, inv.Segments[0].Pool6 = pfx("2001:db8:10::/64"), "docker6"
	return inv
}

func TestRegisterDualStack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, hosts := newDualHosts(t, "10.210.0.0/16", "2001:db8:a00::/48")
	reg := fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Address6: addr("2001:db8:10::101")}
	h, created, err := hosts.Register(ctx, bob, reg)
	if err != nil || !created {
		t.Fatalf("Register(d1) = %v, %v", created, err)
	}
	if h.Subnet != pfx("10.210.0.0/24") || h.Subnet6 != pfx("2001:db8:a00::/64") || h.Pool6 != "docker6" {
		t.Errorf("d1 = %v %v %q", h.Subnet, h.Subnet6, h.Pool6)
	}
	again, created, err := hosts.Register(ctx, bob, reg)
	if err != nil || created || again.Subnet6 != h.Subnet6 || again.Subnet != h.Subnet {
		t.Errorf("Register(d1) again = %v %v, created %v, %v; want the same allocation", again.Subnet, again.Subnet6, created, err)
	}
	// The same name without address6 is another registration: a conflict naming address6.
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.101")}); code(err) != fabric.ECONFLICT {
		t.Errorf("Register(d1 without address6) = %v, want ECONFLICT", err)
	}
	// Another host asking for d1's IPv6 subnet is refused by the exclusion constraint.
	_, _, err = hosts.Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.10.102"), Address6: addr("2001:db8:10::102"), Subnet6: h.Subnet6})
	if code(err) != fabric.ECONFLICT {
		t.Errorf("Register(d2, subnet6 of d1) = %v, want ECONFLICT", err)
	}
	h2, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.10.102"), Address6: addr("2001:db8:10::102")})
	if err != nil || h2.Subnet6 != pfx("2001:db8:a00:1::/64") {
		t.Fatalf("Register(d2) = %v, %v; want 2001:db8:a00:1::/64", h2.Subnet6, err)
	}
	usage, err := db.PoolUsage(ctx, dualInventory("10.210.0.0/16", "2001:db8:a00::/48"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range usage {
		if u.Allocated != 2 {
			t.Errorf("pool %s allocated %d, want 2", u.Pool.Name, u.Allocated)
		}
	}
}

// One family exhausted fails both and writes nothing: the IPv4 candidate goes back.
func TestRegisterDualStackOneFamilyExhausted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A /63 pool6 holds two /64s; the IPv4 pool has plenty.
	_, hosts := newDualHosts(t, "10.210.0.0/16", "2001:db8:a00::/63")
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.10"), Address6: addr("2001:db8:10::10")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.10.20"), Address6: addr("2001:db8:10::20")}); err != nil {
		t.Fatal(err)
	}
	_, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d3", Address: addr("10.10.10.30"), Address6: addr("2001:db8:10::30")})
	if code(err) != fabric.ECONFLICT {
		t.Fatalf("Register(d3) with pool6 exhausted = %v, want ECONFLICT", err)
	}
	if _, err := hosts.Host(ctx, "d3"); code(err) != fabric.ENOTFOUND {
		t.Errorf("Host(d3) = %v, want ENOTFOUND: nothing written", err)
	}
	// The IPv4 candidate d3 took was handed back: an IPv4-only host gets it, the third /24.
	h4, _, err := hosts.Register(ctx, bob, fabric.Registration{Name: "d4", Address: addr("10.10.10.40")})
	if err != nil || h4.Subnet != pfx("10.210.2.0/24") {
		t.Errorf("Register(d4) = %v, %v; want 10.210.2.0/24, the candidate d3 handed back", h4.Subnet, err)
	}
}

// dualLifecycle is newLifecycle with an IPv6 family on rack1: pool6 of /64s, hosts6, and fw1's
// next hop per family.
func dualLifecycle(t *testing.T) *lifecycle {
	t.Helper()
	db := pgtest.Open(t)
	inv := dualTwoHopInventory()
	if err := db.SyncInventory(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	l := &lifecycle{db: db, hosts: postgres.NewHosts(db, inv), changes: postgres.NewChanges(db, inv, preview, autoAll)}
	l.hosts.SetChanges(l.changes)
	return l
}

func dualTwoHopInventory() *fabric.Inventory {
	inv := twoHopInventory("default")
	inv.Pools = append(inv.Pools, fabric.Pool{Name: "docker6", Prefix: pfx("2001:db8:a00::/48"), SubnetLength: 64})
	inv.Segments[0].Hosts6, inv.Segments[0].Pool6 = pfx("2001:db8:10::/64"), "docker6"
	inv.Segments[0].RouteVia[1].NextHop.Addr6 = addr("2001:db8:20::1")
	return inv
}

// TestRemoveDualStackFreesBothSubnets: a dual-stack host's add carries the routes of both
// families; its removal, applied as the engine applies it (outside-in, each device's first
// session starting the change), deletes both and puts both subnets on their free lists, where
// the next dual-stack host finds them.
func TestRemoveDualStackFreesBothSubnets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := dualLifecycle(t)
	h, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Address6: addr("2001:db8:10::101")})
	if err != nil {
		t.Fatal(err)
	}
	add := l.change(t, l.newest(t, h), fabric.ChangeApproved)
	if families := opFamilies(add); families[4] != 2 || families[6] != 2 {
		t.Fatalf("add change ops by family = %v, want 2 IPv4 and 2 IPv6 (sw1 and fw1 each)", families)
	}
	l.session(t, "sw1", fabric.OpApplied, false)
	l.session(t, "fw1", fabric.OpApplied, false)
	l.change(t, add.ID, fabric.ChangeApplied)

	if _, err := l.hosts.Remove(ctx, bob, "d1"); err != nil {
		t.Fatal(err)
	}
	rm := l.newest(t, h)
	if families := opFamilies(l.change(t, rm, fabric.ChangeApproved)); families[4] != 2 || families[6] != 2 {
		t.Fatalf("remove change ops by family = %v, want 2 of each", families)
	}
	for _, dev := range []string{"fw1", "sw1"} { // deletes go outside-in
		if applying, err := l.changes.StartApplying(ctx, dev, []int64{rm}); err != nil || len(applying) != 1 {
			t.Fatalf("StartApplying(%s) = %v, %v", dev, applying, err)
		}
		l.session(t, dev, fabric.OpApplied, false)
	}
	l.change(t, rm, fabric.ChangeApplied)
	var free4, free6 int
	err = l.db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pool = 'docker' AND subnet = $1),
		count(*) FILTER (WHERE pool = 'docker6' AND subnet = $2) FROM free_subnets`, h.Subnet, h.Subnet6).Scan(&free4, &free6)
	if err != nil || free4 != 1 || free6 != 1 {
		t.Fatalf("free lists hold %s %d times and %s %d times (%v), want once each", h.Subnet, free4, h.Subnet6, free6, err)
	}
	h2, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "d2", Address: addr("10.10.10.102"), Address6: addr("2001:db8:10::102")})
	if err != nil || h2.Subnet != h.Subnet || h2.Subnet6 != h.Subnet6 {
		t.Errorf("Register(d2) = %v %v, %v; want d1's freed %v %v", h2.Subnet, h2.Subnet6, err, h.Subnet, h.Subnet6)
	}
}

// TestRemovePendingDualStackReleasesBoth: a dual-stack host whose add never reached a device
// goes at once, and both its subnets are released.
func TestRemovePendingDualStackReleasesBoth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := dualLifecycle(t)
	l.changes = postgres.NewChanges(l.db, dualTwoHopInventory(), preview, fabric.ApprovalPolicy{})
	l.hosts.SetChanges(l.changes)
	h, _, err := l.hosts.Register(ctx, bob, fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Address6: addr("2001:db8:10::101")})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.hosts.Remove(ctx, bob, "d1"); err != nil || got.State != fabric.HostRemoved {
		t.Fatalf("Remove(d1) = %s, %v; want removed at once", got.State, err)
	}
	var n int
	if err := l.db.Pool.QueryRow(ctx, `SELECT count(*) FROM free_subnets WHERE subnet IN ($1, $2)`, h.Subnet, h.Subnet6).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d of %s and %s on the free lists (%v), want both", n, h.Subnet, h.Subnet6, err)
	}
}

func opFamilies(ch fabric.Change) map[int]int {
	n := map[int]int{}
	for _, o := range ch.Ops {
		if o.Rollback {
			continue
		}
		if o.Op.Route.Prefix.Addr().Is6() {
			n[6]++
		} else {
			n[4]++
		}
	}
	return n
}

// TestPool6CursorReachesTheEndWithoutScanning: a /48 pool of /64s holds 65,536 subnets. With
// the cursor standing at the last one, a registration takes the 65,536th subnet from the
// cursor, not the first free one a scan would find (no host holds any subnet yet); the next
// registration finds the cursor at the end and falls back to the gap walk, which hands out the
// lowest subnet no live host holds, and then the next one past it.
func TestPool6CursorReachesTheEndWithoutScanning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, hosts := newDualHosts(t, "10.210.0.0/16", "2001:db8:a00::/48")
	if err := postgres.SetCursor(ctx, db, "docker6", 65535); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"2001:db8:a00:ffff::/64", "2001:db8:a00::/64", "2001:db8:a00:1::/64"} {
		reg := fabric.Registration{Name: fmt.Sprintf("d%d", i), Address: addr(fmt.Sprintf("10.10.10.%d", 10+i)), Address6: addr(fmt.Sprintf("2001:db8:10::%d", 10+i))}
		h, _, err := hosts.Register(ctx, bob, reg)
		if err != nil || h.Subnet6 != pfx(want) {
			t.Fatalf("registration %d: subnet6 %v, %v; want %s", i+1, h.Subnet6, err, want)
		}
	}
	// The cursor is a sequence: it went on past the end (one step per registration that found
	// it there), and never wrapped to index 0, which the first gap-walk registration proves.
	if next, err := postgres.Cursor(ctx, db, "docker6"); err != nil || next != 65538 {
		t.Errorf("docker6 cursor = %d (%v), want 65538: past the end, not wrapped", next, err)
	}
}
