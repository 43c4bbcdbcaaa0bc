package fabric

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// HostState is where a host is in its life.
type HostState string

// Host states. A host is pending until its return routes are applied, removing while they
// are being taken away, and removed (its subnet free again) after.
const (
	HostPending  HostState = "pending"
	HostActive   HostState = "active"
	HostRemoving HostState = "removing"
	HostRemoved  HostState = "removed"
)

// Validate reports whether s is a known state.
func (s HostState) Validate() error {
	switch s {
	case HostPending, HostActive, HostRemoving, HostRemoved:
		return nil
	}
	return FieldErrorf(EINVALID, "state", "unknown host state %q (want pending, active, removing or removed)", string(s))
}

// Host is a Docker host and the docker0 subnet allocated to it.
type Host struct {
	ID      int64
	Name    string
	Address netip.Addr
	Segment string
	Pool    string
	Subnet  netip.Prefix
	// Address6, Pool6 and Subnet6 are the host's IPv6 family: its uplink's IPv6 address and
	// the fixed-cidr-v6 subnet allocated to it; invalid (and "") for an IPv4-only host.
	Address6  netip.Addr
	Pool6     string
	Subnet6   netip.Prefix
	State     HostState
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Change, when known, is the host's newest change; nil means "not looked up".
	Change *ChangeRef
	// LastProbe is the newest return-path probe the host reported; nil when it reported none
	// (or it was not looked up).
	LastProbe *Probe
	// LeaseRenewedAt is when the host last registered or renewed; Lease is its lease as of
	// the lookup, nil when leases are off (or it was not looked up).
	LeaseRenewedAt time.Time
	Lease          *Lease
}

// ChangeRef names a change and where it stands.
type ChangeRef struct {
	ID     int64
	Status ChangeStatus
	Reason string
}

// Gateway is the docker0 bridge's own address: the subnet's first usable address. A host of an
// IPv6-only segment has no IPv4 subnet; its gateway is then that of its IPv6 subnet (Docker's
// default-gateway-v6 default: the first address of fixed-cidr-v6).
func (h Host) Gateway() netip.Addr {
	if !h.Subnet.IsValid() {
		if !h.Subnet6.IsValid() {
			return netip.Addr{}
		}
		return h.Subnet6.Addr().Next()
	}
	return h.Subnet.Addr().Next()
}

// Bip is the value of dockerd's --bip for this host, e.g. 10.210.10.1/24; invalid for a host
// of an IPv6-only segment, which returnpath gives no IPv4 subnet.
func (h Host) Bip() netip.Prefix {
	if !h.Subnet.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(h.Gateway(), h.Subnet.Bits())
}

// Subnets names the host's subnets for people: "10.210.10.0/24", "2001:db8:a00::/64" or both
// joined by " and ".
func (h Host) Subnets() string {
	switch {
	case h.Subnet.IsValid() && h.Subnet6.IsValid():
		return h.Subnet.String() + " and " + h.Subnet6.String()
	case h.Subnet6.IsValid():
		return h.Subnet6.String()
	}
	return h.Subnet.String()
}

// Registration is a request to register a host.
type Registration struct {
	Name    string
	Address netip.Addr
	Subnet  netip.Prefix // optional: a specific subnet of the pool
	// Address6 asks for an IPv6 subnet too (dual stack), routed via this address; Subnet6
	// optionally names a specific one of the segment's pool6.
	Address6 netip.Addr
	Subnet6  netip.Prefix
}

// maxHostName is the longest DNS name (RFC 1035).
const maxHostName = 253

// NormalizeHostName validates a host name as a DNS hostname (RFC 1123 labels separated by
// dots) and returns it in lower case.
func NormalizeHostName(name string) (string, error) {
	if name == "" {
		return "", FieldErrorf(EINVALID, "name", "is required")
	}
	if len(name) > maxHostName {
		return "", FieldErrorf(EINVALID, "name", "is %d characters long; a host name has at most %d", len(name), maxHostName)
	}
	name = strings.ToLower(name)
	for _, label := range strings.Split(name, ".") {
		if !hostLabelOK(label) {
			return "", FieldErrorf(EINVALID, "name", "must be a DNS host name: labels of 1-63 letters, digits and '-', separated by '.', not starting or ending with '-'")
		}
	}
	return name, nil
}

