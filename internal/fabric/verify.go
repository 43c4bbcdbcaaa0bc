package fabric

import (
	"cmp"
	"net/netip"
	"slices"
)

// IntentRoute is a route a device should hold for a host: the host's name and state tell
// settled intent (active) from routes in flight (pending: being added; removing: being taken
// away).
type IntentRoute struct {
	Route   Route
	Host    string
	Segment string // the host's segment
	State   HostState
}

// InFlight reports whether the route belongs to a host whose routes are being added or
// removed, so that its presence or absence is not drift.
func (r IntentRoute) InFlight() bool { return r.State == HostPending || r.State == HostRemoving }

// WrongNextHop is a wanted prefix that the device routes via another next hop.
type WrongNextHop struct {
	Want IntentRoute
	Got  Route
}

// InFlightRoute is a route of a pending or removing host and whether the device holds it.
type InFlightRoute struct {
	IntentRoute
	Present bool
}

// Drift is how one device's routes differ from intent.
type Drift struct {
	// Missing lists routes of active hosts the device does not hold at all.
	Missing []IntentRoute
	// Unexpected lists routes inside the managed prefixes that no host explains, e.g. a
	// decommissioned host's leftover or a route typed by hand.
	Unexpected []Route
	// WrongNextHop lists wanted prefixes the device holds only via another next hop, one
	// entry per route the device has for the prefix.
	WrongNextHop []WrongNextHop
	// InFlight lists routes of pending and removing hosts; they are never drift.
	InFlight []InFlightRoute
}

// InSync reports whether the device holds exactly its intent.
func (d Drift) InSync() bool {
	return len(d.Missing) == 0 && len(d.Unexpected) == 0 && len(d.WrongNextHop) == 0
}

// Routes returns how many routes drift.
func (d Drift) Routes() int { return len(d.Missing) + len(d.Unexpected) + len(d.WrongNextHop) }

// Intent returns, per device, the routes the given hosts need: one per device on each host's
// return path, tagged with the host's name and state. Removed hosts need nothing. A host
// whose segment or device is no longer configured is skipped (its routes, if any, then show
// as unexpected) and returned in skipped.
func (inv *Inventory) Intent(hosts []Host) (intent map[string][]IntentRoute, skipped []Host) {
	intent = map[string][]IntentRoute{}
	for _, h := range hosts {
		if h.State == HostRemoved {
			continue
		}
		path, err := inv.ReturnPath(h)
		if err != nil {
			skipped = append(skipped, h)
			continue
		}
		for _, dr := range path {
			intent[dr.Device] = append(intent[dr.Device], IntentRoute{Route: dr.Route, Host: h.Name, Segment: h.Segment, State: h.State})
		}
	}
	return intent, skipped
}

// CompareRoutes compares what one device has with its intent. Routes in have outside the
// managed prefixes are ignored: returnpath never judges what it does not own.
//
// A route of an active host is fine when the device holds it exactly; when the device holds
// the prefix (same VRF) only via other next hops, each of those is a WrongNextHop; otherwise
// the route is Missing. Routes of pending and removing hosts go to InFlight with whether they
// are present; a pending or removing host's prefix held via another next hop is a
// WrongNextHop too, since traffic goes astray whatever the host's state. Every other route in
// have is Unexpected. The result is sorted by VRF, prefix and next hop.
func CompareRoutes(intent []IntentRoute, have []Route, managed []netip.Prefix) Drift {
	haveSet := make(map[Route]bool, len(have))
	byKey := make(map[RouteKey][]Route, len(have))
	for _, r := range have {
		if !Managed(r.Prefix, managed) || haveSet[r] {
			continue
		}
		haveSet[r] = true
		byKey[r.Key()] = append(byKey[r.Key()], r)
	}
	explained := make(map[Route]bool, len(intent))
	wantSet := make(map[Route]bool, len(intent))
	for _, w := range intent {
		wantSet[w.Route] = true
	}
	var d Drift
	for _, w := range intent {
		present := haveSet[w.Route]
		if present {
			explained[w.Route] = true
		}
		if w.InFlight() {
			d.InFlight = append(d.InFlight, InFlightRoute{IntentRoute: w, Present: present})
		}
		if present {
			continue
		}
		others := byKey[w.Route.Key()]
		for _, got := range others {
			if wantSet[got] || explained[got] {
				continue // another host's route for the same prefix, reported there
			}
			explained[got] = true
			d.WrongNextHop = append(d.WrongNextHop, WrongNextHop{Want: w, Got: got})
		}
		if len(others) == 0 && !w.InFlight() {
			d.Missing = append(d.Missing, w)
		}
	}
	for r := range haveSet {
		if !explained[r] {
			d.Unexpected = append(d.Unexpected, r)
		}
	}
	slices.SortFunc(d.Missing, func(a, b IntentRoute) int { return CompareRoute(a.Route, b.Route) })
	slices.SortFunc(d.Unexpected, CompareRoute)
	slices.SortFunc(d.WrongNextHop, func(a, b WrongNextHop) int {
		return cmp.Or(CompareRoute(a.Want.Route, b.Want.Route), CompareRoute(a.Got, b.Got))
	})
	slices.SortFunc(d.InFlight, func(a, b InFlightRoute) int { return CompareRoute(a.Route, b.Route) })
	return d
}

// CompareRoute orders routes by VRF, prefix address, prefix length and next hop.
func CompareRoute(a, b Route) int {
	return cmp.Or(
		cmp.Compare(a.VRF, b.VRF),
		a.Prefix.Addr().Compare(b.Prefix.Addr()),
		cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()),
		a.NextHop.Compare(b.NextHop),
	)
}
