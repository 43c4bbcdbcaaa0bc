// Package iosxe is a test-support emulation of a Cisco IOS XE router's CLI over SSH, for the
// cisco_iosxe driver's tests. No IOS XE image can run on the project's machine, so the driver
// is tested against this: an in-process SSH server on 127.0.0.1 (on
// drivers/ssh/emulate/ciscocli) that keeps a static route table and answers the commands the
// driver sends, as Cisco documents them.
//
// Sources (read through the project's search tool):
//   - Static routes: Cisco IOS IP Addressing Services / IP Routing Protocol-Independent
//     Command Reference, "ip route" (http://cisco.com/en/US/docs/ios-xml/ios/ipaddr/command/ipaddr-i4.html)
//     and the MPLS Command Reference, "ip route vrf": "ip route [vrf V] PREFIX MASK NEXTHOP
//     [distance] [name N] [permanent | track T] [tag T]" in global configuration mode, "no"
//     to remove; "ipv6 route [vrf V] PREFIX/LEN NEXTHOP ... [name N] [tag T]".
//   - Prompts "Router#" and "Router(config)#" without a trailing space, "terminal length 0",
//     "terminal width 512", the parser's caret line and "% Invalid input detected at '^'
//     marker.": scrapligo's cisco_iosxe platform definition (prompt patterns,
//     failed-when-contains) and the IOS XE Configuration Fundamentals Guide, "Using the
//     Cisco IOS Command-Line Interface".
//   - Running-config prints IPv6 addresses in upper case ("ipv6 route 2001:DB8::/64
//     2001:DB8::1"), as in the examples of the IPv6 static routing configuration guide.
//   - "show version" starts "Cisco IOS XE Software, Version 17.03.04a", then the IOS line
//     ("Cisco IOS Software [Amsterdam], ... Version 17.3.4a, RELEASE SOFTWARE (fc3)").
//
// What it does not emulate: any command other than those above; "enable" and privilege levels
// below 15 (a login lands at "Router#"); configuration archives, "configure replace" and
// rollback; distances, "permanent", "track", interfaces and "nexthop-vrf" in route lines (it
// refuses them); the exact text IOS XE prints for a next hop it refuses (Cisco does not
// document it: the emulation refuses multicast, loopback, unspecified, class E and, without an
// interface, IPv6 link-local next hops with the parser's generic "% Invalid input detected at '^' marker."); the text for a route
// in a VRF that does not exist (the emulation prints "% IP routing table V does not exist.
// Create first", the wording reported from the field, not from Cisco's reference); the full
// running-config (only the two "include" filters the driver reads); line editing and command
// abbreviations.
package iosxe

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/ciscocli"
)

// Route is one static route in the emulated running-config.
type Route = ciscocli.Route

// Options configure a Device.
type Options = ciscocli.Options

// Device is an emulated IOS XE router.
type Device = ciscocli.Device

// The show commands the emulation answers besides "show version", as the driver sends them.
const (
	ShowIPv4 = "show running-config | include ^ip route"
	ShowIPv6 = "show running-config | include ^ipv6 route"
)

// Start starts an emulated IOS XE router (hostname "Router" unless opts names one).
func Start(opts Options) (*Device, error) {
	return ciscocli.Start(dialect, opts)
}

var dialect = ciscocli.Dialect{
	Hostname: "Router",
	More:     " --More-- ",
	Invalid: func(prompt, line string, at int) string {
		return strings.Repeat(" ", len(prompt)+at) + "^\n% Invalid input detected at '^' marker.\n\n"
	},
	Configure: configure,
	Show:      show,
}

func incomplete(string) string { return "% Incomplete command.\n\n" }

func configure(c *ciscocli.Conn, line string, f []string) string {
	no := f[0] == "no"
	base := 0
	if no {
		base = 1
	}
	if len(f) >= base+2 && (f[base] == "ip" || f[base] == "ipv6") && f[base+1] == "route" {
		return routeLine(c, line, f, base+2, no, f[base] == "ipv6")
	}
	return c.Invalid(line, f, 0)
}

