package ssh

import (
	"bufio"
	"context"
	"net/netip"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Cisco NX-OS rendering and parsing. Everything here is pure; the commit model is
// ciscoDriver's (cisco.go).

// nxosTag is the route tag that marks a static route as returnpath's on NX-OS; read-back
// counts only routes carrying it. 202 is also the Linux driver's default route protocol.
const (
	nxosTag     = "202"
	nxosRouteID = "returnpath" // the route's name: for people reading the config, not ownership
)

// nxosRouteLine renders the route line of an add, without VRF (NX-OS sets a VRF's routes
// under "vrf context V"): "ip route 10.210.10.0/24 10.10.10.101 name returnpath tag 202"
// ("ipv6 route" for IPv6). r must have passed Validate: the rest are netip values.
func nxosRouteLine(r route.Route) string {
	return nxosRouteHead(r) + " name " + nxosRouteID + " tag " + nxosTag
}

// nxosRouteHead is "ip[v6] route P NH", the words that identify a static route on NX-OS. A
// delete is "no" and these: NX-OS removes the route whatever its name and tag.
func nxosRouteHead(r route.Route) string {
	family := "ip"
	if r.Prefix.Addr().Is6() {
		family = "ipv6"
	}
	return family + " route " + r.Prefix.String() + " " + r.NextHop.String()
}

// nxosRender renders ops for global configuration mode. Ops in a VRF go under "vrf context
// V" (which NX-OS creates if it does not exist); consecutive ops of one VRF share it, and
// "exit" returns to global configuration mode before a default-VRF op and at the end. VRF
// names passed route.ValidateVRF, so they hold no space or control character.
func nxosRender(ops []route.RouteOp) []ciscoLine {
	lines := make([]ciscoLine, 0, len(ops)+2)
	vrf := route.DefaultVRF
	for i, op := range ops {
		if op.Route.VRF != vrf {
			if vrf != route.DefaultVRF {
				lines = append(lines, ciscoLine{Op: i, Text: "exit", Mode: true})
			}
			if op.Route.VRF != route.DefaultVRF {
				lines = append(lines, ciscoLine{Op: i, Text: "vrf context " + op.Route.VRF, Mode: true})
			}
			vrf = op.Route.VRF
		}
		text := nxosRouteLine(op.Route)
		if op.Action == route.ActionDelete {
			text = "no " + nxosRouteHead(op.Route)
		}
		lines = append(lines, ciscoLine{Op: i, Text: text})
	}
	if vrf != route.DefaultVRF {
		lines = append(lines, ciscoLine{Op: len(ops) - 1, Text: "exit", Mode: true})
	}
	return lines
}

// parseNXOSRoutes reads the static routes returnpath owns from NX-OS running-config: lines
// "ip route P NH [name N] tag 202" ("ipv6 route" alike) at the top level for the default VRF,
// or indented under "vrf context V" for V. The tag is the mark: a route with another tag or
// none is someone else's, and so is one with a preference, an interface, a next-hop VRF or
// anything else returnpath does not render, so that the driver never plans against (or
// deletes) it. Another top-level line ends a "vrf context" block.
func parseNXOSRoutes(text string) []route.Route {
	var routes []route.Route
	vrf := route.DefaultVRF
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \r")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		if !indented {
			vrf = route.DefaultVRF
			if len(f) == 3 && f[0] == "vrf" && f[1] == "context" {
				vrf = f[2]
				continue
			}
		}
		if indented && vrf == route.DefaultVRF {
			continue // a sub-mode line of something other than a VRF
		}
		if r, ok := nxosOwned(f, vrf); ok {
			routes = append(routes, r)
		}
	}
	return routes
}

// nxosOwned reads one route line's words as a route of vrf carrying returnpath's tag.
func nxosOwned(f []string, vrf string) (route.Route, bool) {
	if len(f) < 6 || (f[0] != "ip" && f[0] != "ipv6") || f[1] != "route" {
		return route.Route{}, false
	}
	p, err := netip.ParsePrefix(f[2])
	if err != nil {
		return route.Route{}, false
	}
	nh, err := netip.ParseAddr(f[3])
	if err != nil {
		return route.Route{}, false
	}
	rest := f[4:]
	if rest[0] == "name" && len(rest) >= 2 {
		rest = rest[2:]
	}
	if len(rest) != 2 || rest[0] != "tag" || rest[1] != nxosTag {
		return route.Route{}, false
	}
	r := route.Route{VRF: vrf, Prefix: p, NextHop: nh}
	if r.Validate() != nil || (f[0] == "ip") != p.Addr().Is4() {
		return route.Route{}, false
	}
	return r, true
}

// nxosVersion turns NX-OS's "show version" into one line: the chassis and the NX-OS version
// ("cisco Nexus9000 C9300v Chassis, NXOS version 9.3(8)"). Older releases print "system:
// version ..." instead of "NXOS: version ...".
func nxosVersion(out string) string {
	var chassis, version string
	for line := range strings.Lines(out) {
		l := strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(l, "NXOS: version"); ok && version == "" {
			version = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(l, "system:"); ok && version == "" {
			version = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "version"))
		}
		if chassis == "" && strings.HasPrefix(l, "cisco ") && strings.Contains(l, "hassis") {
			chassis = l
		}
	}
	switch {
	case chassis != "" && version != "":
		return chassis + ", NXOS version " + version
	case version != "":
		return "NXOS version " + version
	}
	return chassis
}

var nxosDialect = &ciscoDialect{
	platform:   "cisco_nxos",
	label:      "NX-OS",
	render:     nxosRender,
	reads:      []string{"show running-config | include '^ip(v6)* route'", "show running-config | section '^vrf context'"},
	parse:      parseNXOSRoutes,
	versionCmd: "show version",
	version:    nxosVersion,
}

// NXOSDriver is a session to a Cisco Nexus switch's NX-OS CLI over SSH, on scrapligo's
// embedded cisco_nxos platform definition. It implements drivers.Driver and
// drivers.Versioner.
//
// NX-OS applies each configuration line as it is entered: the driver sends a batch line by
// line and, at the first refused line, undoes the lines it applied (see ciscoDriver.Apply).
// Ownership is marked on the box: every route the driver adds carries "tag 202" (and "name
// returnpath" for people), reads list only routes tagged 202, and deletes are sent only for
// routes read back with it. Routes are read from running-config with the two filters
// Ansible's nxos_static_routes uses: "show running-config | include '^ip(v6)* route'" and
// "show running-config | section '^vrf context'".
type NXOSDriver struct {
	ciscoDriver
}

var (
	_ drivers.Driver    = (*NXOSDriver)(nil)
	_ drivers.Versioner = (*NXOSDriver)(nil)
)

// OpenNXOS connects to the switch described by cfg. The login must land at the privileged
// prompt (a network-admin role); scrapligo's on-open sets "terminal width 511" and
// "terminal length 0".
func OpenNXOS(ctx context.Context, cfg drivers.Config) (*NXOSDriver, error) {
	nd, err := openCLIWith(ctx, cfg, nxosDialect.platform, nxosDialect.platform, true, "NX-OS CLI", perLineReadDelay)
	if err != nil {
		return nil, err
	}
	return &NXOSDriver{ciscoDriver{cliSession: cliSession{cfg: cfg, nd: nd}, dl: nxosDialect}}, nil
}

// NXOSPreview renders ops as the cisco_nxos driver sends them. Adds of routes the switch
// already holds and deletes of routes it does not hold under returnpath's tag are dropped
// before sending; the preview cannot see the device and shows them all.
func NXOSPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	return ciscoPreview(nxosDialect, cfg, ops)
}
