// Package panos is a test-support emulation of a Palo Alto Networks firewall's CLI (PAN-OS)
// over SSH, for the paloalto_panos driver's tests. No PAN-OS image can run on the project's
// machine, so the driver is tested against this: an in-process SSH server on 127.0.0.1 that
// keeps virtual routers with static routes, a candidate and a running configuration, and
// answers the commands the driver sends, as Palo Alto documents them.
//
// Sources (read through the project's search tool):
//   - PAN-OS CLI Quick Start, "Navigate the CLI" (docs.paloaltonetworks.com, 9.1): "configure"
//     prints "Entering configuration mode", configuration mode prints the context line
//     "[edit]" before each "username@hostname#" prompt; "show <path>" in configuration mode
//     prints that part of the candidate configuration, by default as an indented hierarchy.
//   - "set cli config-output-format" (WildFire appliance CLI, same PAN-OS CLI): default,
//     json, set or xml output for configuration commands; "show config running" is XML only
//     (theworldsgonemad.net, "Palo commit and rollback"), which is why reads use the
//     configuration-mode show in set format.
//   - PAN-OS 10.0 configure CLI command hierarchy: "check pending-changes", "revert config",
//     "commit"; the operational prompt "admin@PA-VM>" and the markers "Unknown command:",
//     "Invalid Syntax.", "Validation Error:" from scrapligo's paloalto_panos definition.
//   - Commit output in the CLI: "Commit job 7 is in progress. Use Ctrl+C to return to command
//     prompt", progress dots and percentages, "Configuration committed successfully" (a
//     PA-VM transcript; netmiko's PaloAltoPanosBase.commit waits for "100%" and that line).
//   - Static route leaves (destination, nexthop ip-address | ipv6-address | next-vr |
//     discard, interface, metric, bfd, path-monitor, route-table) from the PAN-OS schema as
//     PaloAltoNetworks/pan-os-codegen describes it; a static route's name is up to 31
//     characters of letters, digits, spaces, hyphens and underscores (xsoar.pan.dev, "PAN-OS -
//     Add Static Routes").
//   - "show system info" prints "field: value" lines (hostname, model, sw-version, ...).
//   - The pager prompt "--more--" (netmiko's PaloAltoPanosBase); "set cli pager off" turns it
//     off.
//
// What it does not emulate: any command other than those in cli.handle; the hierarchy under
// virtual routers other than interfaces and static routes; "run"; partial commits, commit
// locks, commit queues and how long commits take; the exact text PAN-OS prints for a refused
// value (the emulation prints the parser's "Invalid syntax." for every value it refuses,
// including multicast and reserved next hops, and "Validation Error:" lines only in a failed
// commit); what "revert config" and a delete of a missing entry print (nothing here); json and
// xml output formats (shown as the default format); command abbreviation and completion;
// administrators' per-user change tracking. Like PAN-OS, a "set" under a virtual router that
// does not exist creates it, and "set" on an existing entry merges into it.
package panos

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/cliserver"
)

// Route is one static route entry of a virtual router.
type Route struct {
	VR        string
	Name      string
	Prefix    netip.Prefix // the destination; the zero Prefix for an entry without one
	NextHop   netip.Addr   // next hop address; invalid when NextVR is set or Discard
	NextVR    string       // "nexthop next-vr"
	Discard   bool         // "nexthop discard"
	Interface string
	Metric    int // 0: not set
	// WebDefaults makes the entry list the leaves the web interface stores with every static
	// route (bfd profile None, path monitoring off, metric 10, route-table unicast).
	WebDefaults bool
}

// IPv6 reports whether the route lives in the ipv6 routing table.
func (r Route) IPv6() bool {
	if r.Prefix.IsValid() {
		return r.Prefix.Addr().Is6()
	}
	return r.NextHop.IsValid() && r.NextHop.Is6()
}

type key struct {
	vr   string
	ipv6 bool
	name string
}

// config is one configuration: virtual routers (with their interfaces) and static routes.
type config struct {
	vrs    map[string][]string
	routes map[key]Route
}

func (c config) clone() config {
	out := config{vrs: make(map[string][]string, len(c.vrs)), routes: maps.Clone(c.routes)}
	for vr, ifs := range c.vrs {
		out.vrs[vr] = slices.Clone(ifs)
	}
	return out
}

