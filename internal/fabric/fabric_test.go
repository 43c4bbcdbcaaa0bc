package fabric_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/returnpath/returnpath/internal/fabric"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// labInventory is the recipe's fabric: one segment behind sw1 and fw1.
func labInventory() *fabric.Inventory {
	return &fabric.Inventory{
		Pools: []fabric.Pool{{Name: "docker", Prefix: pfx("10.210.0.0/16"), SubnetLength: 24}},
		Segments: []fabric.Segment{{
			Name: "rack1", Hosts: pfx("10.10.10.0/24"), Pool: "docker",
			RouteVia: []fabric.Hop{
				{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
				{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("10.10.20.1")}},
			},
		}},
		Devices: []fabric.Device{
			{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"},
			{Name: "fw1", Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.12:22"), VRF: "default"},
		},
	}
}

func TestInventoryValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mutate    func(*fabric.Inventory)
		wantField string // "" means valid
	}{
		{"valid", func(*fabric.Inventory) {}, ""},
		{"pools overlap", func(inv *fabric.Inventory) {
			inv.Pools = append(inv.Pools, fabric.Pool{Name: "b", Prefix: pfx("10.210.128.0/17"), SubnetLength: 24})
		}, "pools[1].prefix"},
		{"pool host bits", func(inv *fabric.Inventory) { inv.Pools[0].Prefix = pfx("10.210.0.1/16") }, "pools[0].prefix"},
		{"subnet longer than /30", func(inv *fabric.Inventory) { inv.Pools[0].SubnetLength = 31 }, "pools[0].subnet_length"},
		{"subnet shorter than pool", func(inv *fabric.Inventory) { inv.Pools[0].SubnetLength = 8 }, "pools[0].subnet_length"},
		{"segments overlap", func(inv *fabric.Inventory) {
			s := inv.Segments[0]
			s.Name, s.Hosts = "rack2", pfx("10.10.0.0/16")
			inv.Segments = append(inv.Segments, s)
		}, "segments[1].hosts"},
		{"unknown device", func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[1].Device = "fw9" }, "segments[0].route_via[1].device"},
		{"unknown pool", func(inv *fabric.Inventory) { inv.Segments[0].Pool = "nope" }, "segments[0].pool"},
		{"next hop family", func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[1].NextHop.Addr = addr("2001:db8::1") }, "segments[0].route_via[1].next_hop"},
		{"missing next hop", func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[1].NextHop = fabric.NextHop{} }, "segments[0].route_via[1].next_hop"},
		{"bad platform", func(inv *fabric.Inventory) { inv.Devices[0].Platform = "ios" }, "devices[0].platform"},
		{"platform over wrong transport", func(inv *fabric.Inventory) { inv.Devices[0].Transport = fabric.TransportGNMI }, "devices[0].transport"},
		{"bad vrf", func(inv *fabric.Inventory) { inv.Devices[1].VRF = "red\nexit" }, "devices[1].vrf"},
		{"duplicate device", func(inv *fabric.Inventory) { inv.Devices = append(inv.Devices, inv.Devices[0]) }, "devices[2].name"},
		{"no segments", func(inv *fabric.Inventory) { inv.Segments = nil }, "segments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := labInventory()
			tt.mutate(inv)
			_, err := inv.Validate()
			var got []string
			if err != nil {
				var es fabric.Errors
				if !errors.As(err, &es) {
					t.Fatalf("Validate() error %T %v, want fabric.Errors", err, err)
				}
				for _, e := range es {
					got = append(got, e.Field)
				}
			}
			var want []string
			if tt.wantField != "" {
				want = []string{tt.wantField}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Validate() fields (-want +got):\n%s\n%v", diff, err)
			}
		})
	}
}