// routeLine applies "[no] ip route [vrf V] A MASK NH [name N] [tag T]" or "[no] ipv6 route
// [vrf V] P/LEN NH [name N] [tag T]"; f[i] is the word after "route".
func routeLine(c *ciscocli.Conn, line string, f []string, i int, no, v6 bool) string {
	vrf := "default"
	if i < len(f) && f[i] == "vrf" {
		if i+1 >= len(f) {
			return incomplete(line)
		}
		vrf = f[i+1]
		if !c.Device().HasVRF(vrf) {
			return "% IP routing table " + vrf + " does not exist. Create first\n"
		}
		i += 2
	}
	var p netip.Prefix
	if v6 {
		if i >= len(f) {
			return incomplete(line)
		}
		var err error
		if p, err = netip.ParsePrefix(f[i]); err != nil || !p.Addr().Is6() || p.Addr().Zone() != "" {
			return c.Invalid(line, f, i)
		}
		p = p.Masked()
		i++
	} else {
		if i+1 >= len(f) {
			return incomplete(line)
		}
		a, err := netip.ParseAddr(f[i])
		if err != nil || !a.Is4() {
			return c.Invalid(line, f, i)
		}
		m, err := netip.ParseAddr(f[i+1])
		if err != nil || !m.Is4() {
			return c.Invalid(line, f, i+1)
		}
		mb := m.As4()
		ones, bits := net.IPMask(mb[:]).Size()
		if bits == 0 {
			return c.Invalid(line, f, i+1)
		}
		p = netip.PrefixFrom(a, ones)
		if p.Masked() != p {
			return "%Inconsistent address and mask\n"
		}
		i += 2
	}
	if i >= len(f) {
		return incomplete(line)
	}
	nh, err := netip.ParseAddr(f[i])
	if err != nil || nh.Is6() != v6 || nh.Zone() != "" || !ciscocli.UsableNextHop(nh) {
		return c.Invalid(line, f, i)
	}
	name, tag, bad := ciscocli.Attrs(f[i+1:])
	if bad >= 0 {
		if bad >= len(f)-i-1 {
			return incomplete(line)
		}
		return c.Invalid(line, f, i+1+bad)
	}
	k := ciscocli.Key{VRF: vrf, Prefix: p, NextHop: nh}
	return c.Commit(func(running map[ciscocli.Key]Route) string {
		if no {
			if _, ok := running[k]; !ok {
				return "%No matching route to delete\n"
			}
			delete(running, k)
			return ""
		}
		running[k] = Route{VRF: vrf, Prefix: p, NextHop: nh, Name: name, Tag: tag}
		return ""
	})
}

// routeText renders a route as IOS XE prints it in running-config.
func routeText(r Route) string {
	var b strings.Builder
	if r.Prefix.Addr().Is4() {
		b.WriteString("ip route ")
	} else {
		b.WriteString("ipv6 route ")
	}
	if r.VRF != "default" {
		b.WriteString("vrf " + r.VRF + " ")
	}
	if r.Prefix.Addr().Is4() {
		m := net.CIDRMask(r.Prefix.Bits(), 32)
		fmt.Fprintf(&b, "%s %d.%d.%d.%d %s", r.Prefix.Addr(), m[0], m[1], m[2], m[3], r.NextHop)
	} else {
		fmt.Fprintf(&b, "%s %s", strings.ToUpper(r.Prefix.String()), strings.ToUpper(r.NextHop.String()))
	}
	// In the order of the command's syntax: name, then tag.
	if r.Name != "" {
		b.WriteString(" name " + r.Name)
	}
	if r.Tag != 0 {
		fmt.Fprintf(&b, " tag %d", r.Tag)
	}
	return b.String()
}

func show(c *ciscocli.Conn, line string, f []string) string {
	d := c.Device()
	switch "show " + strings.Join(f, " ") {
	case "show version":
		return version(d.Hostname())
	case ShowIPv4, ShowIPv6:
		v4 := f[len(f)-2] == "^ip"
		var b strings.Builder
		for _, r := range d.Routes() {
			if r.Prefix.Addr().Is4() == v4 {
				b.WriteString(routeText(r) + "\n")
			}
		}
		return b.String()
	}
	if len(f) == 0 {
		return incomplete(line)
	}
	return c.Invalid(line, strings.Fields(line), 1)
}

// version prints the start of IOS XE's "show version" in its layout; the values are the
// emulation's own.
func version(host string) string {
	return "Cisco IOS XE Software, Version 17.03.04a\n" +
		"Cisco IOS Software [Amsterdam], Virtual XE Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), Version 17.3.4a, RELEASE SOFTWARE (fc3)\n" +
		"Technical Support: http://www.cisco.com/techsupport\n" +
		"Copyright (c) 1986-2021 by Cisco Systems, Inc.\n\n" +
		host + " uptime is 1 hour, 2 minutes\n" +
		"System image file is \"bootflash:packages.conf\"\n"
}
