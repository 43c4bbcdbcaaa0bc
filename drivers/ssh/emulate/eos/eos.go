// Package eos is a test-support emulation of an Arista EOS switch's CLI over SSH, for the
// arista_eos driver's tests. No EOS image can run on the project's machine, so the driver is
// tested against this: an in-process SSH server on 127.0.0.1 that keeps a static route table
// and answers the few commands the driver sends, as Arista documents them.
//
// Sources (Arista's documentation, read through the project's search tool):
//   - Configuration sessions: https://arista.com/um-eos/eos-configuration-sessions-overview
//     ("configure session <name>" copies a snapshot of running-config into the session; the
//     commands entered change only the session; "commit" copies the session into
//     running-config; "abort" discards it; prompt "host(config-s-<name>)#").
//   - Static routes: https://www.arista.com/en/um-eos/eos-ipv4 (the "ip route" command:
//     "ip route [vrf V] PREFIX NEXTHOP [DISTANCE] [tag T] [name N]"), and for IPv6
//     https://www.arista.com/en/um-eos/eos-ipv6 (the "ipv6 route" command, the same form
//     with an IPv6 prefix and next hop; "show running-config section ipv6 route" lists them).
//   - CLI errors "% Invalid input" and "% Incomplete command", the exec prompt "host>" and the
//     privileged prompt "host#" after "enable": the EOS User Manual, "Command-Line Interface"
//     chapter (EOS 4.20.5F), and the examples in Arista Warrior, 2nd ed., ch. 33.
//   - "terminal length 0" turns paging off; with paging on, output stops at " --More-- " until a
//     key is pressed (EOS User Manual, "Command-Line Interface").
//
// What it does not emulate: any command other than those listed in Device.handle; enable
// passwords (enable always succeeds); "configure terminal"; commit timers; session limits and
// the 24-hour expiry of pending sessions; the ordering EOS uses for running-config beyond
// "default VRF first, then VRFs by name, then prefix and next hop"; distances, tags,
// interfaces and egress-vrf in route lines it prints (it stores only routes with a next hop
// address, and keeps any "name"); the exact wording EOS uses for a refused next hop (Arista
// does not document it; the emulation refuses multicast and reserved next hops with the
// parser's generic "% Invalid input"); and the wording of a failed commit (the emulation
// prints "% Cannot commit session ...", the marker scrapligo's arista_eos definition treats as
// a failure). Terminal control sequences, line editing and command abbreviations are not
// emulated either.
package eos

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/cliserver"
)

// Route is one static route in the emulated running-config.
type Route struct {
	VRF     string // "default" for the default VRF
	Prefix  netip.Prefix
	NextHop netip.Addr
	Name    string // the route's "name" (EOS's description of a static route), "" for none
}

type key struct {
	vrf    string
	prefix netip.Prefix
	nh     netip.Addr
}

// table is a route table keyed by VRF, prefix and next hop, as EOS keys static routes: a
// second "ip route" line with the same three replaces the first.
type table map[key]string

// Options configure a Device.
type Options struct {
	Hostname string // default "sw1"
	Username string
	Password string
	VRFs     []string // VRFs that exist besides default
	// IgnoreTerminalLength makes "terminal length 0" succeed without turning paging off, so
	// that every long output pages at PageLines lines: a client must answer --More--.
	IgnoreTerminalLength bool
	PageLines            int // default 24
	// OnCommit, when set, is called after every commit that applied a session, with the
	// running routes.
	OnCommit func([]Route)
}

// Device is an emulated EOS switch listening on 127.0.0.1.
type Device struct {
	opts              Options
	*cliserver.Server // SSH: Addr, HostKey, Close

	mu         sync.Mutex
	running    table
	failCommit string // text of the next commit's failure; "" for none
	dropCommit bool   // close the connection during the next commit, after applying it
	commits    int
}

// Start starts a device with an empty route table.
func Start(opts Options) (*Device, error) {
	if opts.Hostname == "" {
		opts.Hostname = "sw1"
	}
	if opts.PageLines <= 0 {
		opts.PageLines = 24
	}
	d := &Device{opts: opts, running: table{}}
	srv, err := cliserver.Start(cliserver.Options{
		Username: opts.Username,
		Password: opts.Password,
		Shell:    func(s *cliserver.Session) { (&cli{d: d, s: s}).run() },
	})
	if err != nil {
		return nil, err
	}
	d.Server = srv
	return d, nil
}