// TestInventoryValidateReportsEveryError: one pass names every key at fault, and an entry
// that is wrong on its own is not reported again by the entries that name it.
func TestInventoryValidateReportsEveryError(t *testing.T) {
	t.Parallel()
	inv := labInventory()
	inv.Pools[0].SubnetLength = 8                                      // wrong on its own
	inv.Devices[0].Platform = "ios"                                    // wrong on its own
	inv.Segments[0].RouteVia[1].Device = "fw9"                         // names no device
	inv.Segments = append(inv.Segments, fabric.Segment{Name: "Rack 2", // bad name, no pool, no path
		Hosts: pfx("10.10.20.0/24"), Pool: "nope"})
	_, err := inv.Validate()
	var es fabric.Errors
	if !errors.As(err, &es) {
		t.Fatalf("Validate() = %T %v, want fabric.Errors", err, err)
	}
	var got []string
	for _, e := range es {
		if e.Code != fabric.EINVALID {
			t.Errorf("%s: code %s, want %s", e.Field, e.Code, fabric.EINVALID)
		}
		got = append(got, e.Field)
	}
	want := []string{"pools[0].subnet_length", "devices[0].platform", "segments[0].route_via[1].device",
		"segments[1].name", "segments[1].pool", "segments[1].route_via"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if fabric.ErrorCode(err) != fabric.EINVALID {
		t.Errorf("ErrorCode = %s, want %s", fabric.ErrorCode(err), fabric.EINVALID)
	}
}

func TestInventoryWarnsOnPublicPool(t *testing.T) {
	t.Parallel()
	public := labInventory()
	public.Pools[0].Prefix = pfx("172.10.0.0/16")
	warnings, err := public.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "172.10.0.0/16") {
		t.Errorf("warnings = %q, want one naming 172.10.0.0/16", warnings)
	}
	inv := labInventory()
	inv.Pools[0].Prefix = pfx("10.200.0.0/16")
	if warnings, _ := inv.Validate(); len(warnings) != 0 {
		t.Errorf("warnings for a private pool = %q, want none", warnings)
	}
}

func TestPoolSubnet(t *testing.T) {
	t.Parallel()
	p := fabric.Pool{Name: "d", Prefix: pfx("10.210.0.0/16"), SubnetLength: 24}
	for _, tc := range []struct {
		i    uint64
		want string
		ok   bool
	}{{0, "10.210.0.0/24", true}, {10, "10.210.10.0/24", true}, {255, "10.210.255.0/24", true}, {256, "", false}} {
		got, ok := p.Subnet(tc.i)
		if ok != tc.ok || (ok && got.String() != tc.want) {
			t.Errorf("Subnet(%d) = %v, %v; want %s, %v", tc.i, got, ok, tc.want, tc.ok)
		}
	}
	if p.Size() != 256 {
		t.Errorf("Size() = %d, want 256", p.Size())
	}
	v6 := fabric.Pool{Name: "v6", Prefix: pfx("fd00:10::/48"), SubnetLength: 64}
	if got, _ := v6.Subnet(0x1234); got != pfx("fd00:10:0:1234::/64") {
		t.Errorf("v6 Subnet(0x1234) = %v", got)
	}
	if !p.Contains(pfx("10.210.3.0/24")) || p.Contains(pfx("10.210.3.0/25")) || p.Contains(pfx("172.11.0.0/24")) {
		t.Error("Contains is wrong")
	}
}

