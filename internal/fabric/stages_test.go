package fabric_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
)

// haInventory is the lab's fabric with a redundant switch pair: sw1 and sw2 in one stage
// (both route the subnet to the host), then fw1.
func haInventory() *fabric.Inventory {
	inv := labInventory()
	inv.Segments[0].RouteVia = []fabric.Hop{
		{Devices: []string{"sw1", "sw2"}, NextHop: fabric.NextHop{Host: true}},
		{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("10.10.20.1")}},
	}
	inv.Devices = append(inv.Devices, fabric.Device{Name: "sw2", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH,
		Address: netip.MustParseAddrPort("198.18.0.13:22"), VRF: "default"})
	return inv
}

func TestInventoryValidateParallelHops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mutate     func(*fabric.Inventory)
		wantFields []string // nil means valid
	}{
		{name: "valid", mutate: func(*fabric.Inventory) {}},
		{name: "unknown device in the list", mutate: func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[0].Devices[1] = "sw9" },
			wantFields: []string{"segments[0].route_via[0].devices[1]"}},
		{name: "a device twice in one stage", mutate: func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[0].Devices = []string{"sw1", "sw1"} },
			wantFields: []string{"segments[0].route_via[0].devices[1]"}},
		{name: "a device in two stages", mutate: func(inv *fabric.Inventory) {
			inv.Segments[0].RouteVia[1] = fabric.Hop{Devices: []string{"fw1", "sw2"}, NextHop: fabric.NextHop{Addr: addr("10.10.20.1")}}
		}, wantFields: []string{"segments[0].route_via[1].devices[1]"}},
		{name: "device and devices both", mutate: func(inv *fabric.Inventory) { inv.Segments[0].RouteVia[0].Device = "sw1" },
			wantFields: []string{"segments[0].route_via[0].devices"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := haInventory()
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
			if diff := cmp.Diff(got, tt.wantFields); diff != "" {
				t.Errorf("Validate() fields (-got +want):\n%s\n%v", diff, err)
			}
		})
	}
}

// stagedOps renders ops as "stage action device next-hop".
func stagedOps(ops []fabric.ChangeOp) []string {
	var out []string
	for _, o := range ops {
		out = append(out, fmt.Sprintf("%d %s %s %s", o.Stage, o.Op.Action, o.Device, o.Op.Route.NextHop))
	}
	return out
}

func TestPlanChangeParallelStage(t *testing.T) {
	t.Parallel()
	inv := haInventory()
	h := fabric.Host{Name: "d1", Address: addr("10.10.10.101"), Segment: "rack1", Subnet: pfx("10.210.0.0/24")}
	preview := func(dev string, ops []fabric.RouteOp) ([]string, error) {
		return []string{dev + ": " + ops[0].String()}, nil
	}
	tests := []struct {
		kind fabric.ChangeKind
		want []string
	}{
		{fabric.ChangeAdd, []string{"0 add sw1 10.10.10.101", "0 add sw2 10.10.10.101", "1 add fw1 10.10.20.1"}},
		{fabric.ChangeRemove, []string{"0 delete fw1 10.10.20.1", "1 delete sw1 10.10.10.101", "1 delete sw2 10.10.10.101"}},
	}
	for _, tt := range tests {
		ops, err := inv.PlanChange(tt.kind, h, preview)
		if err != nil {
			t.Fatalf("PlanChange(%s) = %v", tt.kind, err)
		}
		if diff := cmp.Diff(stagedOps(ops), tt.want); diff != "" {
			t.Errorf("PlanChange(%s) (-got +want):\n%s", tt.kind, diff)
		}
	}
	// The plan hash covers every device of the stage: dropping sw2 gives another hash.
	ops, _ := inv.PlanChange(fabric.ChangeAdd, h, preview)
	single := labInventory()
	one, _ := single.PlanChange(fabric.ChangeAdd, h, preview)
	if fabric.PlanHash(ops) == fabric.PlanHash(one) {
		t.Errorf("PlanHash is the same with and without sw2 in the stage")
	}
}

