package ssh

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Palo Alto PAN-OS rendering and parsing. Everything here is pure: the driver in
// panosdriver.go feeds it the firewall's text.
//
// A PAN-OS static route is a named entry of a virtual router's routing table:
//
//	set network virtual-router VR routing-table ip static-route NAME destination P nexthop ip-address NH [interface IF]
//	set network virtual-router VR routing-table ipv6 static-route NAME destination P nexthop ipv6-address NH [interface IF]
//	delete network virtual-router VR routing-table ip static-route NAME
//
// (PAN-OS XML schema as the PAN-OS SDK generator describes it: PaloAltoNetworks/pan-os-codegen
// specs/network/virtual-router-static-route-ipv4.yaml and -ipv6.yaml: destination, interface,
// nexthop {ip-address | ipv6-address | next-vr | fqdn | discard | receive}, metric, admin-dist,
// bfd, path-monitor, route-table.) Each entry holds one next hop, so the name, not the prefix,
// is the key: returnpath owns exactly the entries whose name starts with "rp-".

// panosOwnerPrefix starts the name of every static route returnpath creates on PAN-OS.
const panosOwnerPrefix = "rp-"

// panosNameMax is the longest static route name returnpath renders. Palo Alto documents a
// static route's name as "up to 31 characters ... case-sensitive and must be unique ... letters,
// numbers, spaces, hyphens, and underscores" (PAN-OS static route playbook inputs,
// xsoar.pan.dev "PAN-OS - Add Static Routes"; newer releases allow 63). Periods and colons are
// not in that list, so the prefix is written with '_' for '.' and ':', and the limit used is
// the older 31, which every release accepts.
const panosNameMax = 31

// panosNameRE is what a name returnpath renders always matches; the emulation refuses
// anything else.
var panosNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,30}$`)

// panosVRRE checks a virtual router name before it reaches the CLI: a PAN-OS virtual router
// name is at most 31 characters; returnpath accepts letters, digits, '_', '.', '-' (no spaces,
// which the CLI would need quoted).
var panosVRRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$`)

// panosIfRE checks the egress interface: a layer-3 interface name as PAN-OS spells it
// (ethernet1/2, ethernet1/2.100, ae1, ae1.10, loopback.1, tunnel.1, vlan.10).
var panosIfRE = regexp.MustCompile(`^(?:ethernet[0-9]{1,2}/[0-9]{1,3}(?:\.[0-9]{1,4})?|ae[0-9]{1,2}(?:\.[0-9]{1,4})?|(?:loopback|tunnel|vlan)(?:\.[0-9]{1,4})?)$`)

// PANOSCheck validates the panos keys of a device entry; its errors name the key.
func PANOSCheck(cfg drivers.Config) error {
	if vr := cfg.PANOS.VirtualRouter; vr != "" && !panosVRRE.MatchString(vr) {
		return &route.FieldError{Field: "panos.virtual_router",
			Message: "invalid virtual router name " + strconv.Quote(vr) + ": 1-31 letters, digits, '_', '.', '-'"}
	}
	if ifc := cfg.PANOS.Interface; ifc != "" && !panosIfRE.MatchString(ifc) {
		return &route.FieldError{Field: "panos.interface",
			Message: "invalid interface " + strconv.Quote(ifc) + ": want a PAN-OS layer-3 interface such as ethernet1/2, ethernet1/2.100, ae1, tunnel.1, vlan.10"}
	}
	return nil
}

// panosVR returns the virtual router a route in vrf lives in: the configured virtual router
// (default "default") for returnpath's default VRF, the VR of the same name otherwise.
func panosVR(cfg drivers.Config, vrf string) string {
	if vrf == route.DefaultVRF {
		if cfg.PANOS.VirtualRouter != "" {
			return cfg.PANOS.VirtualRouter
		}
		return route.DefaultVRF
	}
	return vrf
}

// panosVRF is panosVR's inverse; ok is false for a virtual router returnpath cannot address:
// one named "default" while another is configured for the default VRF.
func panosVRF(cfg drivers.Config, vr string) (string, bool) {
	def := cfg.PANOS.VirtualRouter
	if def == "" {
		def = route.DefaultVRF
	}
	switch {
	case vr == def:
		return route.DefaultVRF, true
	case vr == route.DefaultVRF:
		return "", false
	}
	return vr, route.ValidateVRF(vr) == nil
}

