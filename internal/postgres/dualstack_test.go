package postgres_test

import (
	"context"
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
