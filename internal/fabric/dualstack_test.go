package fabric_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
)

// dualInventory is labInventory with an IPv6 family: hosts6, pool6, and a fixed next hop per
// family on the firewall.
func dualInventory() *fabric.Inventory {
	inv := labInventory()
	inv.Pools = append(inv.Pools, fabric.Pool{Name: "docker6", Prefix: pfx("2001:db8:a00::/48"), SubnetLength: 64})
	inv.Segments[0].Hosts6, inv.Segments[0].Pool6 = pfx("2001:db8:10::/64"), "docker6"
	inv.Segments[0].RouteVia[1].NextHop = fabric.NextHop{Addr: addr("10.10.20.1"), Addr6: addr("2001:db8:20::1")}
	return inv
}

func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var es fabric.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T %v, want fabric.Errors", err, err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Field)
	}
	return out
}

func TestInventoryValidateDualStack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mutate    func(*fabric.Inventory)
		wantField string // "" means valid
	}{
		{name: "valid", mutate: func(*fabric.Inventory) {}},
		{name: "pool6 host bits", mutate: func(inv *fabric.Inventory) { inv.Pools[1].Prefix = pfx("2001:db8:a00::1/48") }, wantField: "pools[1].prefix"},
		{name: "v6 subnet /129", mutate: func(inv *fabric.Inventory) { inv.Pools[1].SubnetLength = 129 }, wantField: "pools[1].subnet_length"},
		{name: "v6 subnet /121", mutate: func(inv *fabric.Inventory) { inv.Pools[1].SubnetLength = 121 }, wantField: "pools[1].subnet_length"},
		{name: "v6 subnet /56", mutate: func(inv *fabric.Inventory) { inv.Pools[1].SubnetLength = 56 }, wantField: "pools[1].subnet_length"},
		{name: "pool6 overlaps another pool", mutate: func(inv *fabric.Inventory) {
			inv.Pools = append(inv.Pools, fabric.Pool{Name: "other6", Prefix: pfx("2001:db8:a00:100::/56"), SubnetLength: 64})
		}, wantField: "pools[2].prefix"},
		{name: "pool6 names an IPv4 pool", mutate: func(inv *fabric.Inventory) { inv.Segments[0].Pool6 = "docker" }, wantField: "segments[0].pool6"},
		{name: "pool names an IPv6 pool", mutate: func(inv *fabric.Inventory) { inv.Segments[0].Pool = "docker6" }, wantField: "segments[0].pool"},
		{name: "pool6 without hosts6", mutate: func(inv *fabric.Inventory) { inv.Segments[0].Hosts6 = fabric.Segment{}.Hosts6 }, wantField: "segments[0].hosts6"},
		{name: "hosts6 without pool6", mutate: func(inv *fabric.Inventory) { inv.Segments[0].Pool6 = "" }, wantField: "segments[0].pool6"},
		{name: "hosts6 is IPv4", mutate: func(inv *fabric.Inventory) { inv.Segments[0].Hosts6 = pfx("10.10.11.0/24") }, wantField: "segments[0].hosts6"},
		{name: "link-local next hop", mutate: func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[1].NextHop.Addr6 = addr("fe80::1") }, wantField: "segments[0].route_via[1].next_hop"},
		{name: "multicast next hop", mutate: func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[1].NextHop.Addr6 = addr("ff02::1") }, wantField: "segments[0].route_via[1].next_hop"},
		{name: "mixed families in the map form", mutate: func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[1].NextHop.Addr6 = addr("10.10.20.9") }, wantField: "segments[0].route_via[1].next_hop"},
		{name: "plain v4 next hop for a dual segment", mutate: func(inv *fabric.Inventory) {
			inv.Segments[0].RouteVia[1].NextHop = fabric.NextHop{Addr: addr("10.10.20.1")}
		}, wantField: "segments[0].route_via[1].next_hop"},
		{name: "v6 next hop for a v4-only segment", mutate: func(inv *fabric.Inventory) {
			inv.Segments[0].Hosts6, inv.Segments[0].Pool6 = fabric.Segment{}.Hosts6, ""
		}, wantField: "segments[0].route_via[1].next_hop"},
		{name: "no family at all", mutate: func(inv *fabric.Inventory) {
			s := &inv.Segments[0]
			s.Hosts, s.Pool, s.Hosts6, s.Pool6 = fabric.Segment{}.Hosts, "", fabric.Segment{}.Hosts6, ""
			s.RouteVia[1].NextHop = fabric.NextHop{Host: true}
		}, wantField: "segments[0].hosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := dualInventory()
			tt.mutate(inv)
			_, err := inv.Validate()
			var want []string
			if tt.wantField != "" {
				want = []string{tt.wantField}
			}
			if diff := cmp.Diff(fieldsOf(t, err), want); diff != "" {
				t.Errorf("Validate() fields (-got +want):\n%s\n(error: %v)", diff, err)
			}
		})
	}
}

