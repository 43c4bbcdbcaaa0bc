package fabric

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// AdoptInput is what Adopt matches: a segment, its pool, what each device of the segment's
// return path holds (as its driver reads it), and the hosts the registry already knows.
type AdoptInput struct {
	Segment Segment
	Pool    Pool
	Devices []Device           // the devices of Segment's return path (for their VRFs)
	Routes  map[string][]Route // device name -> its routes; a device absent here could not be read
	Known   []Host             // live hosts of the registry
}

// Adoption is one subnet found on the devices and the host it belongs to.
type Adoption struct {
	Subnet  netip.Prefix
	Address netip.Addr // the host's address: the next hop of the host-facing devices
	Present []string   // devices of the path that hold the subnet with the right next hop
	Missing []string   // devices of the path that lack it: registering adds only these routes
	// Host names the registered host that already owns Subnet at Address ("" when none):
	// there is nothing to adopt.
	Host string
}

// Complete reports whether every device of the path already holds the route.
func (a Adoption) Complete() bool { return len(a.Missing) == 0 }

// Orphan is a route inside the pool that belongs to no host of the segment: it is listed,
// never registered.
type Orphan struct {
	Device  string
	Prefix  netip.Prefix
	NextHop netip.Addr
	Reason  string
}

// AdoptReport is the result of matching: per subnet the host it belongs to, and the orphans.
// Both are sorted by prefix (then device).
type AdoptReport struct {
	Adoptions []Adoption
	Orphans   []Orphan
}

