package fabric

import "slices"

// RemediationOps returns the ops that restore one device's intent from its drift: add what
// is missing, replace a wrong next hop (delete it, add the wanted one), delete what no host
// explains. Routes of hosts in flight are left to their own changes.
func RemediationOps(device string, d Drift) []DeviceOp {
	var ops []DeviceOp
	for _, w := range d.WrongNextHop {
		ops = append(ops, DeviceOp{Device: device, Op: RouteOp{Action: ActionDelete, Route: w.Got}})
	}
	for _, r := range d.Unexpected {
		ops = append(ops, DeviceOp{Device: device, Op: RouteOp{Action: ActionDelete, Route: r}})
	}
	added := map[Route]bool{}
	for _, w := range d.WrongNextHop {
		if !added[w.Want.Route] {
			ops = append(ops, DeviceOp{Device: device, Op: RouteOp{Action: ActionAdd, Route: w.Want.Route}})
			added[w.Want.Route] = true
		}
	}
	for _, m := range d.Missing {
		if !added[m.Route] {
			ops = append(ops, DeviceOp{Device: device, Op: RouteOp{Action: ActionAdd, Route: m.Route}})
			added[m.Route] = true
		}
	}
	return ops
}

// DeviceOrder lists every device on some return path, inside-out: a device comes after every
// device that precedes it on any segment's route_via (first appearance wins on cycles).
func (inv *Inventory) DeviceOrder() []string {
	var out []string
	for _, s := range inv.Segments {
		for _, h := range s.RouteVia {
			for _, d := range h.Members() {
				if !slices.Contains(out, d) {
					out = append(out, d)
				}
			}
		}
	}
	return out
}