// panosRouteName derives the name of the route on prefix p: "rp-10_210_10_0-24",
// "rp-2001_db8_100_1__-64". An IPv6 prefix whose text would not fit in panosNameMax (with room
// for the "-N" suffix panosFreeName may add) is named by a digest of its text instead:
// "rp-" + 20 hex digits of SHA-256 + "-" + length. The name only marks ownership and keeps
// entries apart; the route itself is read from the entry's destination.
func panosRouteName(p netip.Prefix) string {
	repl := strings.NewReplacer(".", "_", ":", "_")
	name := panosOwnerPrefix + repl.Replace(p.Addr().String()) + "-" + strconv.Itoa(p.Bits())
	if len(name) <= panosNameMax-3 {
		return name
	}
	sum := sha256.Sum256([]byte(p.String()))
	return panosOwnerPrefix + hex.EncodeToString(sum[:10]) + "-" + strconv.Itoa(p.Bits())
}

// panosFamily is the routing-table keyword of a route's address family.
func panosFamily(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "ip"
	}
	return "ipv6"
}

// panosEntryPath is "network virtual-router VR routing-table ip static-route NAME".
func panosEntryPath(vr, family, name string) string {
	return "network virtual-router " + vr + " routing-table " + family + " static-route " + name
}

// panosSetLine renders the add of r under name. vr and ifc were checked (PANOSCheck,
// route.Validate), the rest are netip values.
func panosSetLine(vr, name, ifc string, r route.Route) string {
	fam := panosFamily(r.Prefix)
	nh := "ip-address"
	if fam == "ipv6" {
		nh = "ipv6-address"
	}
	line := "set " + panosEntryPath(vr, fam, name) + " destination " + r.Prefix.String() + " nexthop " + nh + " " + r.NextHop.String()
	if ifc != "" {
		line += " interface " + ifc
	}
	return line
}

// panosDeleteLine renders the delete of the entry name.
func panosDeleteLine(vr, family, name string) string {
	return "delete " + panosEntryPath(vr, family, name)
}

// PANOSPreview renders ops as the lines the paloalto_panos driver sends: configure, one line
// per op, commit. Each route is named from its prefix; on the firewall, a delete uses the name
// the route was read back under, and an add whose name is taken by another next hop of the
// same prefix gets a "-2" suffix. Deletes of routes the firewall does not hold under an "rp-"
// name are dropped before sending; the preview cannot see the firewall and shows them all.
func PANOSPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := checkOps(cfg, ops); err != nil {
		return nil, err
	}
	if err := PANOSCheck(cfg); err != nil {
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "preview", "%w", err)
	}
	lines := []string{"configure"}
	for _, op := range ops {
		vr := panosVR(cfg, op.Route.VRF)
		name := panosRouteName(op.Route.Prefix)
		if op.Action == route.ActionDelete {
			lines = append(lines, panosDeleteLine(vr, panosFamily(op.Route.Prefix), name))
			continue
		}
		lines = append(lines, panosSetLine(vr, name, cfg.PANOS.Interface, op.Route))
	}
	return append(lines, "commit"), nil
}

// panosEntry is one static route entry as PAN-OS's set-format output lists it, leaf by leaf.
type panosEntry struct {
	VR, Family, Name string
	Destination      string // "" when the entry has none
	NextHopKind      string // ip-address, ipv6-address, next-vr, fqdn, discard, receive
	NextHop          string
	Interface        string
}

// panosKey identifies an entry: names are unique per virtual router and routing table.
type panosKey struct{ VR, Family, Name string }

// panosConfig is what parsePANOSConfig read: every virtual router named, and every static
// route entry of every family, returnpath's or not.
type panosConfig struct {
	VRs     map[string]bool
	Entries map[panosKey]*panosEntry
	Order   []panosKey // first appearance, for stable results
}

