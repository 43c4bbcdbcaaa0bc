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
	return nil
}

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

// NextHop is where a device sends a host's subnet: the host's own address, or a fixed address.
type NextHop struct {
	Host bool       // the host's uplink address
	Addr netip.Addr // valid when !Host
}

func (n NextHop) String() string {
	if n.Host {
		return "host"
	}
	return n.Addr.String()
}

// Resolve returns the next-hop address for host address h.
func (n NextHop) Resolve(h netip.Addr) netip.Addr {
	if n.Host {
		return h
	}
	return n.Addr
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
	Name     string
	Hosts    netip.Prefix
	Pool     string
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
func (inv *Inventory) validateSegment(key string, i int, s Segment, pools map[string]Pool, badPool, devices map[string]bool) []*Error {
	var errs []*Error
	hostsOK := s.Hosts.IsValid() && s.Hosts == s.Hosts.Masked()
	if !hostsOK {
		errs = append(errs, FieldErrorf(EINVALID, key+".hosts", "want a network such as 10.10.10.0/24, got %q", s.Hosts))
	} else {
		for _, o := range inv.Segments[:i] {
			if o.Hosts.IsValid() && o.Hosts.Overlaps(s.Hosts) {
				errs = append(errs, FieldErrorf(EINVALID, key+".hosts", "%s overlaps segment %s (%s)", s.Hosts, o.Name, o.Hosts))
				break
			}
		}
	}
	p, ok := pools[s.Pool]
	if !ok {
		errs = append(errs, FieldErrorf(EINVALID, key+".pool", "no pool named %q", s.Pool))
	}
	poolOK := ok && !badPool[s.Pool]
	if poolOK && hostsOK && p.Prefix.Overlaps(s.Hosts) {
		errs = append(errs, FieldErrorf(EINVALID, key+".hosts", "%s overlaps its pool %s (%s)", s.Hosts, p.Name, p.Prefix))
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
		switch {
		case !h.NextHop.Host && !h.NextHop.Addr.IsValid():
			errs = append(errs, FieldErrorf(EINVALID, hk+".next_hop", "want \"host\" or an IP address"))
		case !poolOK:
			// The family checks compare with the pool's: moot without a valid pool.
		case !h.NextHop.Host && h.NextHop.Addr.Is4() != p.Prefix.Addr().Is4():
			errs = append(errs, FieldErrorf(EINVALID, hk+".next_hop", "%s is not of the pool's address family", h.NextHop.Addr))
		case h.NextHop.Host && hostsOK && s.Hosts.Addr().Is4() != p.Prefix.Addr().Is4():
			errs = append(errs, FieldErrorf(EINVALID, hk+".next_hop", "\"host\" needs host addresses of the pool's address family"))
		}
	}
	return errs
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

// SegmentFor returns the segment whose host network holds addr (the longest match).
func (inv *Inventory) SegmentFor(addr netip.Addr) (Segment, bool) {
	best := -1
	for i, s := range inv.Segments {
		if s.Hosts.Contains(addr) && (best < 0 || s.Hosts.Bits() > inv.Segments[best].Hosts.Bits()) {
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
