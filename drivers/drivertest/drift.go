package drivertest

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/returnpath/returnpath/drivers/route"
)

// drift is how a device's routes differ from the routes the suite wants there. It judges as
// returnpath's verify does when every wanted route belongs to an active host (the engine's
// fabric.CompareRoutes; drift_test.go holds the two together), so that a driver passing the
// repair cases reads routes the way the engine needs to find and repair drift. The suite
// keeps its own copy because the engine's lives in an internal package a driver written
// outside this module cannot import.
type drift struct {
	// Missing lists wanted routes whose prefix the device does not hold at all.
	Missing []route.Route
	// Unexpected lists managed routes that nothing wanted explains.
	Unexpected []route.Route
	// WrongNextHop lists wanted prefixes the device holds only via other next hops, one
	// entry per route the device has for the prefix.
	WrongNextHop []wrongHop
}

// wrongHop is a wanted route the device holds via another next hop.
type wrongHop struct {
	Want route.Route
	Got  route.Route
}

func (d drift) inSync() bool {
	return len(d.Missing) == 0 && len(d.Unexpected) == 0 && len(d.WrongNextHop) == 0
}

// compareRoutes compares have with want; routes outside managed are ignored. A wanted route is
// fine when the device holds it exactly; when the device holds the prefix (same VRF) only via
// other next hops, each of those is a wrong next hop; otherwise it is missing. Every other
// managed route is unexpected. The result is sorted by VRF, prefix and next hop.
func compareRoutes(want, have []route.Route, managed []netip.Prefix) drift {
	haveSet := make(map[route.Route]bool, len(have))
	byKey := make(map[route.RouteKey][]route.Route, len(have))
	for _, r := range have {
		if !route.Managed(r.Prefix, managed) || haveSet[r] {
			continue
		}
		haveSet[r] = true
		byKey[r.Key()] = append(byKey[r.Key()], r)
	}
	wantSet := make(map[route.Route]bool, len(want))
	for _, w := range want {
		wantSet[w] = true
	}
	explained := make(map[route.Route]bool, len(want))
	var d drift
	for _, w := range want {
		if haveSet[w] {
			explained[w] = true
			continue
		}
		others := byKey[w.Key()]
		for _, got := range others {
			if wantSet[got] || explained[got] {
				continue // another wanted route on the same prefix, judged on its own
			}
			explained[got] = true
			d.WrongNextHop = append(d.WrongNextHop, wrongHop{Want: w, Got: got})
		}
		if len(others) == 0 {
			d.Missing = append(d.Missing, w)
		}
	}
	for r := range haveSet {
		if !explained[r] {
			d.Unexpected = append(d.Unexpected, r)
		}
	}
	slices.SortFunc(d.Missing, compareRoute)
	slices.SortFunc(d.Unexpected, compareRoute)
	slices.SortFunc(d.WrongNextHop, func(a, b wrongHop) int {
		return cmp.Or(compareRoute(a.Want, b.Want), compareRoute(a.Got, b.Got))
	})
	return d
}

// remediation returns the ops that restore the wanted routes, in the order the engine sends
// a remediation: delete wrong next hops and unexpected routes, then add what is wanted.
func (d drift) remediation() []route.RouteOp {
	var ops []route.RouteOp
	for _, w := range d.WrongNextHop {
		ops = append(ops, route.RouteOp{Action: route.ActionDelete, Route: w.Got})
	}
	for _, r := range d.Unexpected {
		ops = append(ops, route.RouteOp{Action: route.ActionDelete, Route: r})
	}
	added := map[route.Route]bool{}
	for _, w := range d.WrongNextHop {
		if !added[w.Want] {
			ops = append(ops, route.RouteOp{Action: route.ActionAdd, Route: w.Want})
			added[w.Want] = true
		}
	}
	for _, m := range d.Missing {
		if !added[m] {
			ops = append(ops, route.RouteOp{Action: route.ActionAdd, Route: m})
			added[m] = true
		}
	}
	return ops
}

// compareRoute orders routes by VRF, prefix address, prefix length and next hop.
func compareRoute(a, b route.Route) int {
	return cmp.Or(
		cmp.Compare(a.VRF, b.VRF),
		a.Prefix.Addr().Compare(b.Prefix.Addr()),
		cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()),
		a.NextHop.Compare(b.NextHop),
	)
}