func TestNextHopResolve(t *testing.T) {
	t.Parallel()
	both := fabric.NextHop{Addr: addr("10.10.20.1"), Addr6: addr("2001:db8:20::1")}
	tests := []struct {
		name string
		nh   fabric.NextHop
		host string
		want string // "" means none
	}{
		{name: "host v4", nh: fabric.NextHop{Host: true}, host: "10.10.10.5", want: "10.10.10.5"},
		{name: "host v6", nh: fabric.NextHop{Host: true}, host: "2001:db8:10::5", want: "2001:db8:10::5"},
		{name: "map form v4", nh: both, host: "10.10.10.5", want: "10.10.20.1"},
		{name: "map form v6", nh: both, host: "2001:db8:10::5", want: "2001:db8:20::1"},
		{name: "plain v6 (v6-only segment)", nh: fabric.NextHop{Addr: addr("2001:db8:20::1")}, host: "2001:db8:10::5", want: "2001:db8:20::1"},
		{name: "plain v4 has no v6", nh: fabric.NextHop{Addr: addr("10.10.20.1")}, host: "2001:db8:10::5"},
	}
	for _, tt := range tests {
		got := tt.nh.Resolve(addr(tt.host))
		if (tt.want == "" && got.IsValid()) || (tt.want != "" && got != addr(tt.want)) {
			t.Errorf("%s: Resolve(%s) = %v, want %q", tt.name, tt.host, got, tt.want)
		}
	}
}

