// Package route holds the value types a returnpath driver reads and writes: a static Route,
// the RouteOp that adds or deletes it, and the Platform name a driver serves. It is a leaf:
// it imports only the standard library, so that drivers outside this module can use it
// (River keeps its driver-facing types in rivertype for the same reason). returnpath's domain
// package aliases these types; they are the same types on both sides.
package route

import (
	"fmt"
	"net/netip"
	"regexp"
)

// FieldError is a validation failure that names the field at fault ("vrf", "prefix",
// "next_hop", "action"). Its message is safe to show to a user.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Platform names a device operating system a driver renders routes for, e.g. "frr".
type Platform string

// The platforms returnpath ships drivers for. A driver outside this module names its own.
const (
	PlatformFRR          Platform = "frr"              // FRRouting vtysh over SSH
	PlatformLinux        Platform = "linux"            // Linux iproute2 over SSH
	PlatformOpenConfig   Platform = "openconfig"       // OpenConfig network-instance model over gNMI
	PlatformNokiaSRL     Platform = "nokia_srl"        // Nokia SR Linux native model over gNMI
	PlatformAristaEOS    Platform = "arista_eos"       // Arista EOS CLI over SSH, configuration sessions
	PlatformFortiOS      Platform = "fortinet_fortios" // Fortinet FortiOS CLI over SSH, entry by entry
	PlatformCiscoASA     Platform = "cisco_asa"        // Cisco ASA CLI over SSH, line by line
	PlatformJuniperJunos Platform = "juniper_junos"    // Juniper Junos CLI over SSH, private candidate and commit
	PlatformVyOS         Platform = "vyos"             // VyOS CLI over SSH, configure and commit
	PlatformPANOS        Platform = "paloalto_panos"   // Palo Alto PAN-OS CLI over SSH, candidate config and commit
	PlatformCiscoNXOS    Platform = "cisco_nxos"       // Cisco NX-OS CLI over SSH, line by line with undo
	PlatformCiscoIOSXE   Platform = "cisco_iosxe"      // Cisco IOS XE CLI over SSH, line by line with undo
)

// Action is what a RouteOp does to a device.
type Action string

// The two route actions.
const (
	ActionAdd    Action = "add"
	ActionDelete Action = "delete"
)

// Validate reports whether a is a known action.
func (a Action) Validate() error {
	switch a {
	case ActionAdd, ActionDelete:
		return nil
	}
	return fieldErrorf("action", "unknown action %q (want add or delete)", string(a))
}

// DefaultVRF is the name of the default routing table on every platform.
const DefaultVRF = "default"

var vrfRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)

// ValidateVRF checks that name is a VRF name safe to render into any device syntax: 1 to 32
// characters of letters, digits, '_', '.', '-', starting with a letter or digit.
func ValidateVRF(name string) error {
	if !vrfRE.MatchString(name) {
		return fieldErrorf("vrf", "invalid VRF name %q: 1-32 letters, digits, '_', '.', '-'", name)
	}
	return nil
}

// Route is one static route as a single device holds it: prefix via next hop in a VRF.
type Route struct {
	VRF     string       // DefaultVRF for the default table; never empty once validated
	Prefix  netip.Prefix // always masked (no host bits)
	NextHop netip.Addr
}

// Validate checks that r can be rendered safely on any platform. A driver may rely on every
// route it is handed having passed it, and still checks what it renders (see docs/drivers.md).
func (r Route) Validate() error {
	if err := ValidateVRF(r.VRF); err != nil {
		return err
	}
	if !r.Prefix.IsValid() {
		return fieldErrorf("prefix", "missing or invalid prefix")
	}
	if r.Prefix != r.Prefix.Masked() {
		return fieldErrorf("prefix", "prefix %s has host bits set (did you mean %s?)", r.Prefix, r.Prefix.Masked())
	}
	if !r.NextHop.IsValid() {
		return fieldErrorf("next_hop", "missing or invalid next hop")
	}
	if r.NextHop.Zone() != "" {
		return fieldErrorf("next_hop", "next hop %s must not carry a zone", r.NextHop)
	}
	if r.NextHop.Is4() != r.Prefix.Addr().Is4() {
		return fieldErrorf("next_hop", "next hop %s and prefix %s are of different address families", r.NextHop, r.Prefix)
	}
	return nil
}

// String renders r for logs and messages, e.g. "10.210.10.0/24 via 10.10.10.101 vrf default".
func (r Route) String() string {
	return fmt.Sprintf("%s via %s vrf %s", r.Prefix, r.NextHop, r.VRF)
}

// RouteKey identifies a route for set comparisons.
type RouteKey struct {
	VRF    string
	Prefix netip.Prefix
}

// Key returns the route's identity: one next hop per prefix and VRF is what returnpath manages.
func (r Route) Key() RouteKey { return RouteKey{VRF: r.VRF, Prefix: r.Prefix} }

// RouteOp is one change to one device's routes.
type RouteOp struct {
	Action Action
	Route  Route
}

// Validate checks the action and the route.
func (o RouteOp) Validate() error {
	if err := o.Action.Validate(); err != nil {
		return err
	}
	return o.Route.Validate()
}

func (o RouteOp) String() string { return string(o.Action) + " " + o.Route.String() }

// Inverse returns the op that undoes o.
func (o RouteOp) Inverse() RouteOp {
	if o.Action == ActionAdd {
		return RouteOp{Action: ActionDelete, Route: o.Route}
	}
	return RouteOp{Action: ActionAdd, Route: o.Route}
}

// Managed reports whether p lies inside one of the managed prefixes. Drivers use it so that
// they never read, add or delete a route outside the configured pools.
func Managed(p netip.Prefix, managed []netip.Prefix) bool {
	for _, m := range managed {
		if m.Bits() <= p.Bits() && m.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