func (c config) equal(o config) bool {
	return maps.EqualFunc(c.vrs, o.vrs, slices.Equal) && maps.Equal(c.routes, o.routes)
}

// Options configure a Device.
type Options struct {
	Hostname string // default "PA-VM"
	Username string
	Password string
	// VirtualRouters maps each virtual router that exists to its interfaces; default
	// {"default": [ethernet1/1 ethernet1/2]}.
	VirtualRouters map[string][]string
	// IgnorePagerOff makes "set cli pager off" succeed without turning the pager off, so that
	// every long output stops at "--more--" every PageLines lines.
	IgnorePagerOff bool
	PageLines      int    // default 24
	Version        string // sw-version in show system info; default "10.1.3"
	// OnCommit, when set, is called after every successful commit with the running routes.
	OnCommit func([]Route)
}

// Device is an emulated PAN-OS firewall listening on 127.0.0.1.
type Device struct {
	opts              Options
	*cliserver.Server // SSH: Addr, HostKey, Close

	mu         sync.Mutex
	running    config
	candidate  config // shared by every session, as PAN-OS's candidate is
	failCommit string
	dropCommit bool
	commits    int
	jobs       int
}

// Start starts a firewall with its virtual routers and no static routes.
func Start(opts Options) (*Device, error) {
	if opts.Hostname == "" {
		opts.Hostname = "PA-VM"
	}
	if opts.PageLines <= 0 {
		opts.PageLines = 24
	}
	if opts.Version == "" {
		opts.Version = "10.1.3"
	}
	if opts.VirtualRouters == nil {
		opts.VirtualRouters = map[string][]string{"default": {"ethernet1/1", "ethernet1/2"}}
	}
	d := &Device{opts: opts, running: config{vrs: map[string][]string{}, routes: map[key]Route{}}}
	for vr, ifs := range opts.VirtualRouters {
		d.running.vrs[vr] = slices.Clone(ifs)
	}
	d.candidate = d.running.clone()
	srv, err := cliserver.Start(cliserver.Options{
		Username: opts.Username,
		Password: opts.Password,
		Shell:    func(s *cliserver.Session) { (&cli{d: d, s: s, pager: true, format: "default"}).run() },
	})
	if err != nil {
		return nil, err
	}
	d.Server = srv
	return d, nil
}

// Routes returns the running static routes, sorted by virtual router, family and name.
func (d *Device) Routes() []Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sorted(d.running.routes)
}

// Set adds or replaces a route in the running configuration (and the candidate), out of
// band, as a commit by someone else would.
func (d *Device) Set(r Route) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := key{r.VR, r.IPv6(), r.Name}
	d.running.routes[k] = r
	d.candidate.routes[k] = r
}

// Delete removes the route entry name of vr out of band, from running and candidate.
func (d *Device) Delete(vr string, ipv6 bool, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.running.routes, key{vr, ipv6, name})
	delete(d.candidate.routes, key{vr, ipv6, name})
}

// SetCandidate adds r to the candidate only: an uncommitted change, as another administrator
// editing the firewall leaves it.
func (d *Device) SetCandidate(r Route) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.candidate.routes[key{r.VR, r.IPv6(), r.Name}] = r
}

// Pending reports whether the candidate differs from the running configuration.
func (d *Device) Pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.candidate.equal(d.running)
}

// FailNextCommit makes the next "commit" fail with text as its validation error: the running
// configuration stays as it was and the candidate keeps the changes, as in PAN-OS.
func (d *Device) FailNextCommit(text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failCommit = text
}

// DropNextCommit makes the next "commit" apply the candidate and then close the connection
// before answering: the client cannot know whether it landed.
func (d *Device) DropNextCommit() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropCommit = true
}

// Commits returns how many commits changed the running configuration.
func (d *Device) Commits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commits
}