// parsePANOSConfig reads the set-format output of "show network virtual-router" in
// configuration mode ("set cli config-output-format set"): one "set network virtual-router
// ..." line per leaf. Lines of any other form are skipped; a name PAN-OS printed quoted (it
// holds a space) is skipped too, as no name returnpath renders needs quotes.
func parsePANOSConfig(text string) panosConfig {
	c := panosConfig{VRs: map[string]bool{}, Entries: map[panosKey]*panosEntry{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != "set" || f[1] != "network" || f[2] != "virtual-router" || strings.HasPrefix(f[3], `"`) {
			continue
		}
		c.VRs[f[3]] = true
		if len(f) < 8 || f[4] != "routing-table" || (f[5] != "ip" && f[5] != "ipv6") || f[6] != "static-route" || strings.HasPrefix(f[7], `"`) {
			continue
		}
		k := panosKey{VR: f[3], Family: f[5], Name: f[7]}
		e := c.Entries[k]
		if e == nil {
			e = &panosEntry{VR: k.VR, Family: k.Family, Name: k.Name}
			c.Entries[k] = e
			c.Order = append(c.Order, k)
		}
		panosLeaves(e, f[8:])
	}
	return c
}

// panosLeaves reads "destination P", "interface IF", "nexthop KIND [VALUE]" and skips the
// other leaves of a static route (metric, admin-dist, bfd, path-monitor, route-table), which
// take one value each or more than returnpath reads; parsing stops at the first leaf it does
// not know.
func panosLeaves(e *panosEntry, f []string) {
	for len(f) > 0 {
		switch f[0] {
		case "destination", "interface", "metric", "admin-dist", "route-table":
			if len(f) < 2 {
				return
			}
			if f[0] == "destination" {
				e.Destination = f[1]
			} else if f[0] == "interface" {
				e.Interface = f[1]
			}
			f = f[2:]
		case "nexthop":
			if len(f) < 2 {
				return
			}
			e.NextHopKind, e.NextHop = f[1], ""
			if f[1] == "discard" || f[1] == "receive" {
				f = f[2:]
				continue
			}
			if len(f) < 3 {
				return
			}
			e.NextHop = f[2]
			f = f[3:]
		default:
			return
		}
	}
}

// route returns the route an entry holds when it is returnpath's: an "rp-" name, a masked
// destination and a next hop address of the routing table's family. Anything else (another
// name, a next-vr, discard or fqdn next hop, a missing leaf) is someone else's.
func (e *panosEntry) route(vrf string) (route.Route, bool) {
	if !strings.HasPrefix(e.Name, panosOwnerPrefix) {
		return route.Route{}, false
	}
	wantKind := "ip-address"
	if e.Family == "ipv6" {
		wantKind = "ipv6-address"
	}
	if e.NextHopKind != wantKind {
		return route.Route{}, false
	}
	p, err := netip.ParsePrefix(e.Destination)
	if err != nil {
		return route.Route{}, false
	}
	nh, err := netip.ParseAddr(e.NextHop)
	if err != nil {
		return route.Route{}, false
	}
	r := route.Route{VRF: vrf, Prefix: p, NextHop: nh}
	if r.Validate() != nil || (e.Family == "ip") != p.Addr().Is4() {
		return route.Route{}, false
	}
	return r, true
}

// panosOwned is one route returnpath owns, with the entry it lives in.
type panosOwned struct {
	Route route.Route
	Key   panosKey
}

// owned returns the routes of c that returnpath owns, in virtual routers it can address.
func (c panosConfig) owned(cfg drivers.Config) []panosOwned {
	var out []panosOwned
	for _, k := range c.Order {
		vrf, ok := panosVRF(cfg, k.VR)
		if !ok {
			continue
		}
		if r, ok := c.Entries[k].route(vrf); ok {
			out = append(out, panosOwned{Route: r, Key: k})
		}
	}
	return out
}

// panosPlan turns ops into the lines of one batch against the firewall's configuration c,
// simulating each op on the entries so that the batch does what the ops say in order:
//   - an add of a route the firewall already holds under an "rp-" name sends nothing;
//   - an add takes the name derived from its prefix, or, when an entry of that name exists
//     (another next hop of the prefix, or any entry someone else made), the first free
//     "NAME-2" ... "NAME-9": a set on an existing name would merge into that entry;
//   - a delete sends "delete" for the entry the route was read back under, and nothing when
//     the firewall holds no such route of returnpath's (it is gone, or it is someone else's).
//
// index[i] is the op lines[i] renders. An add into a virtual router that does not exist is
// refused (PAN-OS's "set" would create the virtual router): bad is its index, -1 when none.
func panosPlan(cfg drivers.Config, c panosConfig, ops []route.RouteOp) (lines []string, index []int, bad int, err error) {
	byRoute := map[route.Route]panosKey{}
	for _, o := range c.owned(cfg) {
		if _, dup := byRoute[o.Route]; !dup {
			byRoute[o.Route] = o.Key
		}
	}
	taken := make(map[panosKey]bool, len(c.Entries))
	for k := range c.Entries {
		taken[k] = true
	}
	for i, op := range ops {
		r := op.Route
		vr := panosVR(cfg, r.VRF)
		fam := panosFamily(r.Prefix)
		k, have := byRoute[r]
		if op.Action == route.ActionDelete {
			if have {
				lines = append(lines, panosDeleteLine(k.VR, k.Family, k.Name))
				index = append(index, i)
				delete(byRoute, r)
				delete(taken, k)
			}
			continue
		}
		if have {
			continue
		}
		if !c.VRs[vr] {
			return nil, nil, i, errNoVR
		}
		name := panosFreeName(panosRouteName(r.Prefix), func(n string) bool { return taken[panosKey{vr, fam, n}] })
		if name == "" {
			return nil, nil, i, errNoName
		}
		k = panosKey{VR: vr, Family: fam, Name: name}
		lines = append(lines, panosSetLine(vr, name, cfg.PANOS.Interface, r))
		index = append(index, i)
		byRoute[r] = k
		taken[k] = true
	}
	return lines, index, -1, nil
}

type planError string

func (e planError) Error() string { return string(e) }

const (
	errNoVR   planError = "the virtual router does not exist on the firewall (PAN-OS would create it); nothing was sent"
	errNoName planError = "nine entries of this prefix already exist; nothing was sent"
)

// panosFreeName returns base, or base-2 ... base-9, whichever is not taken; "" when all are.
func panosFreeName(base string, taken func(string) bool) string {
	if !taken(base) {
		return base
	}
	for n := 2; n <= 9; n++ {
		if name := base + "-" + strconv.Itoa(n); !taken(name) {
			return name
		}
	}
	return ""
}

// panosPromptRE matches a line that begins with a PAN-OS prompt, operational
// ("admin@PA-VM>") or configuration ("admin@PA-VM#"), capturing what follows it: the echoed
// command. The pattern is scrapligo's paloalto_panos privilege-level pattern.
var panosPromptRE = regexp.MustCompile(`^[\w._-]+@[\w.()_-]+[>#]\s?(.*)$`)

// panosConfigPromptEnd matches the configuration prompt at the very end of the output,
// panosExecPromptEnd the operational one.
var (
	panosConfigPromptEnd = regexp.MustCompile(`(?:^|\n)[\w._-]+@[\w.()_-]+#\s?$`)
	panosExecPromptEnd   = regexp.MustCompile(`(?:^|\n)[\w._-]+@[\w.()_-]+>\s?$`)
)

// panosResult is what PAN-OS answered to one line of a pushed batch.
type panosResult struct {
	Echo   string
	Output []string // non-empty lines after the echo, without the "[edit]" context line
}

// splitPANOSTranscript splits PAN-OS's answer to a batch into one result per line sent, as
// splitEOSTranscript does: the transcript opens with the first line's echo and every prompt
// opens the next result. In configuration mode PAN-OS prints the context line "[edit]" before
// each prompt (PAN-OS CLI Quick Start, "Navigate the CLI"); it is not output of the command.
func splitPANOSTranscript(transcript string) []panosResult {
	lines := strings.Split(strings.ReplaceAll(transcript, "\r", ""), "\n")
	out := []panosResult{{Echo: strings.TrimSpace(lines[0])}}
	for _, line := range lines[1:] {
		if m := panosPromptRE.FindStringSubmatch(line); m != nil {
			out = append(out, panosResult{Echo: strings.TrimSpace(m[1])})
			continue
		}
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "[edit") {
			out[len(out)-1].Output = append(out[len(out)-1].Output, t)
		}
	}
	return out
}

