package fabric

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// DeviceOp is a route op on a named device.
type DeviceOp struct {
	Device string
	Op     RouteOp
}

// DeviceRoute is a route on a named device.
type DeviceRoute struct {
	Device string
	Route  Route
}

// ReturnPath returns the routes a host's subnets need: for each device on its segment's
// route_via, inside-out (nearest the host first; the devices of one hop in their listed
// order), the route of its IPv4 subnet and then, for a dual-stack host, that of its IPv6
// subnet, each via the hop's next hop of its family.
func (inv *Inventory) ReturnPath(h Host) ([]DeviceRoute, error) {
	seg, ok := inv.Segment(h.Segment)
	if !ok {
		return nil, Errorf(ENOTFOUND, "host %s is in segment %s, which is no longer configured", h.Name, h.Segment)
	}
	out := make([]DeviceRoute, 0, 2*len(seg.RouteVia))
	for _, hop := range seg.RouteVia {
		for _, name := range hop.Members() {
			d, ok := inv.Device(name)
			if !ok {
				return nil, Errorf(ENOTFOUND, "segment %s routes via device %s, which is not configured", seg.Name, name)
			}
			for _, f := range []struct {
				subnet netip.Prefix
				addr   netip.Addr
			}{{h.Subnet, h.Address}, {h.Subnet6, h.Address6}} {
				if !f.subnet.IsValid() {
					continue
				}
				nh := hop.NextHop.Resolve(f.addr)
				if !nh.IsValid() {
					return nil, Errorf(ENOTFOUND, "segment %s has no next hop of %s's family for device %s (host %s)", seg.Name, f.subnet, d.Name, h.Name)
				}
				out = append(out, DeviceRoute{Device: d.Name, Route: Route{VRF: d.VRF, Prefix: f.subnet, NextHop: nh}})
			}
		}
	}
	return out, nil
}

// Plan returns the ops that turn one device's routes from have into want: each route in want
// that have lacks is added; each route in have that want lacks is deleted, including a route
// for a wanted prefix via another next hop. Deletes come first, so a prefix whose next hop
// changes is never present twice.
func Plan(want, have []Route) []RouteOp {
	wantSet := make(map[Route]bool, len(want))
	for _, r := range want {
		wantSet[r] = true
	}
	haveSet := make(map[Route]bool, len(have))
	for _, r := range have {
		haveSet[r] = true
	}
	var ops []RouteOp
	for _, r := range have {
		if !wantSet[r] {
			ops = append(ops, RouteOp{Action: ActionDelete, Route: r})
		}
	}
	for _, r := range want {
		if !haveSet[r] {
			ops = append(ops, RouteOp{Action: ActionAdd, Route: r})
			haveSet[r] = true // a duplicate in want is added once
		}
	}
	return ops
}

// Order sorts a change's ops into the order they are applied so that no intermediate state
// sends traffic into a loop or a black hole: deletes outside-in (the stage farthest from the
// hosts first), then adds inside-out (the stage nearest the hosts first). path lists the
// stages inside-out, each the devices applied in parallel; devices not on it go last for adds
// and first for deletes. Within a stage the original order is kept.
func Order(path [][]string, ops []DeviceOp) []DeviceOp {
	out := slices.Clone(ops)
	slices.SortStableFunc(out, func(a, b DeviceOp) int {
		ad, bd := a.Op.Action == ActionDelete, b.Op.Action == ActionDelete
		switch {
		case ad && !bd:
			return -1
		case !ad && bd:
			return 1
		case ad:
			return cmp.Compare(stageOf(path, b.Device), stageOf(path, a.Device))
		default:
			return cmp.Compare(stageOf(path, a.Device), stageOf(path, b.Device))
		}
	})
	return out
}

// stageOf returns the index of the stage of path that holds dev, or len(path).
func stageOf(path [][]string, dev string) int {
	for i, st := range path {
		if slices.Contains(st, dev) {
			return i
		}
	}
	return len(path)
}

// LoginBackoff is how long to wait before the next login to a device after failures
// consecutive sessions could not reach it: 250 ms doubling, at most 30 s. It is one schedule
// per device, shared by every change and process, so that a device that is down sees a
// handful of login attempts a minute, never one per change (device accounts get locked out).
func LoginBackoff(failures int) time.Duration {
	if failures < 1 {
		return 0
	}
	return min(250*time.Millisecond<<min(failures-1, 7), 30*time.Second)
}