func sorted(m map[key]Route) []Route {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b Route) int {
		if c := strings.Compare(a.VR, b.VR); c != 0 {
			return c
		}
		if a.IPv6() != b.IPv6() {
			if a.IPv6() {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// cli is one login session's command-line interface.
type cli struct {
	d      *Device
	s      *cliserver.Session
	conf   bool
	pager  bool
	format string // "default" or "set"
}

func (c *cli) prompt() string {
	p := c.s.User + "@" + c.d.opts.Hostname
	if c.conf {
		return "[edit]\n" + p + "# "
	}
	return p + "> "
}

func (c *cli) run() {
	c.s.Serve(c.prompt, func(line string) (string, bool) { return c.handle(strings.TrimSpace(line)) }, c.output)
}

func (c *cli) output(out string) bool {
	if !c.pager {
		return c.s.Write(out)
	}
	return c.s.Page(out, c.d.opts.PageLines, "--more--")
}

const invalid = "Invalid syntax.\n"

func unknown(word string) string { return "Unknown command: " + word + "\n" }

// handle runs one command and returns its output; quit ends the session.
func (c *cli) handle(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", false
	}
	if c.conf {
		return c.handleConf(f)
	}
	switch {
	case f[0] == "exit" || f[0] == "quit":
		return "", true
	case f[0] == "configure" && len(f) == 1:
		c.conf = true
		return "Entering configuration mode\n", false
	case len(f) == 4 && f[0] == "set" && f[1] == "cli":
		return c.setCLI(f[2], f[3]), false
	case len(f) == 3 && f[0] == "show" && f[1] == "system" && f[2] == "info":
		return c.systemInfo(), false
	case f[0] == "set" || f[0] == "show":
		return invalid, false
	}
	return unknown(f[0]), false
}

func (c *cli) setCLI(what, value string) string {
	switch {
	case what == "pager" && (value == "on" || value == "off"):
		if !c.d.opts.IgnorePagerOff || value == "on" {
			c.pager = value == "on"
		}
	case what == "scripting-mode" && (value == "on" || value == "off"):
	case what == "config-output-format" && slices.Contains([]string{"default", "json", "set", "xml"}, value):
		c.format = value
	default:
		return invalid
	}
	return ""
}

func (c *cli) systemInfo() string {
	o := c.d.opts
	return "hostname: " + o.Hostname + "\nip-address: 198.18.0.12\nnetmask: 255.255.255.0\n" +
		"mac-address: 00:00:5e:00:53:01\nuptime: 0 days, 1:02:03\nfamily: vm\nmodel: PA-VM\n" +
		"serial: EMULATED\nsw-version: " + o.Version + "\napp-version: 8700-7709\n" +
		"operational-mode: normal\n"
}

func (c *cli) handleConf(f []string) (string, bool) {
	d := c.d
	switch {
	case (f[0] == "exit" || f[0] == "quit") && len(f) == 1:
		c.conf = false
		return "", false
	case f[0] == "check" && len(f) == 2 && f[1] == "pending-changes":
		if d.Pending() {
			return "yes\n", false
		}
		return "no\n", false
	case f[0] == "revert" && len(f) == 2 && f[1] == "config":
		d.mu.Lock()
		d.candidate = d.running.clone()
		d.mu.Unlock()
		return "", false
	case f[0] == "commit" && len(f) == 1:
		return c.commit()
	case f[0] == "show":
		return c.show(f[1:]), false
	case f[0] == "set" || f[0] == "delete":
		d.mu.Lock()
		defer d.mu.Unlock()
		return c.edit(f[0] == "delete", f[1:]), false
	}
	return unknown(f[0]), false
}

// commit copies the candidate into the running configuration whole, or fails whole.
func (c *cli) commit() (string, bool) {
	d := c.d
	d.mu.Lock()
	d.jobs++
	out := fmt.Sprintf("Commit job %d is in progress. Use Ctrl+C to return to command prompt\n", d.jobs)
	text := d.failCommit
	d.failCommit = ""
	if text == "" {
		text = validate(d.candidate)
	}
	if text != "" {
		d.mu.Unlock()
		return out + "......55%\nValidation Error:\n " + text + "\nCommit failed\n", false
	}
	d.running = d.candidate.clone()
	d.commits++
	drop := d.dropCommit
	d.dropCommit = false
	routes := sorted(d.running.routes)
	d.mu.Unlock()
	if d.opts.OnCommit != nil {
		d.opts.OnCommit(routes)
	}
	if drop {
		c.s.Drop()
		return "", true
	}
	return out + "...........98%..............100%\n" + "Configuration committed successfully\n", false
}

// validate is the part of commit validation emulated: every static route needs a destination
// and a next hop.
func validate(c config) string {
	for _, r := range sorted(c.routes) {
		fam := "ip"
		if r.IPv6() {
			fam = "ipv6"
		}
		path := "network -> virtual-router -> " + r.VR + " -> routing-table -> " + fam + " -> static-route -> " + r.Name
		if !r.Prefix.IsValid() {
			return path + " -> destination is missing"
		}
		if !r.NextHop.IsValid() && r.NextVR == "" && !r.Discard {
			return path + " -> nexthop is missing"
		}
	}
	return ""
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,30}$`)
	vrRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$`)
	ifRE   = regexp.MustCompile(`^(?:ethernet[0-9]{1,2}/[0-9]{1,3}(?:\.[0-9]{1,4})?|ae[0-9]{1,2}(?:\.[0-9]{1,4})?|(?:loopback|tunnel|vlan)(?:\.[0-9]{1,4})?)$`)
)