// Adopt lists, for every route inside the segment's pool on the segment's return path, the
// host it belongs to. On host-facing devices (next_hop: host) the route's next hop is the host's
// address, which must lie inside the segment's hosts range; on fixed-next-hop devices the route
// matches by prefix when its next hop is the configured one. A subnet is adopted when the
// host-facing devices that hold it agree on one host address that holds no other subnet; every
// other route inside the pool is an orphan with the reason. Devices absent from in.Routes
// (unreadable) are counted neither as holding nor as missing a route: the caller decides
// whether to go on without them. Adopt does no I/O.
func Adopt(in AdoptInput) AdoptReport {
	vrf := map[string]string{}
	for _, d := range in.Devices {
		vrf[d.Name] = cmp.Or(d.VRF, DefaultVRF)
	}
	type seen struct {
		device string
		route  Route
		host   bool // held by a host-facing device
	}
	bySubnet := map[netip.Prefix][]seen{}
	var rep AdoptReport
	orphan := func(dev string, r Route, format string, args ...any) {
		rep.Orphans = append(rep.Orphans, Orphan{Device: dev, Prefix: r.Prefix, NextHop: r.NextHop, Reason: fmt.Sprintf(format, args...)})
	}
	var path []string // every device of the path, inside-out
	for _, hop := range in.Segment.RouteVia {
		for _, dev := range hop.Members() {
			path = append(path, dev)
			routes, ok := in.Routes[dev]
			if !ok {
				continue
			}
			for _, r := range routes {
				if cmp.Or(r.VRF, DefaultVRF) != cmp.Or(vrf[dev], DefaultVRF) || !inside(in.Pool.Prefix, r.Prefix) {
					continue
				}
				switch {
				case !in.Pool.Contains(r.Prefix):
					orphan(dev, r, "not a /%d subnet of pool %s (%s)", in.Pool.SubnetLength, in.Pool.Name, in.Pool.Prefix)
				case hop.NextHop.Host && !hostAddress(in.Segment.Hosts, r.NextHop):
					orphan(dev, r, "next hop %s is not a host address of segment %s (%s)", r.NextHop, in.Segment.Name, in.Segment.Hosts)
				case !hop.NextHop.Host && r.NextHop != hop.NextHop.Addr:
					orphan(dev, r, "next hop %s, but segment %s routes via %s on this device", r.NextHop, in.Segment.Name, hop.NextHop.Addr)
				default:
					bySubnet[r.Prefix] = append(bySubnet[r.Prefix], seen{device: dev, route: r, host: hop.NextHop.Host})
				}
			}
		}
	}
	known := map[netip.Prefix]Host{}
	knownAt := map[netip.Addr]Host{}
	for _, h := range in.Known {
		if h.State != HostRemoved {
			known[h.Subnet], knownAt[h.Address] = h, h
		}
	}
	// One host address per subnet, from the host-facing devices.
	addrOf := map[netip.Prefix]netip.Addr{}
	subnetsOf := map[netip.Addr][]netip.Prefix{}
	for subnet, ss := range bySubnet {
		var addrs []netip.Addr
		for _, s := range ss {
			if s.host && !slices.Contains(addrs, s.route.NextHop) {
				addrs = append(addrs, s.route.NextHop)
			}
		}
		var why string
		switch {
		case len(addrs) == 0:
			why = "no host-facing device routes it to a host, so its host is unknown"
		case len(addrs) > 1:
			slices.SortFunc(addrs, netip.Addr.Compare)
			why = "conflicting next hops on the host-facing devices: " + joinAddrs(addrs)
		}
		if why == "" {
			if h, ok := known[subnet]; ok && h.Address != addrs[0] {
				why = fmt.Sprintf("registered to host %s at %s", h.Name, h.Address)
			} else if h, ok := knownAt[addrs[0]]; ok && h.Subnet != subnet {
				why = fmt.Sprintf("host %s at %s is registered with subnet %s", h.Name, h.Address, h.Subnet)
			}
		}
		if why != "" {
			for _, s := range ss {
				orphan(s.device, s.route, "%s", why)
			}
			continue
		}
		addrOf[subnet] = addrs[0]
		subnetsOf[addrs[0]] = append(subnetsOf[addrs[0]], subnet)
	}
	for subnet, addr := range addrOf {
		if subs := subnetsOf[addr]; len(subs) > 1 {
			slices.SortFunc(subs, comparePrefix)
			for _, s := range bySubnet[subnet] {
				orphan(s.device, s.route, "host %s is the next hop of several subnets (%s): a host has one", addr, joinPrefixes(subs))
			}
			continue
		}
		a := Adoption{Subnet: subnet, Address: addr}
		if h, ok := known[subnet]; ok {
			a.Host = h.Name
		}
		for _, dev := range path {
			if _, read := in.Routes[dev]; !read {
				continue
			}
			if slices.ContainsFunc(bySubnet[subnet], func(s seen) bool { return s.device == dev }) {
				a.Present = append(a.Present, dev)
			} else {
				a.Missing = append(a.Missing, dev)
			}
		}
		rep.Adoptions = append(rep.Adoptions, a)
	}
	slices.SortFunc(rep.Adoptions, func(a, b Adoption) int { return comparePrefix(a.Subnet, b.Subnet) })
	slices.SortFunc(rep.Orphans, func(a, b Orphan) int {
		return cmp.Or(comparePrefix(a.Prefix, b.Prefix), strings.Compare(a.Device, b.Device), a.NextHop.Compare(b.NextHop))
	})
	return rep
}

// inside reports whether p lies inside outer (a default route does not lie inside a pool).
func inside(outer, p netip.Prefix) bool {
	return p.Bits() >= outer.Bits() && outer.Contains(p.Addr())
}

// hostAddress reports whether a can be a host's address in the segment's hosts range: inside
// it and, for ranges larger than a /31, neither its network nor its broadcast address.
func hostAddress(hosts netip.Prefix, a netip.Addr) bool {
	if !hosts.Contains(a) {
		return false
	}
	if hosts.Bits() >= hosts.Addr().BitLen()-1 {
		return true
	}
	return a != hosts.Masked().Addr() && a != lastAddr(hosts)
}

// AdoptedHostName is the name --from-devices gives the host at a: host-10-10-10-101.
func AdoptedHostName(a netip.Addr) string {
	return "host-" + strings.NewReplacer(".", "-", ":", "-").Replace(a.String())
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