func TestPlaceDualStack(t *testing.T) {
	t.Parallel()
	v4only := labInventory()
	tests := []struct {
		name      string
		inv       *fabric.Inventory
		reg       fabric.Registration
		wantField string
	}{
		{name: "both", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:10::5")}},
		{name: "both with subnets", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Subnet: pfx("10.210.3.0/24"),
			Address6: addr("2001:db8:10::5"), Subnet6: pfx("2001:db8:a00:3::/64")}},
		{name: "v6 in address", reg: fabric.Registration{Name: "d1", Address: addr("2001:db8:10::5")}, wantField: "address"},
		{name: "address6 in a v4-only segment", inv: v4only, reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:10::5")}, wantField: "address6"},
		{name: "address6 outside hosts6", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:99::5")}, wantField: "address6"},
		{name: "address6 is IPv4", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("10.10.10.6")}, wantField: "address6"},
		{name: "address6 link-local", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("fe80::5")}, wantField: "address6"},
		{name: "subnet6 without address6", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Subnet6: pfx("2001:db8:a00:3::/64")}, wantField: "subnet6"},
		{name: "subnet6 host bits", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:10::5"), Subnet6: pfx("2001:db8:a00:3::1/64")}, wantField: "subnet6"},
		{name: "subnet6 outside pool6", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:10::5"), Subnet6: pfx("2001:db8:b00::/64")}, wantField: "subnet6"},
		{name: "subnet6 wrong length", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:10::5"), Subnet6: pfx("2001:db8:a00::/80")}, wantField: "subnet6"},
		{name: "subnet6 is IPv4", reg: fabric.Registration{Name: "d1", Address: addr("10.10.10.5"), Address6: addr("2001:db8:10::5"), Subnet6: pfx("10.210.3.0/24")}, wantField: "subnet6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := tt.inv
			if inv == nil {
				inv = dualInventory()
			}
			_, seg, _, err := inv.Place(tt.reg)
			var fe *fabric.Error
			switch {
			case tt.wantField == "" && err != nil:
				t.Fatalf("Place() = %v, want no error", err)
			case tt.wantField == "" && seg.Name != "rack1":
				t.Fatalf("Place() segment %q, want rack1", seg.Name)
			case tt.wantField != "" && (!errors.As(err, &fe) || fe.Field != tt.wantField || fe.Code != fabric.EINVALID):
				t.Fatalf("Place() = %v, want EINVALID on %s", err, tt.wantField)
			}
		})
	}
}

func TestPlanChangeDualStack(t *testing.T) {
	t.Parallel()
	inv := dualInventory()
	h := fabric.Host{Name: "d1", Segment: "rack1", Address: addr("10.10.10.5"), Subnet: pfx("10.210.3.0/24"),
		Address6: addr("2001:db8:10::5"), Pool6: "docker6", Subnet6: pfx("2001:db8:a00:3::/64")}
	preview := func(dev string, ops []fabric.RouteOp) ([]string, error) {
		return []string{dev + " " + string(ops[0].Action) + " " + ops[0].Route.Prefix.String() + " via " + ops[0].Route.NextHop.String()}, nil
	}
	type row struct {
		Stage   int
		Device  string
		Preview string
	}
	rows := func(ops []fabric.ChangeOp) []row {
		var out []row
		for _, o := range ops {
			out = append(out, row{o.Stage, o.Device, o.Preview})
		}
		return out
	}
	add, err := inv.PlanChange(fabric.ChangeAdd, h, preview)
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{0, "sw1", "sw1 add 10.210.3.0/24 via 10.10.10.5"},
		{0, "sw1", "sw1 add 2001:db8:a00:3::/64 via 2001:db8:10::5"},
		{1, "fw1", "fw1 add 10.210.3.0/24 via 10.10.20.1"},
		{1, "fw1", "fw1 add 2001:db8:a00:3::/64 via 2001:db8:20::1"},
	}
	if diff := cmp.Diff(rows(add), want); diff != "" {
		t.Errorf("add plan (-got +want):\n%s", diff)
	}
	remove, err := inv.PlanChange(fabric.ChangeRemove, h, preview)
	if err != nil {
		t.Fatal(err)
	}
	want = []row{
		{0, "fw1", "fw1 delete 10.210.3.0/24 via 10.10.20.1"},
		{0, "fw1", "fw1 delete 2001:db8:a00:3::/64 via 2001:db8:20::1"},
		{1, "sw1", "sw1 delete 10.210.3.0/24 via 10.10.10.5"},
		{1, "sw1", "sw1 delete 2001:db8:a00:3::/64 via 2001:db8:10::5"},
	}
	if diff := cmp.Diff(rows(remove), want); diff != "" {
		t.Errorf("remove plan (-got +want):\n%s", diff)
	}
	v4 := h
	v4.Address6, v4.Pool6, v4.Subnet6 = fabric.Host{}.Address6, "", fabric.Host{}.Subnet6
	v4ops, err := inv.PlanChange(fabric.ChangeAdd, v4, preview)
	if err != nil {
		t.Fatal(err)
	}
	if fabric.PlanHash(v4ops) == fabric.PlanHash(add) || len(v4ops) != 2 {
		t.Errorf("IPv4-only plan: %d ops, same hash as dual %v; want 2 ops and another hash", len(v4ops), fabric.PlanHash(v4ops) == fabric.PlanHash(add))
	}
}

func TestPlanReroutesDualStack(t *testing.T) {
	t.Parallel()
	from := dualInventory()
	to := dualInventory()
	to.Segments[0].RouteVia[1].NextHop.Addr6 = addr("2001:db8:20::9")
	h := fabric.Host{Name: "d1", Segment: "rack1", State: fabric.HostActive, Address: addr("10.10.10.5"), Subnet: pfx("10.210.3.0/24"),
		Address6: addr("2001:db8:10::5"), Pool6: "docker6", Subnet6: pfx("2001:db8:a00:3::/64")}
	out, _ := fabric.PlanReroutes(from, to, []fabric.Host{h})
	if len(out) != 1 {
		t.Fatalf("PlanReroutes = %d reroutes, want 1", len(out))
	}
	var got []string
	for _, o := range out[0].Ops {
		got = append(got, o.Device+" "+string(o.Op.Action)+" "+o.Op.Route.Prefix.String()+" "+o.Op.Route.NextHop.String())
	}
	want := []string{"fw1 delete 2001:db8:a00:3::/64 2001:db8:20::1", "fw1 add 2001:db8:a00:3::/64 2001:db8:20::9"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("reroute ops (-got +want):\n%s", diff)
	}
}
