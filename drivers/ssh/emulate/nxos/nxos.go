// Package nxos is a test-support emulation of a Cisco Nexus switch's NX-OS CLI over SSH, for
// the cisco_nxos driver's tests. No NX-OS image can run on the project's machine, so the
// driver is tested against this: an in-process SSH server on 127.0.0.1 (on
// drivers/ssh/emulate/ciscocli) that keeps a static route table and answers the commands the
// driver sends, as Cisco and tools tested against real Nexus switches document them.
//
// Sources (read through the project's search tool):
//   - Static routes: Cisco Nexus 9000 Series NX-OS Unicast Routing Configuration Guide,
//     "Configuring Static Routing" (releases 6.x, 10.1(x), 10.2(x)),
//     https://www.cisco.com/c/en/us/td/docs/dcn/nx-os/nexus9000/101x/configuration/unicast/cisco-n9000-nx-os-unicast-routing-configuration-guide-101x/m-configuring-static-routing.html:
//     "ip route" in global configuration mode for the default VRF and under "vrf context
//     NAME" (prompt "switch(config-vrf)#") for a VRF, with a next hop and optional "name",
//     "tag" and preference; "no ip route" removes one; "vrf context" creates the VRF if it
//     does not exist. The same guide's IPv6 tasks: "ipv6 route PREFIX/LEN NEXTHOP [name N]
//     [tag T]" in the same two places (global mode, "vrf context NAME"), "no ipv6 route"
//     to remove one; a link-local next hop takes an interface.
//   - How running-config prints them, and the two filters the driver reads: Ansible's
//     cisco.nxos.nxos_static_routes module, tested against Nexus 9300v (NX-OS 9.3.6): its
//     facts read "show running-config | include '^ip(v6)* route'" and "show running-config |
//     section '^vrf context'", and its examples show lines such as
//     "ip route 192.0.2.64/28 192.0.2.23 name merged_route 1" and
//     "ip route 192.0.2.80/28 192.0.2.26 tag 12", VRF routes indented under "vrf context".
//   - Prompts "switch# " and "switch(config)# " with a trailing space, "terminal length 0",
//     "terminal width 511", errors "% Invalid command at '^' marker." and "% Incomplete
//     command at '^' marker." after a caret line: scrapligo's cisco_nxos platform definition
//     (its prompt patterns and failed-when-contains list) and the NX-OS Fundamentals
//     Configuration Guide, "Understanding the Command-Line Interface".
//   - "show version": the layout of the NX-OS software and hardware sections ("NXOS: version
//     9.3(8)", "cisco Nexus9000 C9300v Chassis") as printed in Cisco's configuration guides.
//
// What it does not emulate: any command other than those above; roles and "enable"; NX-OS's
// configuration sessions ("configure session"), checkpoints and rollback; preferences,
// interfaces, "track" and next-hop VRFs in route lines (it refuses them); the wording NX-OS
// prints for a next hop it refuses (Cisco does not document it: the emulation refuses
// multicast, loopback, unspecified, class E and, without an interface, IPv6 link-local next
// hops with the parser's generic "% Invalid command at '^' marker.") and for "no ip route" of a route that does not exist (it prints
// nothing); a prefix with host bits (it stores the masked prefix); the order NX-OS uses for
// running-config beyond "IPv4 before IPv6, then prefix and next hop"; other running-config
// lines ("show running-config" alone is refused); line editing and command abbreviations.
package nxos

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/ciscocli"
)

// Route is one static route in the emulated running-config.
type Route = ciscocli.Route

// Options configure a Device.
type Options = ciscocli.Options

// Device is an emulated NX-OS switch.
type Device = ciscocli.Device

// The show commands the emulation answers besides "show version", exactly as the driver and
// Ansible's nxos_static_routes send them.
const (
	ShowRoutes = "show running-config | include '^ip(v6)* route'"
	ShowVRFs   = "show running-config | section '^vrf context'"
)

// Start starts an emulated NX-OS switch (hostname "switch" unless opts names one). Its
// management VRF holds a default route, as a Nexus switch's usually does; it is not
// returnpath's.
func Start(opts Options) (*Device, error) {
	opts.VRFs = append(opts.VRFs, "management")
	d, err := ciscocli.Start(dialect, opts)
	if err != nil {
		return nil, err
	}
	d.Set(Route{VRF: "management", Prefix: netip.MustParsePrefix("0.0.0.0/0"), NextHop: netip.MustParseAddr("198.18.0.1")})
	return d, nil
}

var dialect = ciscocli.Dialect{
	Hostname:    "switch",
	PromptSpace: true,
	More:        " --More-- ",
	Invalid: func(prompt, line string, at int) string {
		return strings.Repeat(" ", len(prompt)+at) + "^\n% Invalid command at '^' marker.\n"
	},
	Configure: configure,
	Show:      show,
}

func incomplete(c *ciscocli.Conn, line string) string {
	return strings.Repeat(" ", len(c.Prompt())+len(line)) + "^\n% Incomplete command at '^' marker.\n"
}