// edit applies "set|delete network virtual-router VR [routing-table ip|ipv6 static-route NAME
// LEAVES...]" to the candidate. d.mu is held.
func (c *cli) edit(del bool, f []string) string {
	if len(f) < 3 || f[0] != "network" || f[1] != "virtual-router" {
		return invalid
	}
	vr := f[2]
	if !vrRE.MatchString(vr) {
		return invalid
	}
	cand := &c.d.candidate
	f = f[3:]
	if len(f) == 0 {
		if del {
			delete(cand.vrs, vr)
			for k := range cand.routes {
				if k.vr == vr {
					delete(cand.routes, k)
				}
			}
		} else if _, ok := cand.vrs[vr]; !ok {
			cand.vrs[vr] = nil
		}
		return ""
	}
	if len(f) < 4 || f[0] != "routing-table" || (f[1] != "ip" && f[1] != "ipv6") || f[2] != "static-route" || !nameRE.MatchString(f[3]) {
		return invalid
	}
	k := key{vr, f[1] == "ipv6", f[3]}
	if del {
		if len(f) != 4 {
			return invalid
		}
		delete(cand.routes, k)
		return ""
	}
	r, ok := cand.routes[k]
	if !ok {
		r = Route{VR: vr, Name: k.name}
	}
	if err := leaves(&r, k.ipv6, f[4:]); err != "" {
		return err
	}
	if _, ok := cand.vrs[vr]; !ok {
		cand.vrs[vr] = nil // "set" creates the virtual router, as PAN-OS does
	}
	cand.routes[k] = r
	return ""
}

// leaves merges "destination P", "nexthop ip-address|ipv6-address A", "nexthop next-vr VR",
// "nexthop discard", "interface IF" and "metric N" into r.
func leaves(r *Route, v6 bool, f []string) string {
	for len(f) > 0 {
		switch {
		case f[0] == "destination" && len(f) >= 2:
			p, err := netip.ParsePrefix(f[1])
			if err != nil || p.Addr().Is6() != v6 || p != p.Masked() {
				return invalid
			}
			r.Prefix, f = p, f[2:]
		case f[0] == "nexthop" && len(f) >= 2 && f[1] == "discard":
			r.NextHop, r.NextVR, r.Discard, f = netip.Addr{}, "", true, f[2:]
		case f[0] == "nexthop" && len(f) >= 3 && f[1] == "next-vr" && vrRE.MatchString(f[2]):
			r.NextHop, r.NextVR, r.Discard, f = netip.Addr{}, f[2], false, f[3:]
		case f[0] == "nexthop" && len(f) >= 3 && (f[1] == "ip-address" && !v6 || f[1] == "ipv6-address" && v6):
			a, err := netip.ParseAddr(f[2])
			if err != nil || a.Is6() != v6 || a.Zone() != "" || a.IsMulticast() || a.IsUnspecified() || reserved(a) {
				return invalid
			}
			r.NextHop, r.NextVR, r.Discard, f = a, "", false, f[3:]
		case f[0] == "interface" && len(f) >= 2 && ifRE.MatchString(f[1]):
			r.Interface, f = f[1], f[2:]
		case f[0] == "metric" && len(f) >= 2:
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 1 || n > 65535 {
				return invalid
			}
			r.Metric, f = n, f[2:]
		default:
			return invalid
		}
	}
	return ""
}

