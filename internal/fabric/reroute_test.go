package fabric_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
)

func rerouteHost(name string, i int, state fabric.HostState) fabric.Host {
	return fabric.Host{Name: name, Address: addr(fmt.Sprintf("10.10.10.%d", 100+i)), Segment: "rack1", Pool: "docker",
		Subnet: pfx(fmt.Sprintf("10.210.%d.0/24", i)), State: state}
}

func withDevice(inv *fabric.Inventory, name, vrf string) {
	inv.Devices = append(inv.Devices, fabric.Device{Name: name, Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH,
		Address: netip.MustParseAddrPort("198.18.0.20:22"), VRF: vrf})
}

func hop(device, nextHop string) fabric.Hop {
	if nextHop == "host" {
		return fabric.Hop{Device: device, NextHop: fabric.NextHop{Host: true}}
	}
	return fabric.Hop{Device: device, NextHop: fabric.NextHop{Addr: addr(nextHop)}}
}

// staged renders a reroute's ops in apply order as "stage action device prefix via next-hop vrf".
func staged(t *testing.T, r fabric.Reroute) []string {
	t.Helper()
	ops, err := fabric.StageOps(r.Path, r.Ops, func(string, []fabric.RouteOp) ([]string, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range ops {
		out = append(out, fmt.Sprintf("%d %s %s %s via %s %s", o.Stage, o.Op.Action, o.Device, o.Op.Route.Prefix, o.Op.Route.NextHop, o.Op.Route.VRF))
	}
	return out
}

func TestPlanReroutes(t *testing.T) {
	t.Parallel()
	h1, h2 := rerouteHost("h1", 1, fabric.HostActive), rerouteHost("h2", 2, fabric.HostActive)
	pending, removing, removed := rerouteHost("p", 3, fabric.HostPending), rerouteHost("r", 4, fabric.HostRemoving), rerouteHost("x", 5, fabric.HostRemoved)
	everyState := []fabric.Host{h1, pending, removing, removed}
	threeHops := func(inv *fabric.Inventory) {
		withDevice(inv, "fwx", "default")
		inv.Segments[0].RouteVia = []fabric.Hop{hop("sw1", "host"), hop("fwx", "10.10.20.1"), hop("fw1", "10.10.30.1")}
	}
	tests := []struct {
		name         string
		from, to     func(*fabric.Inventory) // edits of labInventory (sw1 next hop host, fw1 via 10.10.20.1)
		hosts        []fabric.Host
		wantSegments []string            // segments whose path changed
		wantOps      map[string][]string // per segment, in apply order
		wantHosts    map[string]int
		wantWarning  string
	}{
		{
			name:  "nothing changed",
			hosts: everyState,
		},
		{
			name: "a device's management address changed: nothing to move",
			to: func(inv *fabric.Inventory) {
				inv.Devices[0].Address = netip.MustParseAddrPort("198.18.0.99:22")
			},
			hosts: everyState,
		},
		{
			name: "firewall added outside: adds on it alone, for active hosts only",
			to: func(inv *fabric.Inventory) {
				withDevice(inv, "fw2", "default")
				inv.Segments[0].RouteVia = append(inv.Segments[0].RouteVia, hop("fw2", "10.10.30.1"))
			},
			hosts:        []fabric.Host{h1, h2, pending, removing, removed},
			wantSegments: []string{"rack1"},
			wantOps: map[string][]string{"rack1": {
				"0 add fw2 10.210.1.0/24 via 10.10.30.1 default",
				"0 add fw2 10.210.2.0/24 via 10.10.30.1 default",
			}},
			wantHosts: map[string]int{"rack1": 2},
		},
		{
			name: "outer device removed: deletes on it, for active and removing hosts",
			to: func(inv *fabric.Inventory) {
				inv.Segments[0].RouteVia = inv.Segments[0].RouteVia[:1]
			},
			hosts:        everyState,
			wantSegments: []string{"rack1"},
			wantOps: map[string][]string{"rack1": {
				"0 delete fw1 10.210.1.0/24 via 10.10.20.1 default",
				"0 delete fw1 10.210.4.0/24 via 10.10.20.1 default",
			}},
			wantHosts: map[string]int{"rack1": 2},
		},
		{
			name: "middle device removed: deletes outside-in along the old path, then the new next hop",
			from: threeHops,
			to: func(inv *fabric.Inventory) {
				withDevice(inv, "fwx", "default")
				inv.Segments[0].RouteVia = []fabric.Hop{hop("sw1", "host"), hop("fw1", "10.10.20.1")}
			},
			hosts:        []fabric.Host{h1},
			wantSegments: []string{"rack1"},
			wantOps: map[string][]string{"rack1": {
				"0 delete fw1 10.210.1.0/24 via 10.10.30.1 default",
				"1 delete fwx 10.210.1.0/24 via 10.10.20.1 default",
				"2 add fw1 10.210.1.0/24 via 10.10.20.1 default",
			}},
			wantHosts: map[string]int{"rack1": 1},
		},
		{
			name: "device inserted in the middle: adds inside-out, the outer next hop replaced",
			to: func(inv *fabric.Inventory) {
				threeHops(inv)
			},
			hosts:        []fabric.Host{h1},
			wantSegments: []string{"rack1"},
			wantOps: map[string][]string{"rack1": {
				"0 delete fw1 10.210.1.0/24 via 10.10.20.1 default",
				"1 add fwx 10.210.1.0/24 via 10.10.20.1 default",
				"2 add fw1 10.210.1.0/24 via 10.10.30.1 default",
			}},
			wantHosts: map[string]int{"rack1": 1},
		},
		{
			name: "next hop changed: delete, then add; a removing host only loses the old route",
			to: func(inv *fabric.Inventory) {
				inv.Segments[0].RouteVia[1].NextHop.Addr = addr("10.10.20.9")
			},
			hosts:        []fabric.Host{h1, removing},
			wantSegments: []string{"rack1"},
			wantOps: map[string][]string{"rack1": {
				"0 delete fw1 10.210.1.0/24 via 10.10.20.1 default",
				"0 delete fw1 10.210.4.0/24 via 10.10.20.1 default",
				"0 add fw1 10.210.1.0/24 via 10.10.20.9 default",
			}},
			wantHosts: map[string]int{"rack1": 2},
		},
		{
			name: "VRF of a device changed",
			to: func(inv *fabric.Inventory) {
				inv.Devices[0].VRF = "red"
			},
			hosts:        []fabric.Host{h1},
			wantSegments: []string{"rack1"},
			wantOps: map[string][]string{"rack1": {
				"0 delete sw1 10.210.1.0/24 via 10.10.10.101 default",
				"0 add sw1 10.210.1.0/24 via 10.10.10.101 red",
			}},
			wantHosts: map[string]int{"rack1": 1},
		},
		{
			name: "path changed with no live host: the segment, and no ops",
			to: func(inv *fabric.Inventory) {
				inv.Segments[0].RouteVia = inv.Segments[0].RouteVia[:1]
			},
			hosts:        []fabric.Host{pending, removed},
			wantSegments: []string{"rack1"},
		},
		{
			name: "only the changed segment of two",
			from: func(inv *fabric.Inventory) {
				inv.Segments = append(inv.Segments, fabric.Segment{Name: "rack2", Hosts: pfx("10.10.11.0/24"), Pool: "docker",
					RouteVia: []fabric.Hop{hop("sw1", "host")}})
			},
			to: func(inv *fabric.Inventory) {
				inv.Segments = append(inv.Segments, fabric.Segment{Name: "rack2", Hosts: pfx("10.10.11.0/24"), Pool: "docker",
					RouteVia: []fabric.Hop{hop("sw1", "host"), hop("fw1", "10.10.21.1")}})
			},
			hosts: []fabric.Host{h1, {Name: "b1", Address: addr("10.10.11.7"), Segment: "rack2", Pool: "docker",
				Subnet: pfx("10.210.9.0/24"), State: fabric.HostActive}},
			wantSegments: []string{"rack2"},
			wantOps:      map[string][]string{"rack2": {"0 add fw1 10.210.9.0/24 via 10.10.21.1 default"}},
			wantHosts:    map[string]int{"rack2": 1},
		},
		{
			name: "segment gone with live hosts: a warning, no ops",
			from: func(inv *fabric.Inventory) {
				inv.Segments = append(inv.Segments, fabric.Segment{Name: "rack2", Hosts: pfx("10.10.11.0/24"), Pool: "docker",
					RouteVia: []fabric.Hop{hop("sw1", "host")}})
			},
			hosts: []fabric.Host{h1, {Name: "b1", Address: addr("10.10.11.7"), Segment: "rack2", Pool: "docker",
				Subnet: pfx("10.210.9.0/24"), State: fabric.HostActive}},
			wantWarning: "segment rack2 is no longer configured",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			from, to := labInventory(), labInventory()
			if tt.from != nil {
				tt.from(from)
			}
			if tt.to != nil {
				tt.to(to)
			}
			reroutes, warnings := fabric.PlanReroutes(from, to, tt.hosts)
			var segs []string
			ops, hosts := map[string][]string{}, map[string]int{}
			for _, r := range reroutes {
				segs = append(segs, r.Segment)
				if len(r.Ops) > 0 {
					ops[r.Segment], hosts[r.Segment] = staged(t, r), r.Hosts
				}
			}
			if diff := cmp.Diff(tt.wantSegments, segs); diff != "" {
				t.Errorf("changed segments (-want +got):\n%s", diff)
			}
			if tt.wantOps == nil {
				tt.wantOps, tt.wantHosts = map[string][]string{}, map[string]int{}
			}
			if diff := cmp.Diff(tt.wantOps, ops); diff != "" {
				t.Errorf("ops (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantHosts, hosts); diff != "" {
				t.Errorf("hosts moved (-want +got):\n%s", diff)
			}
			if got := strings.Join(warnings, "\n"); (tt.wantWarning == "") != (got == "") || !strings.Contains(got, tt.wantWarning) {
				t.Errorf("warnings = %q, want one containing %q", warnings, tt.wantWarning)
			}
		})
	}
}

func TestCheckReroutes(t *testing.T) {
	t.Parallel()
	to := labInventory()
	reroutes := []fabric.Reroute{{Segment: "rack1", Path: [][]string{{"sw1"}, {"fw1"}},
		Ops: []fabric.DeviceOp{{Device: "fw1", Op: fabric.RouteOp{Action: fabric.ActionDelete}}}}}
	tests := []struct {
		name     string
		removed  string // a device gone from the new inventory
		open     []fabric.Change
		wantCode string
	}{
		{name: "nothing open"},
		{name: "a pending reroute of another segment", open: []fabric.Change{{ID: 3, Kind: fabric.ChangeReroute, Segment: "rack2", Status: fabric.ChangePending}}},
		{name: "an applied reroute of the segment", open: []fabric.Change{{ID: 3, Kind: fabric.ChangeReroute, Segment: "rack1", Status: fabric.ChangeApplied}}},
		{name: "a pending add in the segment", open: []fabric.Change{{ID: 3, Kind: fabric.ChangeAdd, Segment: "rack1", Status: fabric.ChangePending}}},
		{name: "a pending reroute of the segment", open: []fabric.Change{{ID: 3, Kind: fabric.ChangeReroute, Segment: "rack1", Status: fabric.ChangePending}},
			wantCode: fabric.ECONFLICT},
		{name: "an applying reroute of the segment", open: []fabric.Change{{ID: 3, Kind: fabric.ChangeReroute, Segment: "rack1", Status: fabric.ChangeApplying}},
			wantCode: fabric.ECONFLICT},
		{name: "a device that must lose routes is no longer configured", removed: "fw1", wantCode: fabric.ECONFLICT},
		{name: "a device with nothing to lose is no longer configured", removed: "sw1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := *to
			inv.Devices = slices.DeleteFunc(slices.Clone(to.Devices), func(d fabric.Device) bool { return d.Name == tt.removed })
			if got := fabric.ErrorCode(fabric.CheckReroutes(&inv, reroutes, tt.open)); got != tt.wantCode {
				t.Errorf("CheckReroutes = code %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func TestSupersededBy(t *testing.T) {
	t.Parallel()
	on := func(devices ...string) []fabric.ChangeOp {
		var out []fabric.ChangeOp
		for _, d := range devices {
			out = append(out, fabric.ChangeOp{Device: d})
		}
		return out
	}
	withOps := fabric.Reroute{Segment: "rack1", Path: [][]string{{"sw1"}, {"fw1"}}, Ops: []fabric.DeviceOp{{Device: "fw1"}}}
	tests := []struct {
		name     string
		reroutes []fabric.Reroute
		open     []fabric.Change
		want     []int64
	}{
		{
			name:     "pending remediation on a rerouted device",
			reroutes: []fabric.Reroute{withOps},
			open:     []fabric.Change{{ID: 7, Kind: fabric.ChangeRemediate, Status: fabric.ChangePending, Ops: on("sw9", "sw1")}},
			want:     []int64{7},
		},
		{
			name:     "remediation elsewhere, approved remediation, pending add",
			reroutes: []fabric.Reroute{withOps},
			open: []fabric.Change{
				{ID: 7, Kind: fabric.ChangeRemediate, Status: fabric.ChangePending, Ops: on("sw9")},
				{ID: 8, Kind: fabric.ChangeRemediate, Status: fabric.ChangeApproved, Ops: on("fw1")},
				{ID: 9, Kind: fabric.ChangeAdd, Status: fabric.ChangePending, Ops: on("fw1")},
			},
		},
		{
			name:     "a changed path that moves nothing supersedes nothing",
			reroutes: []fabric.Reroute{{Segment: "rack1", Path: [][]string{{"sw1"}, {"fw1"}}}},
			open:     []fabric.Change{{ID: 7, Kind: fabric.ChangeRemediate, Status: fabric.ChangePending, Ops: on("fw1")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, fabric.SupersededBy(tt.reroutes, tt.open)); diff != "" {
				t.Errorf("SupersededBy (-want +got):\n%s", diff)
			}
		})
	}
}