// haOp is an op of a change over the HA path: sw1 and sw2 in stage 0, fw1 in stage 1.
func haOp(dev string, s fabric.OpStatus) fabric.ChangeOp {
	seq, stage, nh := map[string]int{"sw1": 0, "sw2": 1, "fw1": 2}[dev], 0, "10.10.10.101"
	if dev == "fw1" {
		stage, nh = 1, "10.10.20.1"
	}
	o := fabric.ChangeOp{Seq: seq, Stage: stage, Device: dev, Status: s, Preview: "add on " + dev,
		Op: fabric.RouteOp{Action: fabric.ActionAdd, Route: fabric.Route{VRF: "default", Prefix: pfx("10.210.0.0/24"), NextHop: addr(nh)}}}
	if s == fabric.OpFailed {
		o.Error = "the device refused it"
	}
	return o
}

// haUndo is the rollback op that undoes haOp(dev), at undo position seq and stage.
func haUndo(dev string, seq, stage int, s fabric.OpStatus) fabric.ChangeOp {
	o := haOp(dev, fabric.OpPending)
	o.Seq, o.Stage, o.Rollback, o.Op, o.Preview, o.Status = seq, stage, true, o.Op.Inverse(), "undo: "+o.Preview, s
	return o
}

func TestSettleParallelStage(t *testing.T) {
	t.Parallel()
	host := &fabric.Host{ID: 7, Name: "d1", Subnet: pfx("10.210.0.0/24"), State: fabric.HostPending}
	const sw2Failure = "sw2: add 10.210.0.0/24 via 10.10.10.101 vrf default: the device refused it"
	const fw1Failure = "fw1: add 10.210.0.0/24 via 10.10.20.1 vrf default: the device refused it"
	tests := []struct {
		name   string
		status fabric.ChangeStatus
		reason string
		ops    []fabric.ChangeOp
		want   fabric.Settlement
	}{
		{
			name: "approved: both devices of the first stage have work at once", status: fabric.ChangeApproved,
			ops:  []fabric.ChangeOp{haOp("sw1", fabric.OpPending), haOp("sw2", fabric.OpPending), haOp("fw1", fabric.OpPending)},
			want: fabric.Settlement{Ready: []string{"sw1", "sw2"}},
		},
		{
			name: "one device of the stage applied: the next stage waits for the other", status: fabric.ChangeApplying,
			ops:  []fabric.ChangeOp{haOp("sw1", fabric.OpApplied), haOp("sw2", fabric.OpPending), haOp("fw1", fabric.OpPending)},
			want: fabric.Settlement{Ready: []string{"sw2"}},
		},
		{
			name: "the whole stage applied: the next stage starts", status: fabric.ChangeApplying,
			ops:  []fabric.ChangeOp{haOp("sw1", fabric.OpApplied), haOp("sw2", fabric.OpApplied), haOp("fw1", fabric.OpPending)},
			want: fabric.Settlement{Ready: []string{"fw1"}},
		},
		{
			name: "a refusal while the stage's other device may still be typing: wait for its session", status: fabric.ChangeApplying,
			ops:  []fabric.ChangeOp{haOp("sw1", fabric.OpPending), haOp("sw2", fabric.OpFailed), haOp("fw1", fabric.OpPending)},
			want: fabric.Settlement{},
		},
		{
			name: "a refusal, the other device applied: undo it", status: fabric.ChangeApplying,
			ops: []fabric.ChangeOp{haOp("sw1", fabric.OpApplied), haOp("sw2", fabric.OpFailed), haOp("fw1", fabric.OpPending)},
			want: fabric.Settlement{SkipPending: true, Reason: sw2Failure, Ready: []string{"sw1"},
				Undo:  []fabric.ChangeOp{haUndo("sw1", 0, 0, fabric.OpPending)},
				Event: fabric.ChangeEvent{What: "rolling_back", Detail: "undoing 1 applied op because " + sw2Failure}},
		},
		{
			name: "both devices of the stage refused: nothing to undo", status: fabric.ChangeApplying,
			ops: []fabric.ChangeOp{haOp("sw1", fabric.OpFailed), haOp("sw2", fabric.OpFailed), haOp("fw1", fabric.OpPending)},
			want: fabric.Settlement{SkipPending: true, Final: fabric.ChangeRolledBack,
				Reason: "nothing was applied: sw1: add 10.210.0.0/24 via 10.10.10.101 vrf default: the device refused it; " + sw2Failure},
		},
		{
			name: "the next stage refused: both devices of the earlier stage are undone in one stage", status: fabric.ChangeApplying,
			ops: []fabric.ChangeOp{haOp("sw1", fabric.OpApplied), haOp("sw2", fabric.OpApplied), haOp("fw1", fabric.OpFailed)},
			want: fabric.Settlement{SkipPending: true, Reason: fw1Failure, Ready: []string{"sw2", "sw1"},
				Undo:  []fabric.ChangeOp{haUndo("sw2", 0, 0, fabric.OpPending), haUndo("sw1", 1, 0, fabric.OpPending)},
				Event: fabric.ChangeEvent{What: "rolling_back", Detail: "undoing 2 applied ops because " + fw1Failure}},
		},
		{
			name: "an undo refused while the stage's other undo is under way: wait for it", status: fabric.ChangeApplying, reason: fw1Failure,
			ops: []fabric.ChangeOp{haOp("sw1", fabric.OpApplied), haOp("sw2", fabric.OpApplied), haOp("fw1", fabric.OpFailed),
				haUndo("sw2", 0, 0, fabric.OpFailed), haUndo("sw1", 1, 0, fabric.OpPending)},
			want: fabric.Settlement{},
		},
		{
			name: "both undos of the stage done: rolled back", status: fabric.ChangeApplying, reason: fw1Failure,
			ops: []fabric.ChangeOp{haOp("sw1", fabric.OpApplied), haOp("sw2", fabric.OpApplied), haOp("fw1", fabric.OpFailed),
				haUndo("sw2", 0, 0, fabric.OpApplied), haUndo("sw1", 1, 0, fabric.OpApplied)},
			want: fabric.Settlement{UndoneForward: true, Final: fabric.ChangeRolledBack, Reason: fw1Failure},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := fabric.Change{ID: 1, Kind: fabric.ChangeAdd, Status: tt.status, Host: host, Reason: tt.reason, Ops: tt.ops}
			if diff := cmp.Diff(fabric.Settle(ch), tt.want, equateAddrs); diff != "" {
				t.Errorf("Settle() (-got +want):\n%s", diff)
			}
		})
	}
}