// reserved reports the IPv4 next hops that are no host's: class E and limited broadcast.
func reserved(a netip.Addr) bool {
	return a.Is4() && netip.MustParsePrefix("240.0.0.0/4").Contains(a)
}

// show answers "show network virtual-router [VR]" from the candidate, in the session's
// output format.
func (c *cli) show(f []string) string {
	if len(f) < 2 || len(f) > 3 || f[0] != "network" || f[1] != "virtual-router" {
		return invalid
	}
	c.d.mu.Lock()
	cand := c.d.candidate.clone()
	c.d.mu.Unlock()
	vrs := slices.Sorted(maps.Keys(cand.vrs))
	if len(f) == 3 {
		if _, ok := cand.vrs[f[2]]; !ok {
			return ""
		}
		vrs = []string{f[2]}
	}
	routes := sorted(cand.routes)
	if c.format == "set" {
		return showSet(cand, vrs, routes)
	}
	return showDefault(cand, vrs, routes)
}

// routeLeaves returns r's leaves as set-format suffixes, in the order PAN-OS stores them.
func routeLeaves(r Route) []string {
	var out []string
	switch {
	case r.Discard:
		out = append(out, "nexthop discard")
	case r.NextVR != "":
		out = append(out, "nexthop next-vr "+r.NextVR)
	case r.NextHop.IsValid() && r.NextHop.Is6():
		out = append(out, "nexthop ipv6-address "+r.NextHop.String())
	case r.NextHop.IsValid():
		out = append(out, "nexthop ip-address "+r.NextHop.String())
	}
	if r.WebDefaults {
		out = append(out, "bfd profile None", "path-monitor enable no", "path-monitor failure-condition any", "path-monitor hold-time 2")
	}
	if r.Interface != "" {
		out = append(out, "interface "+r.Interface)
	}
	switch {
	case r.Metric != 0:
		out = append(out, "metric "+strconv.Itoa(r.Metric))
	case r.WebDefaults:
		out = append(out, "metric 10")
	}
	if r.Prefix.IsValid() {
		out = append(out, "destination "+r.Prefix.String())
	}
	if r.WebDefaults {
		out = append(out, "route-table unicast")
	}
	return out
}

func showSet(cand config, vrs []string, routes []Route) string {
	var b strings.Builder
	for _, vr := range vrs {
		if ifs := cand.vrs[vr]; len(ifs) > 0 {
			fmt.Fprintf(&b, "set network virtual-router %s interface [ %s ]\n", vr, strings.Join(ifs, " "))
		} else {
			fmt.Fprintf(&b, "set network virtual-router %s\n", vr)
		}
		for _, r := range routes {
			if r.VR != vr {
				continue
			}
			fam := "ip"
			if r.IPv6() {
				fam = "ipv6"
			}
			for _, l := range routeLeaves(r) {
				fmt.Fprintf(&b, "set network virtual-router %s routing-table %s static-route %s %s\n", vr, fam, r.Name, l)
			}
		}
	}
	return b.String()
}

func showDefault(cand config, vrs []string, routes []Route) string {
	var b strings.Builder
	b.WriteString("virtual-router {\n")
	for _, vr := range vrs {
		fmt.Fprintf(&b, "  %s {\n", vr)
		if ifs := cand.vrs[vr]; len(ifs) > 0 {
			fmt.Fprintf(&b, "    interface [ %s ];\n", strings.Join(ifs, " "))
		}
		for _, fam := range []string{"ip", "ipv6"} {
			var in []Route
			for _, r := range routes {
				if r.VR == vr && r.IPv6() == (fam == "ipv6") {
					in = append(in, r)
				}
			}
			if len(in) == 0 {
				continue
			}
			fmt.Fprintf(&b, "    routing-table {\n      %s {\n        static-route {\n", fam)
			for _, r := range in {
				fmt.Fprintf(&b, "          %s {\n", r.Name)
				for _, l := range routeLeaves(r) {
					fmt.Fprintf(&b, "            %s;\n", l)
				}
				b.WriteString("          }\n")
			}
			b.WriteString("        }\n      }\n    }\n")
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}