func TestPlace(t *testing.T) {
	t.Parallel()
	inv := labInventory()
	tests := []struct {
		name      string
		reg       fabric.Registration
		wantField string
	}{
		{"ok", fabric.Registration{Name: "Docker-01.example.com", Address: addr("10.10.10.101")}, ""},
		{"ok with subnet", fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Subnet: pfx("10.210.10.0/24")}, ""},
		{"missing name", fabric.Registration{Address: addr("10.10.10.101")}, "name"},
		{"space in name", fabric.Registration{Name: "a b", Address: addr("10.10.10.101")}, "name"},
		{"newline in name", fabric.Registration{Name: "a\nexit", Address: addr("10.10.10.101")}, "name"},
		{"shell in name", fabric.Registration{Name: "a;reboot", Address: addr("10.10.10.101")}, "name"},
		{"300 chars", fabric.Registration{Name: strings.Repeat("a", 300), Address: addr("10.10.10.101")}, "name"},
		{"label too long", fabric.Registration{Name: strings.Repeat("a", 64), Address: addr("10.10.10.101")}, "name"},
		{"missing address", fabric.Registration{Name: "d1"}, "address"},
		{"ipv6", fabric.Registration{Name: "d1", Address: addr("2001:db8::1")}, "address"},
		{"no segment", fabric.Registration{Name: "d1", Address: addr("10.99.0.1")}, "address"},
		{"network address", fabric.Registration{Name: "d1", Address: addr("10.10.10.0")}, "address"},
		{"broadcast", fabric.Registration{Name: "d1", Address: addr("10.10.10.255")}, "address"},
		{"host bits", fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Subnet: pfx("10.210.10.5/24")}, "subnet"},
		{"outside pool", fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Subnet: pfx("172.11.10.0/24")}, "subnet"},
		{"wrong length", fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Subnet: pfx("10.210.10.0/25")}, "subnet"},
		{"wider than pool", fabric.Registration{Name: "d1", Address: addr("10.10.10.101"), Subnet: pfx("172.0.0.0/8")}, "subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, seg, pool, err := inv.Place(tt.reg)
			var got string
			if err != nil {
				got = err.(*fabric.Error).Field
			}
			if got != tt.wantField {
				t.Fatalf("Place() = %v, want error on field %q", err, tt.wantField)
			}
			if err == nil && (seg.Name != "rack1" || pool.Name != "docker" || r.Name != strings.ToLower(tt.reg.Name)) {
				t.Errorf("Place() = %+v %s %s", r, seg.Name, pool.Name)
			}
		})
	}
}

func TestReturnPathAndBip(t *testing.T) {
	t.Parallel()
	h := fabric.Host{Name: "d1", Address: addr("10.10.10.101"), Segment: "rack1", Subnet: pfx("10.210.10.0/24")}
	got, err := labInventory().ReturnPath(h)
	if err != nil {
		t.Fatal(err)
	}
	want := []fabric.DeviceRoute{
		{Device: "sw1", Route: fabric.Route{VRF: "default", Prefix: pfx("10.210.10.0/24"), NextHop: addr("10.10.10.101")}},
		{Device: "fw1", Route: fabric.Route{VRF: "default", Prefix: pfx("10.210.10.0/24"), NextHop: addr("10.10.20.1")}},
	}
	if diff := cmp.Diff(got, want, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("ReturnPath() diff (-got +want):\n%s", diff)
	}
	if h.Bip().String() != "10.210.10.1/24" || h.Gateway().String() != "10.210.10.1" {
		t.Errorf("Bip() = %s, Gateway() = %s", h.Bip(), h.Gateway())
	}
}

func r(p, nh string) fabric.Route {
	return fabric.Route{VRF: "default", Prefix: pfx(p), NextHop: addr(nh)}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	want := []fabric.Route{r("10.210.1.0/24", "10.0.0.1"), r("10.210.2.0/24", "10.0.0.2"), r("10.210.3.0/24", "10.0.0.3")}
	have := []fabric.Route{r("10.210.1.0/24", "10.0.0.1"), r("10.210.2.0/24", "10.0.0.9"), r("10.210.9.0/24", "10.0.0.1")}
	got := fabric.Plan(want, have)
	wantOps := []fabric.RouteOp{
		{Action: fabric.ActionDelete, Route: r("10.210.2.0/24", "10.0.0.9")},
		{Action: fabric.ActionDelete, Route: r("10.210.9.0/24", "10.0.0.1")},
		{Action: fabric.ActionAdd, Route: r("10.210.2.0/24", "10.0.0.2")},
		{Action: fabric.ActionAdd, Route: r("10.210.3.0/24", "10.0.0.3")},
	}
	if diff := cmp.Diff(opStrings(got), opStrings(wantOps)); diff != "" {
		t.Errorf("Plan() diff (-got +want):\n%s", diff)
	}
	if ops := fabric.Plan(want, want); len(ops) != 0 {
		t.Errorf("Plan(want, want) = %v, want nothing", ops)
	}
}