// panosRefusal returns what PAN-OS printed after a set or delete line, or "" when it printed
// nothing. An accepted configuration line prints nothing but the context line, so any text is
// taken as a refusal ("Invalid syntax.", "Unknown command: ...", "Validation Error: ..."):
// the batch is then reverted rather than committed with a line whose effect is unknown.
func panosRefusal(output []string) string {
	return strings.Join(output, "\n")
}

// panosCommitOK and panosCommitFailed are the final lines of PAN-OS's "commit" in the CLI
// ("Commit job N is in progress ... 100% / Configuration committed successfully", or
// "Commit failed"); netmiko's PaloAltoPanosBase.commit looks for the first.
const (
	panosCommitOK     = "Configuration committed successfully"
	panosCommitFailed = "Commit failed"
)

// panosVersion turns "show system info" into one line: "PA-VM, PAN-OS 10.1.3" from its model
// and sw-version fields (hostname when the model is missing).
func panosVersion(out string) string {
	fields := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	model := fields["model"]
	if model == "" {
		model = fields["hostname"]
	}
	switch {
	case model != "" && fields["sw-version"] != "":
		return "Palo Alto Networks " + model + ", PAN-OS " + fields["sw-version"]
	case fields["sw-version"] != "":
		return "PAN-OS " + fields["sw-version"]
	}
	return ""
}
