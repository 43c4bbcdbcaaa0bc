package fabric_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
)

// v6OnlyInventory is dualInventory plus an IPv6-only segment, rack6 (hosts6 and pool6, no
// hosts or pool), whose firewall hop has a plain IPv6 next hop.
func v6OnlyInventory() *fabric.Inventory {
	inv := dualInventory()
	inv.Pools = append(inv.Pools, fabric.Pool{Name: "only6", Prefix: pfx("2001:db8:b00::/48"), SubnetLength: 64})
	inv.Segments = append(inv.Segments, fabric.Segment{
		Name: "rack6", Hosts6: pfx("2001:db8:60::/64"), Pool6: "only6",
		RouteVia: []fabric.Hop{
			{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
			{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("2001:db8:20::1")}},
		},
	})
	return inv
}

func TestInventoryValidateV6Only(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mutate     func(*fabric.Inventory)
		wantFields []string // nil means valid
	}{
		{name: "valid", mutate: func(*fabric.Inventory) {}},
		{name: "map form with ipv6 only", mutate: func(inv *fabric.Inventory) {
			inv.Segments[1].RouteVia[1].NextHop = fabric.NextHop{Addr6: addr("2001:db8:20::1")}
		}},
		{name: "map form with both families", mutate: func(inv *fabric.Inventory) {
			inv.Segments[1].RouteVia[1].NextHop = fabric.NextHop{Addr: addr("10.10.20.1"), Addr6: addr("2001:db8:20::1")}
		}, wantFields: []string{"segments[1].route_via[1].next_hop"}},
		{name: "plain IPv4 next hop", mutate: func(inv *fabric.Inventory) {
			inv.Segments[1].RouteVia[1].NextHop = fabric.NextHop{Addr: addr("10.10.20.1")}
		}, wantFields: []string{"segments[1].route_via[1].next_hop"}},
		{name: "hosts6 without pool6", mutate: func(inv *fabric.Inventory) { inv.Segments[1].Pool6 = "" },
			wantFields: []string{"segments[1].pool6"}},
		{name: "pool6 without hosts6", mutate: func(inv *fabric.Inventory) { inv.Segments[1].Hosts6 = fabric.Segment{}.Hosts6 },
			wantFields: []string{"segments[1].hosts6"}},
		{name: "neither family", mutate: func(inv *fabric.Inventory) {
			inv.Segments[1].Hosts6, inv.Segments[1].Pool6 = fabric.Segment{}.Hosts6, ""
		}, wantFields: []string{"segments[1].hosts"}},
		{name: "hosts6 overlaps the dual segment's", mutate: func(inv *fabric.Inventory) { inv.Segments[1].Hosts6 = pfx("2001:db8:10::/64") },
			wantFields: []string{"segments[1].hosts6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := v6OnlyInventory()
			tt.mutate(inv)
			_, err := inv.Validate()
			if diff := cmp.Diff(tt.wantFields, fieldsOf(t, err)); diff != "" {
				t.Errorf("Validate() fields (-want +got):\n%s\n(err %v)", diff, err)
			}
		})
	}
}

func TestPlaceV6Only(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		inv       *fabric.Inventory
		reg       fabric.Registration
		wantSeg   string
		wantField string
	}{
		{name: "address6 alone in a v6-only segment", reg: fabric.Registration{Name: "s1", Address6: addr("2001:db8:60::5")}, wantSeg: "rack6"},
		{name: "with a subnet6", reg: fabric.Registration{Name: "s1", Address6: addr("2001:db8:60::5"), Subnet6: pfx("2001:db8:b00:7::/64")}, wantSeg: "rack6"},
		{name: "dual host still placed", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:10::5")}, wantSeg: "rack1"},
		{name: "IPv4 address for a v6-only segment", reg: fabric.Registration{Name: "s1", Address: addr("10.60.0.5"), Address6: addr("2001:db8:60::5")}, wantField: "address"},
		{name: "IPv4 address of another segment for a v6-only one", reg: fabric.Registration{Name: "s1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:60::5")}, wantField: "address6"},
		{name: "address6 alone in a dual segment", reg: fabric.Registration{Name: "s1", Address6: addr("2001:db8:10::5")}, wantField: "address"},
		{name: "address6 alone, v4-only inventory", inv: labInventory(), reg: fabric.Registration{Name: "s1", Address6: addr("2001:db8:10::5")}, wantField: "address6"},
		{name: "no address at all", reg: fabric.Registration{Name: "s1"}, wantField: "address"},
		{name: "subnet without address", reg: fabric.Registration{Name: "s1", Address6: addr("2001:db8:60::5"), Subnet: pfx("10.210.3.0/24")}, wantField: "subnet"},
		{name: "address6 is IPv4", reg: fabric.Registration{Name: "s1", Address6: addr("10.10.10.6")}, wantField: "address6"},
		{name: "address6 in no segment", reg: fabric.Registration{Name: "s1", Address6: addr("2001:db8:99::5")}, wantField: "address6"},
		{name: "subnet-router anycast", reg: fabric.Registration{Name: "s1", Address6: addr("2001:db8:60::")}, wantField: "address6"},
		{name: "subnet6 of another pool", reg: fabric.Registration{Name: "s1", Address6: addr("2001:db8:60::5"), Subnet6: pfx("2001:db8:a00:3::/64")}, wantField: "subnet6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := tt.inv
			if inv == nil {
				inv = v6OnlyInventory()
			}
			_, seg, pool, err := inv.Place(tt.reg)
			var fe *fabric.Error
			switch {
			case tt.wantField == "" && err != nil:
				t.Fatalf("Place() = %v, want no error", err)
			case tt.wantField == "" && seg.Name != tt.wantSeg:
				t.Fatalf("Place() segment %q, want %s", seg.Name, tt.wantSeg)
			case tt.wantField == "" && (seg.Name == "rack6") != (pool.Name == ""):
				t.Fatalf("Place() IPv4 pool %q for segment %s, want one exactly when the segment has IPv4 hosts", pool.Name, seg.Name)
			case tt.wantField != "" && (!errors.As(err, &fe) || fe.Field != tt.wantField || fe.Code != fabric.EINVALID):
				t.Fatalf("Place() = %v, want EINVALID on %s", err, tt.wantField)
			}
		})
	}
}