func opStrings(ops []fabric.RouteOp) []string {
	var out []string
	for _, o := range ops {
		out = append(out, o.String())
	}
	return out
}

func TestOrder(t *testing.T) {
	t.Parallel()
	add := func(dev string) fabric.DeviceOp {
		return fabric.DeviceOp{Device: dev, Op: fabric.RouteOp{Action: fabric.ActionAdd, Route: r("10.210.1.0/24", "10.0.0.1")}}
	}
	del := func(dev string) fabric.DeviceOp {
		return fabric.DeviceOp{Device: dev, Op: fabric.RouteOp{Action: fabric.ActionDelete, Route: r("10.210.2.0/24", "10.0.0.1")}}
	}
	path := fabric.Sequential([]string{"sw1", "fw1"})
	got := fabric.Order(path, []fabric.DeviceOp{add("fw1"), del("sw1"), add("sw1"), del("fw1")})
	var seq []string
	for _, o := range got {
		seq = append(seq, string(o.Op.Action)+" "+o.Device)
	}
	want := []string{"delete fw1", "delete sw1", "add sw1", "add fw1"}
	if diff := cmp.Diff(seq, want); diff != "" {
		t.Errorf("Order() diff (-got +want):\n%s", diff)
	}
}

func TestRouteValidate(t *testing.T) {
	t.Parallel()
	bad := []fabric.Route{
		{VRF: "", Prefix: pfx("10.210.1.0/24"), NextHop: addr("10.0.0.1")},
		{VRF: "red vrf", Prefix: pfx("10.210.1.0/24"), NextHop: addr("10.0.0.1")},
		{VRF: "default", Prefix: pfx("10.210.1.5/24"), NextHop: addr("10.0.0.1")},
		{VRF: "default", Prefix: pfx("10.210.1.0/24")},
		{VRF: "default", Prefix: pfx("10.210.1.0/24"), NextHop: addr("2001:db8::1")},
	}
	for _, b := range bad {
		if err := b.Validate(); err == nil {
			t.Errorf("%+v.Validate() = nil, want error", b)
		}
	}
	if err := r("10.210.1.0/24", "10.0.0.1").Validate(); err != nil {
		t.Errorf("valid route: %v", err)
	}
	if !fabric.Managed(pfx("10.210.1.0/24"), []netip.Prefix{pfx("10.210.0.0/16")}) || fabric.Managed(pfx("172.0.0.0/8"), []netip.Prefix{pfx("10.210.0.0/16")}) {
		t.Error("Managed is wrong")
	}
}

func TestCheckPlanHash(t *testing.T) {
	t.Parallel()
	ch := fabric.Change{ID: 7, PlanHash: "aaaa"}
	tests := []struct {
		name, current, quoted string
		wantReason            string // "" means approved
	}{
		{name: "the plan shown", current: "aaaa", quoted: "aaaa"},
		{name: "a wrong hash", current: "aaaa", quoted: "deadbeef", wantReason: fabric.PlanHashMismatch},
		{name: "the plan changed", current: "bbbb", quoted: "aaaa", wantReason: fabric.PlanChanged},
		{name: "the plan changed and a wrong hash", current: "bbbb", quoted: "deadbeef", wantReason: fabric.PlanChanged},
	}
	for _, tt := range tests {
		err := fabric.CheckPlanHash(ch, tt.current, tt.quoted)
		var stale *fabric.StalePlanError
		switch {
		case tt.wantReason == "" && err != nil:
			t.Errorf("%s: CheckPlanHash = %v, want nil", tt.name, err)
		case tt.wantReason != "" && (!errors.As(err, &stale) || stale.Reason != tt.wantReason || fabric.ErrorCode(err) != fabric.ECONFLICT):
			t.Errorf("%s: CheckPlanHash = %v, want a %s conflict", tt.name, err, tt.wantReason)
		case tt.wantReason == fabric.PlanHashMismatch && !strings.Contains(stale.Message, "(it is aaaa)"):
			t.Errorf("%s: message %q does not give the change's hash", tt.name, stale.Message)
		}
	}
}