func TestPlanReroutesIntoParallelStage(t *testing.T) {
	t.Parallel()
	from := labInventory()
	withDevice(from, "sw2", "default")
	to := haInventory()
	hosts := []fabric.Host{{Name: "d1", Address: addr("10.10.10.101"), Segment: "rack1", Subnet: pfx("10.210.0.0/24"), State: fabric.HostActive}}
	rs, warnings := fabric.PlanReroutes(from, to, hosts)
	if len(rs) != 1 || len(warnings) != 0 {
		t.Fatalf("PlanReroutes() = %+v, %v; want one reroute", rs, warnings)
	}
	if got := stagedOps(mustStage(t, rs[0])); !cmp.Equal(got, []string{"0 add sw2 10.10.10.101"}) {
		t.Errorf("staged reroute = %q, want sw2's add alone", got)
	}
	// And back: sw2 leaves the path, its stage goes (deletes outside-in), right after sw1's.
	rs, _ = fabric.PlanReroutes(to, from, hosts)
	if len(rs) != 1 {
		t.Fatalf("PlanReroutes(back) = %+v", rs)
	}
	if diff := cmp.Diff(rs[0].Path, [][]string{{"sw1", "sw2"}, {"fw1"}}); diff != "" {
		t.Errorf("Path (-got +want):\n%s", diff)
	}
}

func mustStage(t *testing.T, r fabric.Reroute) []fabric.ChangeOp {
	t.Helper()
	ops, err := fabric.StageOps(r.Path, r.Ops, func(string, []fabric.RouteOp) ([]string, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	return ops
}
