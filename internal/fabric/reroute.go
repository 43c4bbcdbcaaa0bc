package fabric

import (
	"fmt"
	"slices"
)

// Reroute is what one segment needs when its return path changed between two inventories: the
// ops that move its live hosts' routes from the old path to the new one. A segment whose path
// changed but whose hosts need nothing (none is live) has no ops.
type Reroute struct {
	Segment string
	// Path lists the stages of the old and the new path, inside-out, for ordering: the new
	// path's stages, with each device that left it placed with a device of its old stage that
	// stays, or else right after the stage of the device it followed on the old path, so that
	// deletes on it still go outside-in (see mergePaths).
	Path [][]string
	// Ops are the route ops, host by host, in no particular order across devices; StageOps
	// puts them in apply order.
	Ops []DeviceOp
	// Hosts is how many hosts the ops move.
	Hosts int
}

// PlanReroutes compares each segment's return path in inventories from and to (the devices on it, their
// next hops and VRFs) and returns, for every segment whose path changed, the ops that move the
// routes of the given hosts from the old path to the new one. Per host and device it is Plan
// of the new path's route against the old one's:
//
//   - an active host holds its old routes: it gets every delete and add (a device that joined
//     the path gets the route, a device that left it loses it, a changed next hop or VRF is
//     replaced);
//   - a removing host is on its way out: it gets only the deletes its own remove change will
//     no longer make, since that change is replanned on the new path when it is approved or
//     retried and would leave the route on a device that left the path;
//   - a pending host holds no routes yet, and its add change is replanned on the new path
//     when it is approved: it needs nothing here. Removed hosts need nothing either.
//
// Hosts of a segment that is gone from to, or that from does not know (so what the devices
// hold cannot be told), are left out and named in warnings.
func PlanReroutes(from, to *Inventory, hosts []Host) (out []Reroute, warnings []string) {
	bySeg := map[string][]Host{}
	for _, h := range hosts {
		if h.State == HostActive || h.State == HostRemoving {
			bySeg[h.Segment] = append(bySeg[h.Segment], h)
		}
	}
	for _, s := range from.Segments {
		if _, ok := to.Segment(s.Name); !ok && len(bySeg[s.Name]) > 0 {
			warnings = append(warnings, fmt.Sprintf("segment %s is no longer configured but %d live hosts are in it (e.g. %s): their routes stay on the devices until those hosts are removed; verify reports them",
				s.Name, len(bySeg[s.Name]), bySeg[s.Name][0].Name))
		}
	}
	for _, s := range to.Segments {
		prev, ok := from.Segment(s.Name)
		if !ok {
			if len(bySeg[s.Name]) > 0 {
				warnings = append(warnings, fmt.Sprintf("segment %s was not in the stored inventory but %d live hosts are in it: no reroute is planned for them; verify shows what the devices hold",
					s.Name, len(bySeg[s.Name])))
			}
			continue
		}
		if slices.Equal(from.hops(prev), to.hops(s)) {
			continue
		}
		r := Reroute{Segment: s.Name, Path: mergePaths(prev.Stages(), s.Stages())}
		for _, h := range bySeg[s.Name] {
			ops := rerouteHost(from, to, h, r.Path)
			if len(ops) > 0 {
				r.Ops = append(r.Ops, ops...)
				r.Hosts++
			}
		}
		out = append(out, r)
	}
	return out, warnings
}

// resolvedHop is a hop as it reaches the devices: the device, its VRF and the next hop.
type resolvedHop struct {
	device, vrf string
	nextHop     NextHop
}

// hops resolves a segment's route_via against the inventory's devices.
func (inv *Inventory) hops(s Segment) []resolvedHop {
	out := make([]resolvedHop, 0, len(s.RouteVia))
	for _, h := range s.RouteVia {
		for _, dev := range h.Members() {
			d, _ := inv.Device(dev)
			out = append(out, resolvedHop{device: dev, vrf: d.VRF, nextHop: h.NextHop})
		}
	}
	return out
}