// vrfName is what NX-OS accepts as a VRF name: up to 32 characters, no spaces.
var vrfName = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,32}$`)

func configure(c *ciscocli.Conn, line string, f []string) string {
	no := f[0] == "no"
	w := f
	if no {
		w = f[1:]
	}
	switch {
	case len(w) >= 1 && w[0] == "vrf" && !no:
		if len(w) < 3 || w[1] != "context" {
			if len(w) < 2 || w[1] == "context" {
				return incomplete(c, line)
			}
			return c.Invalid(line, f, 1)
		}
		if len(w) > 3 || !vrfName.MatchString(w[2]) || w[2] == "default" {
			return c.Invalid(line, f, 2)
		}
		c.Device().CreateVRF(w[2])
		c.Enter("config-vrf", w[2])
		return ""
	case len(w) >= 2 && (w[0] == "ip" || w[0] == "ipv6") && w[1] == "route":
		return routeLine(c, line, f, no)
	}
	return c.Invalid(line, f, 0)
}

// routeLine applies "[no] ip[v6] route P NH [name N] [tag T]" to running-config, in the VRF of
// the sub-mode the session is in.
func routeLine(c *ciscocli.Conn, line string, f []string, no bool) string {
	base := 2
	if no {
		base = 3
	}
	v6 := f[base-2] == "ipv6"
	if len(f) < base+2 {
		return incomplete(c, line)
	}
	p, err := netip.ParsePrefix(f[base])
	if err != nil || p.Addr().Is6() != v6 || p.Addr().Zone() != "" {
		return c.Invalid(line, f, base)
	}
	p = p.Masked()
	nh, err := netip.ParseAddr(f[base+1])
	if err != nil || nh.Is6() != v6 || nh.Zone() != "" || !ciscocli.UsableNextHop(nh) {
		return c.Invalid(line, f, base+1)
	}
	name, tag, bad := ciscocli.Attrs(f[base+2:])
	if bad >= 0 {
		if bad >= len(f)-base-2 {
			return incomplete(c, line)
		}
		return c.Invalid(line, f, base+2+bad)
	}
	vrf := "default"
	if sub, v := c.Submode(); sub == "config-vrf" {
		vrf = v
	}
	k := ciscocli.Key{VRF: vrf, Prefix: p, NextHop: nh}
	return c.Commit(func(running map[ciscocli.Key]Route) string {
		if no {
			delete(running, k)
			return ""
		}
		running[k] = Route{VRF: vrf, Prefix: p, NextHop: nh, Name: name, Tag: tag}
		return ""
	})
}

// routeText renders a route as NX-OS prints it in running-config.
func routeText(r Route) string {
	var b strings.Builder
	if r.Prefix.Addr().Is4() {
		b.WriteString("ip route ")
	} else {
		b.WriteString("ipv6 route ")
	}
	fmt.Fprintf(&b, "%s %s", r.Prefix, r.NextHop)
	if r.Name != "" {
		b.WriteString(" name " + r.Name)
	}
	if r.Tag != 0 {
		fmt.Fprintf(&b, " tag %d", r.Tag)
	}
	return b.String()
}

// byFamily returns rs with the IPv4 routes first, keeping their order otherwise.
func byFamily(rs []Route) []Route {
	out := make([]Route, 0, len(rs))
	for _, v4 := range []bool{true, false} {
		for _, r := range rs {
			if r.Prefix.Addr().Is4() == v4 {
				out = append(out, r)
			}
		}
	}
	return out
}

func show(c *ciscocli.Conn, line string, f []string) string {
	d := c.Device()
	cmd := "show " + strings.Join(f, " ")
	switch cmd {
	case "show version":
		return version(d.Hostname())
	case ShowRoutes:
		var b strings.Builder
		for _, r := range byFamily(d.Routes()) {
			if r.VRF == "default" {
				b.WriteString(routeText(r) + "\n")
			}
		}
		return b.String()
	case ShowVRFs:
		routes := byFamily(d.Routes())
		var b strings.Builder
		for _, vrf := range d.VRFs() {
			b.WriteString("vrf context " + vrf + "\n")
			for _, r := range routes {
				if r.VRF == vrf {
					b.WriteString("  " + routeText(r) + "\n")
				}
			}
		}
		return b.String()
	}
	if len(f) == 0 {
		return incomplete(c, line)
	}
	return c.Invalid(line, strings.Fields(line), 1)
}

// version prints the start of NX-OS's "show version" in its layout; the values are the
// emulation's own.
func version(host string) string {
	return "Cisco Nexus Operating System (NX-OS) Software\n" +
		"TAC support: http://www.cisco.com/tac\n" +
		"Copyright (C) 2002-2021, Cisco and/or its affiliates.\n" +
		"All rights reserved.\n\n" +
		"Software\n" +
		"  BIOS: version \n" +
		"  NXOS: version 9.3(8)\n" +
		"  NXOS image file is: bootflash:///nxos.9.3.8.bin\n" +
		"  NXOS compile time:  4/28/2021 12:00:00 [04/28/2021 20:56:54]\n\n" +
		"Hardware\n" +
		"  cisco Nexus9000 C9300v Chassis \n" +
		"  Processor Board ID EMULATED\n\n" +
		"  Device name: " + host + "\n"
}