func hostLabelOK(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Place validates r against the inventory and returns the host's segment and its IPv4 pool
// (the zero Pool for a host of an IPv6-only segment). It checks everything that does not need
// the registry: the name, the address (IPv4, inside a segment, not its network or broadcast
// address), a requested subnet (inside the pool, of its length) and, for a host with an IPv6
// family, the same of address6 and subnet6 against the segment's hosts6 and pool6 (the IPv6
// pool is inv.Pool(seg.Pool6)). A host registers with the address of each family its segment
// has: address in a segment with hosts and pool, address6 in one with hosts6 and pool6. A
// registration with address6 alone is placed by it, into an IPv6-only segment.
func (inv *Inventory) Place(r Registration) (Registration, Segment, Pool, error) {
	name, err := NormalizeHostName(r.Name)
	if err != nil {
		return r, Segment{}, Pool{}, err
	}
	r.Name = name
	if !r.Address.IsValid() {
		seg, err := inv.placeV6Only(r)
		return r, seg, Pool{}, err
	}
	if r.Address.Is6() && !r.Address.Is4In6() && r.Address.Zone() == "" {
		return r, Segment{}, Pool{}, FieldErrorf(EINVALID, "address", "%s is IPv6: give the host's IPv4 address here and this one as address6", r.Address)
	}
	if !r.Address.Is4() {
		return r, Segment{}, Pool{}, FieldErrorf(EINVALID, "address", "%s: want a plain IPv4 address", r.Address)
	}
	seg, ok := inv.SegmentFor(r.Address)
	if !ok {
		if seg6, ok6 := inv.SegmentFor(r.Address6); ok6 && !seg6.Hosts.IsValid() {
			return r, Segment{}, Pool{}, FieldErrorf(EINVALID, "address", "segment %s (of address6 %s) is IPv6-only: register without address", seg6.Name, r.Address6)
		}
		return r, Segment{}, Pool{}, FieldErrorf(EINVALID, "address", "%s is in no configured segment", r.Address)
	}
	if r.Address == seg.Hosts.Addr() && seg.Hosts.Bits() < 31 {
		return r, Segment{}, Pool{}, FieldErrorf(EINVALID, "address", "%s is the network address of segment %s (%s)", r.Address, seg.Name, seg.Hosts)
	}
	if r.Address == lastAddr(seg.Hosts) && seg.Hosts.Bits() < 31 {
		return r, Segment{}, Pool{}, FieldErrorf(EINVALID, "address", "%s is the broadcast address of segment %s (%s)", r.Address, seg.Name, seg.Hosts)
	}
	pool, ok := inv.Pool(seg.Pool)
	if !ok {
		return r, Segment{}, Pool{}, Errorf(EINTERNAL, "segment %s names unknown pool %s", seg.Name, seg.Pool)
	}
	if err := checkSubnet("subnet", r.Subnet, pool, seg); err != nil {
		return r, Segment{}, Pool{}, err
	}
	if err := inv.place6(r, seg); err != nil {
		return r, Segment{}, Pool{}, err
	}
	return r, seg, pool, nil
}

// placeV6Only places registration r, which has no IPv4 address, by its address6: into an
// IPv6-only segment. A segment with IPv4 hosts needs the IPv4 address (its docker0 subnet is
// routed via it), so address is then the field at fault.
func (inv *Inventory) placeV6Only(r Registration) (Segment, error) {
	if !r.Address6.IsValid() {
		return Segment{}, FieldErrorf(EINVALID, "address", "is required (or, in an IPv6-only segment, address6)")
	}
	if r.Subnet.IsValid() {
		return Segment{}, FieldErrorf(EINVALID, "subnet", "needs address: the IPv4 subnet is routed via the host's IPv4 address")
	}
	if !r.Address6.Is6() || r.Address6.Is4In6() {
		return Segment{}, FieldErrorf(EINVALID, "address6", "%s is not an IPv6 address", r.Address6)
	}
	seg, ok := inv.SegmentFor(r.Address6)
	if !ok {
		return Segment{}, FieldErrorf(EINVALID, "address6", "%s is in no configured segment", r.Address6)
	}
	if seg.Hosts.IsValid() {
		return Segment{}, FieldErrorf(EINVALID, "address", "is required: segment %s (of address6 %s) has IPv4 hosts (%s); give the host's IPv4 address too", seg.Name, r.Address6, seg.Hosts)
	}
	return seg, inv.place6(r, seg)
}

// place6 checks the IPv6 half of registration r in segment seg.
func (inv *Inventory) place6(r Registration, seg Segment) error {
	a := r.Address6
	if !a.IsValid() {
		if r.Subnet6.IsValid() {
			return FieldErrorf(EINVALID, "subnet6", "needs address6: the IPv6 subnet is routed via the host's IPv6 address")
		}
		return nil
	}
	switch {
	case !a.Is6() || a.Is4In6():
		return FieldErrorf(EINVALID, "address6", "%s is not an IPv6 address", a)
	case a.Zone() != "" || a.IsLinkLocalUnicast():
		return FieldErrorf(EINVALID, "address6", "%s is link-local: devices route to the host's global or ULA address", a)
	case a.IsMulticast() || a.IsUnspecified() || a.IsLoopback():
		return FieldErrorf(EINVALID, "address6", "%s is not a host's unicast address", a)
	case !seg.Hosts6.IsValid():
		return FieldErrorf(EINVALID, "address6", "segment %s (of address %s) has no IPv6 hosts (hosts6, pool6): register without address6", seg.Name, r.Address)
	case !seg.Hosts6.Contains(a):
		return FieldErrorf(EINVALID, "address6", "%s is outside segment %s's hosts6 %s", a, seg.Name, seg.Hosts6)
	case a == seg.Hosts6.Addr() && seg.Hosts6.Bits() < 127:
		return FieldErrorf(EINVALID, "address6", "%s is the subnet-router anycast address of segment %s (%s)", a, seg.Name, seg.Hosts6)
	}
	pool6, ok := inv.Pool(seg.Pool6)
	if !ok {
		return Errorf(EINTERNAL, "segment %s names unknown pool6 %s", seg.Name, seg.Pool6)
	}
	return checkSubnet("subnet6", r.Subnet6, pool6, seg)
}

// checkSubnet checks a requested subnet s (none is fine) against pool, naming field.
func checkSubnet(field string, s netip.Prefix, pool Pool, seg Segment) error {
	switch {
	case !s.IsValid():
		return nil
	case s.Addr().Is6() != pool.Prefix.Addr().Is6():
		return FieldErrorf(EINVALID, field, "%s is not of pool %s's address family (%s)", s, pool.Name, pool.Prefix)
	case s != s.Masked():
		return FieldErrorf(EINVALID, field, "%s has host bits set (did you mean %s?)", s, s.Masked())
	case !pool.Prefix.Contains(s.Addr()) || s.Bits() < pool.Prefix.Bits():
		return FieldErrorf(EINVALID, field, "%s is outside pool %s (%s) of segment %s", s, pool.Name, pool.Prefix, seg.Name)
	case s.Bits() != pool.SubnetLength:
		return FieldErrorf(EINVALID, field, "%s: pool %s hands out /%d subnets", s, pool.Name, pool.SubnetLength)
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// HostFilter selects hosts for a listing.
type HostFilter struct {
	Segment string
	State   HostState // "" means every live state
	After   string    // keyset cursor: names after this one
	Limit   int
	// Stale selects pending and active hosts whose lease is past its expiry and grace (only
	// with leases on).
	Stale bool
}

// PoolUsage is how much of a pool is allocated.
type PoolUsage struct {
	Pool      Pool
	Allocated int64
}

// NothingToRemove reports whether no route of host h can be on any device, given every change
// filed for it, so that removing it takes no change and no device push: its subnet can be
// released at once. That holds for a host that never became active, each of whose changes
// either was never approved (pending, rejected: nothing was sent) or was rolled back with
// every op it applied undone. A change in flight (approved, applying), applied, or failed
// (the undo failed: devices may hold part of it) may have left routes: those need a remove
// change, reviewed and pushed.
func NothingToRemove(h Host, changes []Change) bool {
	if h.State == HostActive || h.State == HostRemoved {
		return false
	}
	for _, c := range changes {
		switch c.Status {
		case ChangePending, ChangeRejected:
		case ChangeRolledBack:
			if leftOnDevices(c) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// ReleaseAtOnce reports whether actor a removing host h (whose changes are given) releases its
// subnet at once, with no change filed: nothing of the host is on any device, and a is the
// token that registered it or may review changes. Another token's host goes through a remove
// change, which waits for a reviewer (see ApprovalPolicy.AutoApproval): a token scoped to a
// segment may not take other tokens' registrations away without a reviewer's consent.
func ReleaseAtOnce(h Host, changes []Change, a Actor) bool {
	return (h.CreatedBy == a.Name || a.Role.Can(PermReview)) && NothingToRemove(h, changes)
}

// leftOnDevices reports whether a rolled-back change may have left something on a device: a
// forward op still applied (never undone), or an undo op not applied.
func leftOnDevices(c Change) bool {
	for _, o := range c.Ops {
		undoPending := o.Rollback && o.Status != OpApplied
		stillApplied := !o.Rollback && o.Status == OpApplied
		if undoPending || stillApplied {
			return true
		}
	}
	return false
}

// Note says in a sentence what became of a host whose change ended without doing its work,
// and what can be done; "" when the host is where it should be or on its way there. The API
// shows it with the host, and host register prints it.
func (h Host) Note() string {
	c := h.Change
	if c == nil || !c.Status.Final() || c.Status == ChangeApplied {
		return ""
	}
	why := ""
	if c.Reason != "" {
		why = ": " + c.Reason
	}
	switch {
	case h.State == HostPending && c.Status == ChangeRejected:
		return fmt.Sprintf("change %d adding this host's return routes was rejected%s; they will not be installed. Remove the host to release subnet %s at once (nothing was sent to any device), then register it again if it should have routes",
			c.ID, why, h.Subnets())
	case h.State == HostPending && c.Status == ChangeRolledBack:
		return fmt.Sprintf("change %d adding this host's return routes was rolled back%s; no route of it is on any device. Retry the change once the cause is fixed, or remove the host to release subnet %s at once",
			c.ID, why, h.Subnets())
	case h.State == HostPending:
		return fmt.Sprintf("change %d adding this host's return routes %s%s; devices may hold part of it. Retry the change, or remove the host (a remove change takes away what is left)",
			c.ID, c.Status, why)
	case h.State == HostRemoving:
		return fmt.Sprintf("change %d removing this host's return routes was %s%s; the host keeps subnet %s. Remove it again to file a new remove change",
			c.ID, c.Status, why, h.Subnets())
	}
	return ""
}