func TestReturnPathV6Only(t *testing.T) {
	t.Parallel()
	inv := v6OnlyInventory()
	h := fabric.Host{Name: "s1", Segment: "rack6", Address6: addr("2001:db8:60::5"), Pool6: "only6", Subnet6: pfx("2001:db8:b00:7::/64")}
	got, err := inv.ReturnPath(h)
	if err != nil {
		t.Fatal(err)
	}
	want := []fabric.DeviceRoute{
		{Device: "sw1", Route: fabric.Route{VRF: "default", Prefix: pfx("2001:db8:b00:7::/64"), NextHop: addr("2001:db8:60::5")}},
		{Device: "fw1", Route: fabric.Route{VRF: "default", Prefix: pfx("2001:db8:b00:7::/64"), NextHop: addr("2001:db8:20::1")}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b fabric.Route) bool { return a == b })); diff != "" {
		t.Errorf("ReturnPath() (-want +got):\n%s", diff)
	}
	if h.Bip().IsValid() || h.Gateway() != addr("2001:db8:b00:7::1") || h.Subnets() != "2001:db8:b00:7::/64" {
		t.Errorf("Bip %v, Gateway %v, Subnets %q: want no bip, the IPv6 gateway and the IPv6 subnet", h.Bip(), h.Gateway(), h.Subnets())
	}
}

// FuzzPlaceV6Only: whatever addresses a registration brings, Place never panics, and what it
// accepts is consistent: an IPv4 address lies in its segment's hosts and comes with its IPv4
// pool; address6 alone lies in an IPv6-only segment's hosts6 and comes with no IPv4 pool.
func FuzzPlaceV6Only(f *testing.F) {
	for _, s := range [][2]string{{"", "2001:db8:60::5"}, {"10.10.10.5", "2001:db8:10::5"}, {"10.60.0.5", "2001:db8:60::5"},
		{"", "2001:db8:10::5"}, {"", ""}, {"10.10.10.5", ""}, {"", "10.10.10.6"}, {"", "fe80::1%eth0"}, {"", "::ffff:10.10.10.5"}} {
		f.Add(s[0], s[1])
	}
	inv := v6OnlyInventory()
	f.Fuzz(func(t *testing.T, a4, a6 string) {
		var reg fabric.Registration
		reg.Name = "h1"
		reg.Address, _ = netip.ParseAddr(a4)
		reg.Address6, _ = netip.ParseAddr(a6)
		_, seg, pool, err := inv.Place(reg)
		if err != nil {
			var fe *fabric.Error
			if !errors.As(err, &fe) || fe.Code != fabric.EINVALID || fe.Field == "" {
				t.Fatalf("Place(%q, %q) = %v, want EINVALID naming a field", a4, a6, err)
			}
			return
		}
		switch {
		case reg.Address.IsValid() && (!seg.Hosts.Contains(reg.Address) || pool.Name != seg.Pool):
			t.Fatalf("Place(%q, %q) placed in %s (hosts %v) with pool %q", a4, a6, seg.Name, seg.Hosts, pool.Name)
		case !reg.Address.IsValid() && (seg.Hosts.IsValid() || pool.Name != "" || !seg.Hosts6.Contains(reg.Address6)):
			t.Fatalf("Place(%q, %q) without address placed in %s (hosts %v, hosts6 %v) with pool %q", a4, a6, seg.Name, seg.Hosts, seg.Hosts6, pool.Name)
		case reg.Address6.IsValid() && !seg.Hosts6.Contains(reg.Address6):
			t.Fatalf("Place(%q, %q): address6 outside %s's hosts6 %v", a4, a6, seg.Name, seg.Hosts6)
		}
	})
}