// mergePaths returns the new path's stages with the devices only on the old one inserted: in
// the stage of a device that shared their old stage and stays, or else, those of one old stage
// together, as a stage right after the stage holding the nearest device that preceded them on
// the old path (first when none did).
func mergePaths(old, cur [][]string) [][]string {
	out := make([][]string, 0, len(cur)+len(old))
	for _, st := range cur {
		out = append(out, slices.Clone(st))
	}
	onOut := func(d string) bool { return stageOf(out, d) < len(out) }
	for i, st := range old {
		var gone []string
		for _, d := range st {
			if !onOut(d) {
				gone = append(gone, d)
			}
		}
		if len(gone) == 0 {
			continue
		}
		if k := slices.IndexFunc(st, onOut); k >= 0 {
			p := stageOf(out, st[k]) // a device that stays: the others leave from its stage
			out[p] = append(out[p], gone...)
			continue
		}
		at := 0
	search:
		for j := i - 1; j >= 0; j-- {
			for k := len(old[j]) - 1; k >= 0; k-- {
				if p := stageOf(out, old[j][k]); p < len(out) {
					at = p + 1
					break search
				}
			}
		}
		out = slices.Insert(out, at, gone)
	}
	return out
}

// rerouteHost returns the ops that move host h's routes from its old path to its new one (see
// PlanReroutes), device by device along path.
func rerouteHost(from, to *Inventory, h Host, path [][]string) []DeviceOp {
	have, err := from.ReturnPath(h)
	if err != nil {
		return nil
	}
	want, err := to.ReturnPath(h)
	if err != nil {
		return nil
	}
	var out []DeviceOp
	for _, dev := range slices.Concat(path...) {
		ops := Plan(routesOn(dev, want), routesOn(dev, have))
		for _, op := range ops {
			if h.State == HostRemoving && op.Action == ActionAdd {
				continue
			}
			out = append(out, DeviceOp{Device: dev, Op: op})
		}
	}
	return out
}

func routesOn(device string, path []DeviceRoute) []Route {
	var out []Route
	for _, dr := range path {
		if dr.Device == device {
			out = append(out, dr.Route)
		}
	}
	return out
}

// CheckReroutes refuses reroutes that cannot be carried out: while an unfinished reroute
// change (pending, approved or applying) of the same segment exists among open, since the new
// plan would start from a path the devices do not hold yet; and when a device that must lose
// routes is gone from inventory to, since nothing could log in to it to delete them.
func CheckReroutes(to *Inventory, reroutes []Reroute, open []Change) error {
	for _, r := range reroutes {
		for _, o := range r.Ops {
			if _, ok := to.Device(o.Device); !ok {
				return FieldErrorf(ECONFLICT, "devices", "device %s was removed but segment %s's live hosts still have routes on it; keep it under devices (off every route_via) until the reroute that deletes them is applied",
					o.Device, r.Segment)
			}
		}
		for _, c := range open {
			if c.Kind == ChangeReroute && c.Segment == r.Segment && !c.Status.Final() {
				return FieldErrorf(ECONFLICT, "segments", "segment %s: reroute change %d is still %s; approve and apply it, or reject it, before changing the segment's return path again",
					r.Segment, c.ID, c.Status)
			}
		}
	}
	return nil
}

// SupersededBy returns the pending remediate changes among open whose ops touch a device on
// the path of a reroute that has ops: they were planned from the intent of the old paths, so
// approving them could undo the reroute. Pending add and remove changes are not among them:
// they are planned again on the new paths when approved.
func SupersededBy(reroutes []Reroute, open []Change) []int64 {
	var touched []string
	for _, r := range reroutes {
		if len(r.Ops) > 0 {
			touched = append(touched, slices.Concat(r.Path...)...)
		}
	}
	var out []int64
	for _, c := range open {
		if c.Kind != ChangeRemediate || c.Status != ChangePending {
			continue
		}
		if slices.ContainsFunc(c.Ops, func(o ChangeOp) bool { return slices.Contains(touched, o.Device) }) {
			out = append(out, c.ID)
		}
	}
	return out
}

// InventorySync is what syncing an inventory into the database did.
type InventorySync struct {
	// Changed lists the segments whose return path changed, whether or not a host moved.
	Changed []string
	// Reroutes are the reroute changes filed: one per changed segment with hosts to move.
	Reroutes []Change
	// Superseded lists the pending remediate changes rejected as planned from the old paths.
	Superseded []int64
	// Warnings say what was left alone (hosts of a segment that is gone).
	Warnings []string
}

// ReloadResult is what a configuration reload did.
type ReloadResult struct {
	InventorySync
	// RestartRequired lists the configuration keys whose new values take effect only at the
	// next start (listen, database_url, approval, ...): a reload applies the inventory and the
	// devices' settings alone.
	RestartRequired []string
}
