package fabric

import (
	"cmp"
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"slices"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`)

// ValidateName checks an inventory object name (pool, segment, device): 1 to 63 lowercase
// letters, digits, '-' and '_', starting and ending with a letter or digit.
func ValidateName(field, name string) error {
	if !nameRE.MatchString(name) {
		return FieldErrorf(EINVALID, field, "invalid name %q: 1-63 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit", name)
	}
	return nil
}

// Pool is an address range that host subnets are carved from, all of one length.
type Pool struct {
	Name         string
	Prefix       netip.Prefix
	SubnetLength int
}

// Validate checks the pool on its own.
func (p Pool) Validate() error {
	if err := ValidateName("name", p.Name); err != nil {
		return err
	}
	if !p.Prefix.IsValid() {
		return FieldErrorf(EINVALID, "prefix", "missing or invalid prefix")
	}
	if p.Prefix != p.Prefix.Masked() {
		return FieldErrorf(EINVALID, "prefix", "%s has host bits set (did you mean %s?)", p.Prefix, p.Prefix.Masked())
	}
	if p.SubnetLength < p.Prefix.Bits() || p.SubnetLength > p.Prefix.Addr().BitLen() {
		return FieldErrorf(EINVALID, "subnet_length", "%d must lie between the pool's length %d and %d", p.SubnetLength, p.Prefix.Bits(), p.Prefix.Addr().BitLen())
	}
	if p.Prefix.Addr().Is4() && p.SubnetLength > 30 {
		return FieldErrorf(EINVALID, "subnet_length", "%d leaves no room for a bridge address and a container; use /30 or shorter", p.SubnetLength)
	}
	if p.Prefix.Addr().Is6() {
		if p.Prefix.Addr().Is4In6() || p.Prefix.Addr().Zone() != "" {
			return FieldErrorf(EINVALID, "prefix", "%s: want a plain IPv4 or IPv6 network", p.Prefix)
		}
		// Docker's fixed-cidr-v6 wants /64 or longer for SLAAC-free assignment to work well
		// with most tooling, and a subnet longer than /120 holds too few containers to be worth
		// a route each.
		if p.SubnetLength < minSubnet6 || p.SubnetLength > maxSubnet6 {
			return FieldErrorf(EINVALID, "subnet_length", "%d: IPv6 pools hand out /%d to /%d subnets", p.SubnetLength, minSubnet6, maxSubnet6)
		}
	}
	return nil
}

// The lengths an IPv6 pool may hand out.
const (
	minSubnet6 = 64
	maxSubnet6 = 120
)

// maxPoolSize caps Size for very large (IPv6) pools; nobody allocates 2^62 subnets.
const maxPoolSize = 1 << 62

// Size returns how many subnets the pool holds (capped at 2^62).
func (p Pool) Size() uint64 {
	n := p.SubnetLength - p.Prefix.Bits()
	if n >= 62 {
		return maxPoolSize
	}
	return 1 << n
}

// Subnet returns the pool's i-th subnet, counting from 0 at the pool's first address.
func (p Pool) Subnet(i uint64) (netip.Prefix, bool) {
	if i >= p.Size() {
		return netip.Prefix{}, false
	}
	shift := uint(p.Prefix.Addr().BitLen() - p.SubnetLength)
	base := new(big.Int).SetBytes(p.Prefix.Addr().AsSlice())
	off := new(big.Int).Lsh(new(big.Int).SetUint64(i), shift)
	b := base.Add(base, off).FillBytes(make([]byte, p.Prefix.Addr().BitLen()/8))
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, p.SubnetLength), true
}

// Contains reports whether s is one of the pool's subnets: inside it and of its length.
func (p Pool) Contains(s netip.Prefix) bool {
	return s.Bits() == p.SubnetLength && p.Prefix.Contains(s.Addr()) && s == s.Masked()
}

var privateSpace = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"), // RFC 6598 shared address space
	netip.MustParsePrefix("fc00::/7"),      // ULA
}

// Private reports whether the whole pool lies in private space (RFC 1918, RFC 6598 or ULA).
func (p Pool) Private() bool {
	for _, s := range privateSpace {
		if s.Bits() <= p.Prefix.Bits() && s.Contains(p.Prefix.Addr()) {
			return true
		}
	}
	return false
}

// NextHop is where a device sends a host's subnets: the host's own address of each family,
// or a fixed address per family.
type NextHop struct {
	Host bool // the host's uplink address of the subnet's family
	// Addr is the fixed next hop when !Host: IPv4, or IPv6 when the configuration gave one
	// address (the plain form) for a segment with IPv6 hosts only.
	Addr netip.Addr
	// Addr6 is the fixed IPv6 next hop of the per-family form ({ipv4: ..., ipv6: ...}).
	Addr6 netip.Addr
}

func (n NextHop) String() string {
	switch {
	case n.Host:
		return "host"
	case n.Addr6.IsValid() && n.Addr.IsValid():
		return fmt.Sprintf("{ipv4: %s, ipv6: %s}", n.Addr, n.Addr6)
	case n.Addr6.IsValid():
		return fmt.Sprintf("{ipv6: %s}", n.Addr6)
	}
	return n.Addr.String()
}

// Fixed returns the fixed next hop of the given family (IPv6 when v6), if there is one.
func (n NextHop) Fixed(v6 bool) (netip.Addr, bool) {
	for _, a := range []netip.Addr{n.Addr, n.Addr6} {
		if a.IsValid() && a.Is6() == v6 {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Resolve returns the next-hop address for a subnet of host address h's family: h itself
// for "host", else the fixed next hop of that family (invalid when there is none).
func (n NextHop) Resolve(h netip.Addr) netip.Addr {
	if n.Host {
		return h
	}
	a, _ := n.Fixed(h.Is6())
	return a
}

// checkNextHopAddr reports why a is no usable fixed next hop ("" when it is): a next hop must
// be a unicast address a device can reach on a connected network without naming an interface.
func checkNextHopAddr(a netip.Addr) string {
	switch {
	case a.Zone() != "":
		return fmt.Sprintf("%s: a next hop takes no zone", a)
	case a.Is4In6():
		return fmt.Sprintf("%s: write the IPv4 address as %s", a, a.Unmap())
	case a.IsLinkLocalUnicast():
		return fmt.Sprintf("%s is link-local: devices need an interface to reach it; use a global or ULA address", a)
	case a.IsMulticast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast():
		return fmt.Sprintf("%s is multicast, not a next hop", a)
	case a.IsUnspecified() || a.IsLoopback():
		return fmt.Sprintf("%s is not a next hop a device can route to", a)
	}
	return ""
}

// Hop is one stage of a segment's return path: one device (Device), or several applied in
// parallel (Devices: a redundant pair such as an MLAG leaf pair or a firewall cluster), each
// sending the host's subnet to NextHop. Exactly one of Device and Devices is set.
type Hop struct {
	Device  string
	Devices []string
	NextHop NextHop
}

// Members returns the devices of the hop: Devices, or Device alone.
func (h Hop) Members() []string {
	if len(h.Devices) > 0 {
		return h.Devices
	}
	return []string{h.Device}
}

// Stages returns the segment's return path as stages, inside-out: the devices of each hop.
func (s Segment) Stages() [][]string {
	out := make([][]string, 0, len(s.RouteVia))
	for _, h := range s.RouteVia {
		out = append(out, slices.Clone(h.Members()))
	}
	return out
}

// Sequential makes a path of one device per stage.
func Sequential(devices []string) [][]string {
	out := make([][]string, 0, len(devices))
	for _, d := range devices {
		out = append(out, []string{d})
	}
	return out
}

// Segment is a network where hosts live, with the pool their subnets come from and the
// devices, inside-out, that must route those subnets back.
type Segment struct {
	Name  string
	Hosts netip.Prefix // the IPv4 network of its hosts; invalid for an IPv6-only segment
	Pool  string       // the IPv4 pool of its hosts' docker0 subnets; "" with Hosts
	// Hosts6 and Pool6 are the IPv6 family of the same: the network of the hosts' IPv6
	// addresses and the pool of their fixed-cidr-v6 subnets; invalid and "" without IPv6.
	Hosts6   netip.Prefix
	Pool6    string
	RouteVia []Hop
	// Probes are the return-path probes its hosts run (the segment's probes, or the global
	// ones); the configuration resolves the inheritance.
	Probes ProbeSettings
}

// Device is a switch, router or firewall on some return path, as the domain sees it.
// Credentials are not part of it: they stay with the drivers.
type Device struct {
	Name      string
	Platform  Platform
	Transport Transport
	Address   netip.AddrPort
	VRF       string
}

// Validate checks the device on its own.
func (d Device) Validate() error {
	if err := ValidateName("name", d.Name); err != nil {
		return err
	}
	if err := ValidatePlatform(d.Platform); err != nil {
		return err
	}
	if err := d.Transport.Validate(); err != nil {
		return err
	}
	if want := Platforms[d.Platform]; want != d.Transport {
		return FieldErrorf(EINVALID, "transport", "platform %s runs over %s, not %s", d.Platform, want, d.Transport)
	}
	if !d.Address.Addr().IsValid() {
		return FieldErrorf(EINVALID, "address", "missing or invalid management address")
	}
	return ValidateVRF(d.VRF)
}

// Inventory is the fabric as configured: pools, segments and devices.
type Inventory struct {
	Pools    []Pool
	Segments []Segment
	Devices  []Device
}

// Validate checks the whole inventory and returns warnings for things that work but are
// probably mistakes. Errors name the offending key, e.g. "segments[1].route_via[0].device".
// Every error is reported (an Errors), not only the first: an entry that is wrong on its own
// is still known by its name, so that entries naming it are not reported for it again.
func (inv *Inventory) Validate() (warnings []string, err error) {
	var errs Errors
	add := func(e *Error) { errs = append(errs, e) }
	at := func(field string, e error) *Error {
		if fe, ok := e.(*Error); ok {
			f := field
			if fe.Field != "" {
				f += "." + fe.Field
			}
			return &Error{Code: EINVALID, Field: f, Message: fe.Message}
		}
		return FieldErrorf(EINVALID, field, "%v", e)
	}
	if len(inv.Pools) == 0 {
		add(FieldErrorf(EINVALID, "pools", "at least one pool is required"))
	}
	pools := map[string]Pool{}
	badPool := map[string]bool{} // named, but wrong on its own: checks against it are moot
	for i, p := range inv.Pools {
		key := fmt.Sprintf("pools[%d]", i)
		if _, dup := pools[p.Name]; dup {
			add(FieldErrorf(EINVALID, key+".name", "duplicate pool name %q", p.Name))
			continue
		}
		pools[p.Name] = p
		if err := p.Validate(); err != nil {
			add(at(key, err))
			badPool[p.Name] = true
			continue
		}
		for _, q := range inv.Pools[:i] {
			if !badPool[q.Name] && q.Prefix.Overlaps(p.Prefix) {
				add(FieldErrorf(EINVALID, key+".prefix", "%s overlaps pool %s (%s)", p.Prefix, q.Name, q.Prefix))
				break
			}
		}
		if !p.Private() {
			warnings = append(warnings, fmt.Sprintf("pools[%d] %s: %s is not private address space (RFC 1918, RFC 6598 or ULA); make sure you own it", i, p.Name, p.Prefix))
		}
	}
	devices := map[string]bool{}
	for i, d := range inv.Devices {
		key := fmt.Sprintf("devices[%d]", i)
		if devices[d.Name] {
			add(FieldErrorf(EINVALID, key+".name", "duplicate device name %q", d.Name))
			continue
		}
		devices[d.Name] = true
		if err := d.Validate(); err != nil {
			add(at(key, err))
		}
	}
	if len(inv.Segments) == 0 {
		add(FieldErrorf(EINVALID, "segments", "at least one segment is required"))
	}
	segs := map[string]bool{}
	for i, s := range inv.Segments {
		key := fmt.Sprintf("segments[%d]", i)
		if err := ValidateName(key+".name", s.Name); err != nil {
			add(err.(*Error))
		} else if segs[s.Name] {
			add(FieldErrorf(EINVALID, key+".name", "duplicate segment name %q", s.Name))
		}
		segs[s.Name] = true
		for _, e := range inv.validateSegment(key, i, s, pools, badPool, devices) {
			add(e)
		}
	}
	return warnings, errs.Err()
}

// validateSegment checks segment s (at index i, under key) against the pools and devices.
// A segment has an IPv4 family (hosts and pool), an IPv6 family (hosts6 and pool6), or both.
// Each family it names must be complete, and each hop needs a next hop for each family (in an
// IPv6-only segment, "host" or an IPv6 address).
func (inv *Inventory) validateSegment(key string, i int, s Segment, pools map[string]Pool, badPool, devices map[string]bool) []*Error {
	var errs []*Error
	has4 := s.Hosts.IsValid() || s.Pool != ""
	has6 := s.Hosts6.IsValid() || s.Pool6 != ""
	if !has4 && !has6 {
		errs = append(errs, FieldErrorf(EINVALID, key+".hosts", "want hosts and pool (IPv4), hosts6 and pool6 (IPv6), or both"))
	}
	// ok4 and ok6: the family is complete and valid, so its next hops can be checked.
	ok4, ok6 := !has4, !has6
	if has4 {
		var e4 []*Error
		ok4, e4 = inv.validateFamily(key, "hosts", "pool", false, i, s.Hosts, s.Pool, pools, badPool)
		errs = append(errs, e4...)
	}
	if has6 {
		var e6 []*Error
		ok6, e6 = inv.validateFamily(key, "hosts6", "pool6", true, i, s.Hosts6, s.Pool6, pools, badPool)
		errs = append(errs, e6...)
	}
	if len(s.RouteVia) == 0 {
		errs = append(errs, FieldErrorf(EINVALID, key+".route_via", "at least one device is required"))
	}
	seen := map[string]bool{}
	for j, h := range s.RouteVia {
		hk := fmt.Sprintf("%s.route_via[%d]", key, j)
		keys := []string{hk + ".device"}
		switch {
		case h.Device != "" && len(h.Devices) > 0:
			errs = append(errs, FieldErrorf(EINVALID, hk+".devices", "name one device (device) or several (devices), not both"))
			continue
		case len(h.Devices) > 0:
			keys = keys[:0]
			for k := range h.Devices {
				keys = append(keys, fmt.Sprintf("%s.devices[%d]", hk, k))
			}
		}
		for k, dev := range h.Members() {
			if !devices[dev] {
				errs = append(errs, FieldErrorf(EINVALID, keys[k], "no device named %q", dev))
			} else if seen[dev] {
				errs = append(errs, FieldErrorf(EINVALID, keys[k], "device %q appears twice on the path", dev))
			}
			seen[dev] = true
		}
		if e := validateNextHop(hk+".next_hop", h.NextHop, has4 && ok4, has6 && ok6, has4, has6); e != nil {
			errs = append(errs, e)
		}
	}
	return errs
}

// validateFamily checks one address family of segment s (at index i): its hosts network under
// hostsKey and its pool under poolKey, of the family v6 says. ok reports that both are valid.
func (inv *Inventory) validateFamily(key, hostsKey, poolKey string, v6 bool, i int, hosts netip.Prefix, pool string, pools map[string]Pool, badPool map[string]bool) (ok bool, errs []*Error) {
	fam, example := "IPv4", "10.10.10.0/24"
	if v6 {
		fam, example = "IPv6", "2001:db8:10::/64"
	}
	hostsOK := hosts.IsValid() && hosts == hosts.Masked() && hosts.Addr().Is6() == v6 && !hosts.Addr().Is4In6()
	switch {
	case !hosts.IsValid():
		errs = append(errs, FieldErrorf(EINVALID, key+"."+hostsKey, "%s names %s pool %q but no %s network of hosts such as %s", poolKey, fam, pool, fam, example))
	case !hostsOK:
		errs = append(errs, FieldErrorf(EINVALID, key+"."+hostsKey, "want an %s network such as %s, got %q", fam, example, hosts))
	default:
		for _, o := range inv.Segments[:i] {
			oh := o.Hosts
			if v6 {
				oh = o.Hosts6
			}
			if oh.IsValid() && oh.Overlaps(hosts) {
				errs = append(errs, FieldErrorf(EINVALID, key+"."+hostsKey, "%s overlaps segment %s (%s)", hosts, o.Name, oh))
				break
			}
		}
	}
	p, found := pools[pool]
	switch {
	case pool == "":
		errs = append(errs, FieldErrorf(EINVALID, key+"."+poolKey, "%s %s needs a pool of %s subnets", hostsKey, hosts, fam))
		return false, errs
	case !found:
		errs = append(errs, FieldErrorf(EINVALID, key+"."+poolKey, "no pool named %q", pool))
		return false, errs
	case badPool[pool]:
		return false, errs
	case p.Prefix.Addr().Is6() != v6:
		other := "pool6"
		if v6 {
			other = "pool"
		}
		errs = append(errs, FieldErrorf(EINVALID, key+"."+poolKey, "pool %s (%s) is not %s: name it under %s", pool, p.Prefix, fam, other))
		return false, errs
	}
	if hostsOK && p.Prefix.Overlaps(hosts) {
		errs = append(errs, FieldErrorf(EINVALID, key+"."+hostsKey, "%s overlaps its pool %s (%s)", hosts, p.Name, p.Prefix))
	}
	return hostsOK, errs
}

// validateNextHop checks a hop's next hop for a segment with an IPv4 family (has4; check4 when
// it is valid enough to compare with) and an IPv6 family (has6, check6).
func validateNextHop(key string, n NextHop, check4, check6, has4, has6 bool) *Error {
	if n.Host {
		return nil
	}
	if !n.Addr.IsValid() && !n.Addr6.IsValid() {
		return FieldErrorf(EINVALID, key, "want \"host\", an IP address or {ipv4: ADDR, ipv6: ADDR}")
	}
	for _, a := range []netip.Addr{n.Addr, n.Addr6} {
		if !a.IsValid() {
			continue
		}
		if why := checkNextHopAddr(a); why != "" {
			return FieldErrorf(EINVALID, key, "%s", why)
		}
	}
	if n.Addr6.IsValid() && (!n.Addr6.Is6() || n.Addr.Is6()) {
		return FieldErrorf(EINVALID, key, "ipv4 holds IPv4 addresses and ipv6 IPv6 ones, got %s", n)
	}
	_, have4 := n.Fixed(false)
	_, have6 := n.Fixed(true)
	switch {
	case have6 && !has6 && has4:
		return FieldErrorf(EINVALID, key, "%s is an IPv6 next hop but the segment has no IPv6 hosts (hosts6, pool6)", n)
	case have4 && !has4 && has6:
		return FieldErrorf(EINVALID, key, "%s is an IPv4 next hop but the segment has no IPv4 hosts (hosts, pool)", n)
	case check4 && !have4:
		return FieldErrorf(EINVALID, key, "%s: the segment's IPv4 hosts need an IPv4 next hop: write {ipv4: ADDR, ipv6: ADDR} or \"host\"", n)
	case check6 && !have6:
		return FieldErrorf(EINVALID, key, "%s: the segment's IPv6 hosts need an IPv6 next hop: write {ipv4: ADDR, ipv6: ADDR} or \"host\"", n)
	}
	return nil
}

// Pool returns the pool with the given name.
func (inv *Inventory) Pool(name string) (Pool, bool) {
	i := slices.IndexFunc(inv.Pools, func(p Pool) bool { return p.Name == name })
	if i < 0 {
		return Pool{}, false
	}
	return inv.Pools[i], true
}

// Device returns the device with the given name.
func (inv *Inventory) Device(name string) (Device, bool) {
	i := slices.IndexFunc(inv.Devices, func(d Device) bool { return d.Name == name })
	if i < 0 {
		return Device{}, false
	}
	return inv.Devices[i], true
}

// Segment returns the segment with the given name.
func (inv *Inventory) Segment(name string) (Segment, bool) {
	i := slices.IndexFunc(inv.Segments, func(s Segment) bool { return s.Name == name })
	if i < 0 {
		return Segment{}, false
	}
	return inv.Segments[i], true
}

// SegmentFor returns the segment whose host network of addr's family (hosts or hosts6) holds
// addr (the longest match).
func (inv *Inventory) SegmentFor(addr netip.Addr) (Segment, bool) {
	hostsOf := func(s Segment) netip.Prefix {
		if addr.Is6() {
			return s.Hosts6
		}
		return s.Hosts
	}
	best := -1
	for i, s := range inv.Segments {
		if hostsOf(s).Contains(addr) && (best < 0 || hostsOf(s).Bits() > hostsOf(inv.Segments[best]).Bits()) {
			best = i
		}
	}
	if best < 0 {
		return Segment{}, false
	}
	return inv.Segments[best], true
}

// ManagedPrefixes returns every pool prefix, sorted: the only prefixes drivers may touch.
func (inv *Inventory) ManagedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(inv.Pools))
	for _, p := range inv.Pools {
		out = append(out, p.Prefix)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return cmp.Or(a.Addr().Compare(b.Addr()), a.Bits()-b.Bits()) })
	return out
}