// Routes returns the running route table, sorted as running-config lists it.
func (d *Device) Routes() []Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sorted(d.running)
}

// Set adds or replaces a route in the running table, out of band.
func (d *Device) Set(r Route) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[key{r.VRF, r.Prefix, r.NextHop}] = r.Name
}

// Delete removes a route from the running table, out of band.
func (d *Device) Delete(vrf string, p netip.Prefix, nh netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.running, key{vrf, p, nh})
}

// FailNextCommit makes the next "commit" fail as a whole with text: running-config is left
// as it was and the session stays open, as when EOS's verification refuses a session.
func (d *Device) FailNextCommit(text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failCommit = text
}

// DropNextCommit makes the next "commit" apply the session and then close the connection
// before answering: the client cannot know whether it landed.
func (d *Device) DropNextCommit() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropCommit = true
}

// Commits returns how many commits applied a session.
func (d *Device) Commits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commits
}

func sorted(t table) []Route {
	out := make([]Route, 0, len(t))
	for k, name := range t {
		out = append(out, Route{VRF: k.vrf, Prefix: k.prefix, NextHop: k.nh, Name: name})
	}
	slices.SortFunc(out, func(a, b Route) int {
		if (a.VRF == "default") != (b.VRF == "default") {
			if a.VRF == "default" {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.VRF, b.VRF); c != 0 {
			return c
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		if c := a.Prefix.Bits() - b.Prefix.Bits(); c != 0 {
			return c
		}
		return a.NextHop.Compare(b.NextHop)
	})
	return out
}

// cli is one login session's command-line interface.
type cli struct {
	d      *Device
	s      *cliserver.Session
	priv   bool
	paging bool // terminal length other than 0
	// session is the open configuration session's name and candidate config, nil outside one.
	session   *string
	candidate table
}

func (c *cli) prompt() string {
	h := c.d.opts.Hostname
	switch {
	case c.session != nil:
		return h + "(config-s-" + *c.session + ")#"
	case c.priv:
		return h + "#"
	}
	return h + ">"
}

func (c *cli) run() {
	c.paging = true
	c.s.Serve(c.prompt, func(line string) (string, bool) { return c.handle(strings.TrimSpace(line)) }, c.output)
}

// output writes a command's output, paging it when paging is on.
func (c *cli) output(out string) bool {
	if !c.paging {
		return c.s.Write(out)
	}
	return c.s.Page(out, c.d.opts.PageLines, " --More-- ")
}

const (
	invalid    = "% Invalid input\n"
	incomplete = "% Incomplete command\n"
)

// handle runs one command and returns its output; quit ends the session.
func (c *cli) handle(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", false
	}
	switch {
	case f[0] == "exit" || f[0] == "logout":
		if c.session != nil {
			c.session = nil // leaves the session pending, as EOS does
			return "", false
		}
		return "", true
	case f[0] == "enable" && len(f) == 1:
		c.priv = true
		return "", false
	case f[0] == "disable" && len(f) == 1 && c.session == nil:
		c.priv = false
		return "", false
	case f[0] == "terminal" && len(f) == 3 && (f[1] == "length" || f[1] == "width"):
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 {
			return invalid, false
		}
		if f[1] == "length" && !c.d.opts.IgnoreTerminalLength {
			c.paging = n != 0
		}
		return "", false
	case f[0] == "terminal" && len(f) < 3:
		return incomplete, false
	case f[0] == "show":
		return c.show(f[1:]), false
	}
	if !c.priv {
		return invalid, false
	}
	if c.session == nil {
		if f[0] == "configure" && len(f) == 3 && f[1] == "session" {
			name := f[2]
			c.session = &name
			c.candidate = maps.Clone(c.d.snapshot())
			return "", false
		}
		if f[0] == "configure" && len(f) == 2 && f[1] == "session" {
			return incomplete, false
		}
		return invalid, false
	}
	switch {
	case f[0] == "end" && len(f) == 1:
		c.session = nil
		return "", false
	case f[0] == "abort" && len(f) == 1:
		c.session, c.candidate = nil, nil
		return "", false
	case f[0] == "commit" && len(f) == 1:
		return c.commit()
	case f[0] == "no" && len(f) > 1:
		return c.route(f[1:], true), false
	}
	return c.route(f, false), false
}

func (d *Device) snapshot() table {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.running)
}

