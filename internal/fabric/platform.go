package fabric

import (
	"slices"
	"strings"

	"github.com/returnpath/returnpath/drivers/route"
)

// Platform names a device operating system returnpath can render routes for.
type Platform = route.Platform

// Supported platforms.
const (
	PlatformFRR          = route.PlatformFRR          // FRRouting vtysh over SSH
	PlatformLinux        = route.PlatformLinux        // Linux iproute2 over SSH
	PlatformOpenConfig   = route.PlatformOpenConfig   // OpenConfig network-instance model over gNMI
	PlatformNokiaSRL     = route.PlatformNokiaSRL     // Nokia SR Linux native model over gNMI
	PlatformAristaEOS    = route.PlatformAristaEOS    // Arista EOS CLI over SSH, configuration sessions
	PlatformFortiOS      = route.PlatformFortiOS      // Fortinet FortiOS CLI over SSH, entry by entry
	PlatformCiscoASA     = route.PlatformCiscoASA     // Cisco ASA CLI over SSH, line by line
	PlatformJuniperJunos = route.PlatformJuniperJunos // Juniper Junos CLI over SSH, private candidate and commit
	PlatformVyOS         = route.PlatformVyOS         // VyOS CLI over SSH, configure and commit
	PlatformPANOS        = route.PlatformPANOS        // Palo Alto PAN-OS CLI over SSH, candidate and commit
	PlatformCiscoNXOS    = route.PlatformCiscoNXOS    // Cisco NX-OS CLI over SSH, line by line with undo
	PlatformCiscoIOSXE   = route.PlatformCiscoIOSXE   // Cisco IOS XE CLI over SSH, line by line with undo
)

// Transport is how returnpath reaches a device.
type Transport string

// Supported transports.
const (
	TransportSSH  Transport = "ssh"
	TransportGNMI Transport = "gnmi"
)

// Platforms lists every platform with the transport it runs over.
var Platforms = map[Platform]Transport{
	PlatformFRR:          TransportSSH,
	PlatformLinux:        TransportSSH,
	PlatformOpenConfig:   TransportGNMI,
	PlatformNokiaSRL:     TransportGNMI,
	PlatformAristaEOS:    TransportSSH,
	PlatformFortiOS:      TransportSSH,
	PlatformCiscoASA:     TransportSSH,
	PlatformJuniperJunos: TransportSSH,
	PlatformVyOS:         TransportSSH,
	PlatformPANOS:        TransportSSH,
	PlatformCiscoNXOS:    TransportSSH,
	PlatformCiscoIOSXE:   TransportSSH,
}

// ValidatePlatform reports whether p is a supported platform.
func ValidatePlatform(p Platform) error {
	if _, ok := Platforms[p]; !ok {
		names := make([]string, 0, len(Platforms))
		for name := range Platforms {
			names = append(names, string(name))
		}
		slices.Sort(names)
		return FieldErrorf(EINVALID, "platform", "unknown platform %q (want one of %s)", string(p), strings.Join(names, ", "))
	}
	return nil
}

// Validate reports whether t is a supported transport.
func (t Transport) Validate() error {
	switch t {
	case TransportSSH, TransportGNMI:
		return nil
	}
	return FieldErrorf(EINVALID, "transport", "unknown transport %q (want ssh or gnmi)", string(t))
}
