package ssh

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Cisco IOS XE rendering and parsing. Everything here is pure; the commit model is
// ciscoDriver's (cisco.go).

// iosxeOwner is the name returnpath gives every static route it adds on IOS XE; read-back
// counts only routes carrying it.
const iosxeOwner = "returnpath"

// netmask renders an IPv4 prefix length as IOS's dotted netmask ("255.255.255.0").
func netmask(bits int) string {
	m := net.CIDRMask(bits, 32)
	return strconv.Itoa(int(m[0])) + "." + strconv.Itoa(int(m[1])) + "." + strconv.Itoa(int(m[2])) + "." + strconv.Itoa(int(m[3]))
}

// iosxeRouteHead is the words that identify a static route on IOS XE: "ip route [vrf V] A
// MASK NH" (IPv4, netmask form) or "ipv6 route [vrf V] P NH". A delete is "no" and these.
// r must have passed Validate: the VRF name is [A-Za-z0-9_.-], the rest are netip values.
func iosxeRouteHead(r route.Route) string {
	var b strings.Builder
	v4 := r.Prefix.Addr().Is4()
	if v4 {
		b.WriteString("ip route ")
	} else {
		b.WriteString("ipv6 route ")
	}
	if r.VRF != route.DefaultVRF {
		b.WriteString("vrf " + r.VRF + " ")
	}
	if v4 {
		b.WriteString(r.Prefix.Addr().String() + " " + netmask(r.Prefix.Bits()))
	} else {
		b.WriteString(r.Prefix.String())
	}
	b.WriteString(" " + r.NextHop.String())
	return b.String()
}

// iosxeRender renders one line per op, all in global configuration mode.
func iosxeRender(ops []route.RouteOp) []ciscoLine {
	lines := make([]ciscoLine, len(ops))
	for i, op := range ops {
		text := iosxeRouteHead(op.Route) + " name " + iosxeOwner
		if op.Action == route.ActionDelete {
			text = "no " + iosxeRouteHead(op.Route)
		}
		lines[i] = ciscoLine{Op: i, Text: text}
	}
	return lines
}

// parseIOSXERoutes reads the static routes returnpath owns from IOS XE running-config lines:
// only "ip route [vrf V] A MASK NH name returnpath" and "ipv6 route [vrf V] P NH name
// returnpath" count. A route with another name, no name, a distance, a tag, "permanent",
// "track", an interface or anything else returnpath does not render is someone else's and
// is left out, so the driver never plans against (or deletes) it. IOS prints IPv6 addresses in
// upper case; they read the same.
func parseIOSXERoutes(text string) []route.Route {
	var routes []route.Route
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if r, ok := iosxeOwned(strings.Fields(sc.Text())); ok {
			routes = append(routes, r)
		}
	}
	return routes
}

// iosxeOwned reads one line's words as a route carrying returnpath's name.
func iosxeOwned(f []string) (route.Route, bool) {
	if len(f) < 2 || (f[0] != "ip" && f[0] != "ipv6") || f[1] != "route" {
		return route.Route{}, false
	}
	v4 := f[0] == "ip"
	vrf := route.DefaultVRF
	rest := f[2:]
	if len(rest) >= 2 && rest[0] == "vrf" {
		vrf, rest = rest[1], rest[2:]
	}
	var p netip.Prefix
	if v4 {
		if len(rest) != 5 {
			return route.Route{}, false
		}
		a, err1 := netip.ParseAddr(rest[0])
		m, err2 := netip.ParseAddr(rest[1])
		if err1 != nil || err2 != nil || !a.Is4() || !m.Is4() {
			return route.Route{}, false
		}
		mb := m.As4()
		ones, bits := net.IPMask(mb[:]).Size()
		if bits != 32 {
			return route.Route{}, false // not a contiguous netmask
		}
		p, rest = netip.PrefixFrom(a, ones), rest[2:]
	} else {
		if len(rest) != 4 {
			return route.Route{}, false
		}
		var err error
		if p, err = netip.ParsePrefix(rest[0]); err != nil || !p.Addr().Is6() {
			return route.Route{}, false
		}
		rest = rest[1:]
	}
	nh, err := netip.ParseAddr(rest[0])
	if err != nil || rest[1] != "name" || rest[2] != iosxeOwner {
		return route.Route{}, false
	}
	r := route.Route{VRF: vrf, Prefix: p, NextHop: nh}
	if r.Validate() != nil {
		return route.Route{}, false
	}
	return r, true
}

// iosxeVersion turns IOS XE's "show version" into one line: its first line, "Cisco IOS XE
// Software, Version 17.03.04a", when it prints one, else the first line that names a version.
func iosxeVersion(out string) string {
	first := ""
	for line := range strings.Lines(out) {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "Cisco IOS XE Software") {
			return l
		}
		if first == "" && strings.Contains(l, "Version") {
			first = l
		}
	}
	return first
}

var iosxeDialect = &ciscoDialect{
	platform:   "cisco_iosxe",
	label:      "IOS XE",
	render:     iosxeRender,
	reads:      []string{"show running-config | include ^ip route", "show running-config | include ^ipv6 route"},
	parse:      parseIOSXERoutes,
	versionCmd: "show version",
	version:    iosxeVersion,
}

// IOSXEDriver is a session to a Cisco IOS XE router or switch's CLI over SSH, on scrapligo's
// embedded cisco_iosxe platform definition. It implements drivers.Driver and
// drivers.Versioner.
//
// IOS XE applies each configuration line as it is entered: the driver sends a batch line by
// line and, at the first refused line, undoes the lines it applied (see ciscoDriver.Apply).
// Ownership is marked on the box: every route the driver adds carries "name returnpath", reads
// ("show running-config | include ^ip route" and "... ^ipv6 route") list only such routes,
// and deletes are sent only for routes read back with it.
type IOSXEDriver struct {
	ciscoDriver
}

var (
	_ drivers.Driver    = (*IOSXEDriver)(nil)
	_ drivers.Versioner = (*IOSXEDriver)(nil)
)

// OpenIOSXE connects to the device described by cfg. The login must land at the privileged
// prompt (privilege 15); scrapligo's on-open sets "terminal width 512" and "terminal length
// 0".
func OpenIOSXE(ctx context.Context, cfg drivers.Config) (*IOSXEDriver, error) {
	nd, err := openCLIWith(ctx, cfg, iosxeDialect.platform, iosxeDialect.platform, true, "IOS XE CLI", perLineReadDelay)
	if err != nil {
		return nil, err
	}
	return &IOSXEDriver{ciscoDriver{cliSession: cliSession{cfg: cfg, nd: nd}, dl: iosxeDialect}}, nil
}

// IOSXEPreview renders ops as the cisco_iosxe driver sends them. Adds of routes the device
// already holds and deletes of routes it does not hold under returnpath's name are dropped
// before sending; the preview cannot see the device and shows them all.
func IOSXEPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	return ciscoPreview(iosxeDialect, cfg, ops)
}