// commit copies the candidate into running-config whole, or fails whole.
func (c *cli) commit() (string, bool) {
	d := c.d
	d.mu.Lock()
	if d.failCommit != "" {
		text := d.failCommit
		d.failCommit = ""
		d.mu.Unlock()
		return text + "\n", false
	}
	d.running = c.candidate
	d.commits++
	drop := d.dropCommit
	d.dropCommit = false
	routes := sorted(d.running)
	d.mu.Unlock()
	if d.opts.OnCommit != nil {
		d.opts.OnCommit(routes)
	}
	c.session, c.candidate = nil, nil
	if drop {
		c.s.Drop()
		return "", true
	}
	return "", false
}

// route applies "[no] ip[v6] route [vrf V] P NH [name N]" to the candidate.
func (c *cli) route(f []string, no bool) string {
	if len(f) < 2 || (f[0] != "ip" && f[0] != "ipv6") || f[1] != "route" {
		return invalid
	}
	v6 := f[0] == "ipv6"
	f = f[2:]
	vrf := "default"
	if len(f) >= 1 && f[0] == "vrf" {
		if len(f) < 2 {
			return incomplete
		}
		vrf = f[1]
		if vrf != "default" && !slices.Contains(c.d.opts.VRFs, vrf) {
			return "% VRF " + vrf + " does not exist\n"
		}
		f = f[2:]
	}
	if len(f) < 2 && !(no && len(f) == 1) {
		return incomplete
	}
	p, err := netip.ParsePrefix(f[0])
	if err != nil || p.Addr().Is6() != v6 || p != p.Masked() {
		return invalid
	}
	if no && len(f) == 1 {
		for k := range c.candidate {
			if k.vrf == vrf && k.prefix == p {
				delete(c.candidate, k)
			}
		}
		return ""
	}
	nh, err := netip.ParseAddr(f[1])
	if err != nil || nh.Is6() != v6 || nh.IsMulticast() || nh.IsUnspecified() || reserved(nh) {
		return invalid
	}
	name := ""
	rest := f[2:]
	for len(rest) > 0 {
		switch rest[0] {
		case "name":
			if len(rest) < 2 {
				return incomplete
			}
			name, rest = rest[1], rest[2:]
		default:
			return invalid
		}
	}
	k := key{vrf, p, nh}
	if no {
		delete(c.candidate, k)
		return ""
	}
	c.candidate[k] = name
	return ""
}

// reserved reports the IPv4 next hops EOS cannot resolve: class E and limited broadcast.
func reserved(a netip.Addr) bool {
	return a.Is4() && netip.MustParsePrefix("240.0.0.0/4").Contains(a)
}

// show answers "show version" and "show running-config section ip route" (and "... ipv6
// route"), rendering the running table as EOS prints static routes.
func (c *cli) show(f []string) string {
	if len(f) == 0 {
		return incomplete
	}
	if len(f) == 1 && f[0] == "version" {
		// The first lines of EOS's "show version", in its layout (model, then labelled
		// fields); the values are the emulation's own.
		return "Arista vEOS-lab\nHardware version:\nSerial number: EMULATED\nSystem MAC address:  0000.0000.0000\n\n" +
			"Software image version: 4.28.3M\nArchitecture: x86_64\n"
	}
	if f[0] != "running-config" {
		return invalid
	}
	if !c.priv {
		return "% Invalid input (privileged mode required)\n"
	}
	if len(f) != 4 || f[1] != "section" || f[3] != "route" || (f[2] != "ip" && f[2] != "ipv6") {
		return invalid // only the sections the driver reads are emulated
	}
	v6 := f[2] == "ipv6"
	var b strings.Builder
	for _, r := range sorted(c.d.snapshot()) {
		if r.Prefix.Addr().Is6() != v6 {
			continue
		}
		b.WriteString(f[2] + " route ")
		if r.VRF != "default" {
			fmt.Fprintf(&b, "vrf %s ", r.VRF)
		}
		fmt.Fprintf(&b, "%s %s", r.Prefix, r.NextHop)
		if r.Name != "" {
			b.WriteString(" name " + r.Name)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
