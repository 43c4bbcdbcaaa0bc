// Package asa is a test-support emulation of a Cisco ASA's CLI over SSH (routed mode, single
// context), for the cisco_asa driver's tests. No ASA image can run on the project's machine,
// so the driver is tested against this: an in-process SSH server on 127.0.0.1 that keeps the
// static routes ("route" and "ipv6 route") and answers the few commands the driver sends, as
// Cisco documents them.
//
// Sources (read through the project's search tool):
//   - "route if_name dest_ip mask gateway_ip [distance]", default distance 1, up to three
//     equal-cost routes to a destination per interface, no equal-cost routes across
//     interfaces, and "ERROR: Cannot add route entry, possible conflict with existing
//     routes.": Cisco ASA Series CLI Configuration Guide 9.0 and ASA 5500 Series
//     Configuration Guide using the CLI, "Configuring Static and Default Routes".
//   - "ipv6 route if_name ipv6-prefix/prefix-length ipv6-address [administrative-distance]":
//     Cisco ASA Series Command Reference, I - R Commands, "ipv6 route".
//   - Prompts "hostname>", "hostname#", "hostname(config)#"; "enable" asking "Password:";
//     the pager "<--- More --->" answered with a space; "terminal pager 0" turning it off
//     for the session: the ASA CLI guides' "Command Modes and Prompts" and "Command Output
//     Paging", and the ASA profiles of netmiko and NOC project.
//   - "ERROR: % Invalid input detected at '^' marker." under a caret line: ASA's form of the
//     Cisco parser error.
//   - "show version" opening with "Cisco Adaptive Security Appliance Software Version
//     9.16(2)", in the layout of an ASAv's output.
//   - "show running-config route" printing each route with its distance.
//
// What it does not emulate: multiple context mode, transparent mode, and any command but the
// few above; "track", "tunneled" and "show route"; installation into a routing table (a route
// is configured, nothing more) and the check that the gateway lies on the interface's
// network; the wording ASA uses for a refused gateway, a netmask that does not fit the
// address, or a "no route" of a route it does not hold (Cisco does not document them: the
// emulation refuses a multicast, class E, broadcast or unspecified gateway and a bad netmask
// with the invalid-input error at the word, and a missing route with "ERROR: Route entry not
// found"); the wording after a wrong enable secret ("Invalid password", three attempts, then
// "Access denied.") beyond what netmiko expects; ASA 9.12's demand to set an enable password
// at the first "enable"; abbreviations, "?" help, line editing, and the order of routes in
// the running configuration beyond insertion order.
package asa

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/cliserver"
)

// Route is one configured static route.
type Route struct {
	Interface string // nameif
	Prefix    netip.Prefix
	NextHop   netip.Addr
	Distance  int // 0 means 1
}

func (r Route) same(o Route) bool {
	return r.Interface == o.Interface && r.Prefix == o.Prefix && r.NextHop == o.NextHop
}

// Options configure a Device.
type Options struct {
	Hostname   string   // default "ciscoasa"
	Interfaces []string // nameifs; default inside, outside, dmz
	Username   string
	Password   string
	// EnablePassword is the enable secret; "" is an empty one (Return at "Password:").
	EnablePassword string
	// AutoEnable lands the login at "#", as "aaa authorization exec ... auto-enable" does.
	AutoEnable bool
	// IgnoreTerminalPager makes "terminal pager 0" succeed without turning paging off, so that
	// every long output pages at PageLines lines: a client must answer <--- More --->.
	IgnoreTerminalPager bool
	PageLines           int    // ASA's default "pager lines 24"
	Version             string // default "9.16(2)"
}

// Device is an emulated ASA listening on 127.0.0.1.
type Device struct {
	opts              Options
	*cliserver.Server // SSH: Addr, HostKey, Close

	mu         sync.Mutex
	routes     []Route // in insertion order, as the running configuration lists them
	failCommit string  // printed at the failAt-th next route line, which then changes nothing
	failAt     int
	dropCommit bool // close the connection after the next route line, once applied
	commits    int
}

// Start starts a device without routes.
func Start(opts Options) (*Device, error) {
	if opts.Hostname == "" {
		opts.Hostname = "ciscoasa"
	}
	if len(opts.Interfaces) == 0 {
		opts.Interfaces = []string{"inside", "outside", "dmz"}
	}
	if opts.PageLines <= 0 {
		opts.PageLines = 24
	}
	if opts.Version == "" {
		opts.Version = "9.16(2)"
	}
	d := &Device{opts: opts}
	srv, err := cliserver.Start(cliserver.Options{
		Username: opts.Username,
		Password: opts.Password,
		Shell: func(s *cliserver.Session) {
			(&cli{d: d, s: s, paging: true, enabled: opts.AutoEnable}).run()
		},
	})
	if err != nil {
		return nil, err
	}
	d.Server = srv
	return d, nil
}

// Routes returns the configured routes in configuration order.
func (d *Device) Routes() []Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.routes)
}

// Set configures r out of band (replacing the distance of the same route), without ASA's
// checks.
func (d *Device) Set(r Route) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.set(r)
}

func (d *Device) set(r Route) {
	if i := slices.IndexFunc(d.routes, r.same); i >= 0 {
		d.routes[i] = r
		return
	}
	d.routes = append(d.routes, r)
}

// Delete removes the route out of band.
func (d *Device) Delete(nameif string, p netip.Prefix, nh netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.routes = slices.DeleteFunc(d.routes, Route{Interface: nameif, Prefix: p, NextHop: nh}.same)
}

// FailNextCommit makes the next route line ("route", "ipv6 route" or their "no" form) print
// text and change nothing, as when ASA refuses it.
func (d *Device) FailNextCommit(text string) { d.FailCommitAt(1, text) }

// FailCommitAt is FailNextCommit for the n-th next route line that parses (1 is the next).
func (d *Device) FailCommitAt(n int, text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failCommit, d.failAt = text, n
}

// DropNextCommit makes the next route line take effect and then close the connection before
// answering: the client cannot know how much of its batch landed.
func (d *Device) DropNextCommit() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropCommit = true
}

// Commits returns how many route lines ASA applied. ASA applies each line at once; there is
// no commit of a batch.
func (d *Device) Commits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commits
}

// cli is one login session's command-line interface.
type cli struct {
	d       *Device
	s       *cliserver.Session
	paging  bool
	enabled bool
	config  bool
	prompt  string // the prompt last printed, for the caret line
}

func (c *cli) currentPrompt() string {
	h := c.d.opts.Hostname
	switch {
	case c.config:
		return h + "(config)# "
	case c.enabled:
		return h + "# "
	}
	return h + "> "
}

func (c *cli) run() {
	for {
		c.prompt = c.currentPrompt()
		if !c.s.Write(c.prompt) {
			return
		}
		line, ok := c.s.ReadLine()
		if !ok {
			return
		}
		out, quit := c.handle(line)
		if quit {
			return
		}
		if !c.output(out) {
			return
		}
	}
}

func (c *cli) output(out string) bool {
	if !c.paging {
		return c.s.Write(out)
	}
	return c.s.Page(out, c.d.opts.PageLines, "<--- More --->")
}

// invalid is ASA's parser error, with a caret under the word at byte offset at of line.
func (c *cli) invalid(at int) string {
	return strings.Repeat(" ", len(c.prompt)+at) + "^\nERROR: % Invalid input detected at '^' marker.\n"
}

// fields splits line into words with their byte offsets.
func fields(line string) ([]string, []int) {
	var words []string
	var at []int
	for i := 0; i < len(line); {
		if line[i] == ' ' || line[i] == '\t' {
			i++
			continue
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		words = append(words, line[i:j])
		at = append(at, i)
		i = j
	}
	return words, at
}

// handle runs one command and returns its output; quit ends the session.
func (c *cli) handle(line string) (string, bool) {
	f, at := fields(line)
	if len(f) == 0 {
		return "", false
	}
	switch {
	case (f[0] == "exit" || f[0] == "quit") && len(f) == 1 && !c.config:
		return "\nLogoff\n\n", true
	case c.config:
		return c.configure(f, at), false
	case !c.enabled && f[0] == "enable" && len(f) == 1:
		return c.enable()
	case !c.enabled:
		return c.invalid(at[0]), false
	}
	switch {
	case f[0] == "enable" && len(f) == 1:
		return "", false
	case f[0] == "disable" && len(f) == 1:
		c.enabled = false
	case f[0] == "configure" && len(f) == 2 && f[1] == "terminal":
		c.config = true
	case f[0] == "terminal" && len(f) == 3 && f[1] == "pager":
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 || n > 2147483647 {
			return c.invalid(at[2]), false
		}
		if !c.d.opts.IgnoreTerminalPager {
			c.paging = n != 0
		}
	case f[0] == "show" && len(f) == 3 && f[1] == "running-config" && (f[2] == "route" || f[2] == "ipv6"):
		return c.show(f[2] == "ipv6"), false
	case f[0] == "show" && len(f) == 2 && f[1] == "version":
		return c.version(), false
	default:
		return c.invalid(at[len(at)-1]), false
	}
	return "", false
}

// enable asks for the enable secret, three times at most.
func (c *cli) enable() (string, bool) {
	for range 3 {
		if !c.s.Write("Password: ") {
			return "", true
		}
		pw, ok := c.s.ReadSecret()
		if !ok {
			return "", true
		}
		if pw == c.d.opts.EnablePassword {
			c.enabled = true
			return "", false
		}
		if !c.s.Write("Invalid password\n") {
			return "", true
		}
	}
	return "Access denied.\n", false
}

// configure runs a command at "(config)#".
func (c *cli) configure(f []string, at []int) string {
	switch {
	case (f[0] == "end" || f[0] == "exit") && len(f) == 1:
		c.config = false
		return ""
	case f[0] == "show" && len(f) == 3 && f[1] == "running-config" && (f[2] == "route" || f[2] == "ipv6"):
		return c.show(f[2] == "ipv6")
	}
	del := f[0] == "no"
	if del {
		f, at = f[1:], at[1:]
		if len(f) == 0 {
			return c.invalid(0)
		}
	}
	v6 := f[0] == "ipv6"
	if v6 {
		f, at = f[1:], at[1:]
		if len(f) == 0 || f[0] != "route" {
			return c.invalid(at[0])
		}
	}
	if f[0] != "route" {
		return c.invalid(at[0])
	}
	r, bad := c.parseRoute(f, at, v6)
	if bad >= 0 {
		return c.invalid(bad)
	}
	return c.apply(r, del)
}

// parseRoute reads "route IF A MASK NH [D]" or (v6) "route IF P NH [D]"; bad is the offset of
// the first word ASA would refuse, or -1.
func (c *cli) parseRoute(f []string, at []int, v6 bool) (Route, int) {
	n := 5
	if v6 {
		n = 4
	}
	if len(f) < n || len(f) > n+1 {
		return Route{}, at[len(at)-1]
	}
	if !slices.Contains(c.d.opts.Interfaces, f[1]) {
		return Route{}, at[1]
	}
	r := Route{Interface: f[1], Distance: 1}
	var nhWord int
	if v6 {
		p, err := netip.ParsePrefix(f[2])
		if err != nil || !p.Addr().Is6() || p.Masked() != p {
			return Route{}, at[2]
		}
		r.Prefix, nhWord = p, 3
	} else {
		a, err := netip.ParseAddr(f[2])
		if err != nil || !a.Is4() {
			return Route{}, at[2]
		}
		bits := maskBits(f[3])
		if bits < 0 || netip.PrefixFrom(a, bits).Masked().Addr() != a {
			return Route{}, at[3]
		}
		r.Prefix, nhWord = netip.PrefixFrom(a, bits), 4
	}
	nh, err := netip.ParseAddr(f[nhWord])
	if err != nil || nh.Is6() != v6 || nh.IsMulticast() || nh.IsUnspecified() || nh.Zone() != "" ||
		(nh.Is4() && (nh.As4()[0] >= 240)) {
		return Route{}, at[nhWord]
	}
	r.NextHop = nh
	if len(f) == n+1 {
		dist, err := strconv.Atoi(f[n])
		if err != nil || dist < 1 || dist > 255 {
			return Route{}, at[n]
		}
		r.Distance = dist
	}
	return r, -1
}

// apply adds or removes r, honouring the commit hooks and ASA's limits on equal-cost routes.
func (c *cli) apply(r Route, del bool) string {
	d := c.d
	d.mu.Lock()
	if d.failCommit != "" {
		if d.failAt--; d.failAt == 0 {
			text := d.failCommit
			d.failCommit = ""
			d.mu.Unlock()
			return text + "\n"
		}
	}
	i := slices.IndexFunc(d.routes, r.same)
	switch {
	case del && i < 0:
		d.mu.Unlock()
		return "ERROR: Route entry not found\n"
	case del:
		d.routes = slices.Delete(d.routes, i, i+1)
	case i < 0 && conflict(d.routes, r):
		d.mu.Unlock()
		return "ERROR: Cannot add route entry, possible conflict with existing routes.\n"
	default:
		d.set(r)
	}
	d.commits++
	drop := d.dropCommit
	d.dropCommit = false
	d.mu.Unlock()
	if drop {
		c.s.Drop()
	}
	return ""
}

// conflict reports whether ASA refuses r next to rs: equal-cost routes to one destination
// must leave by one interface, three of them at most.
func conflict(rs []Route, r Route) bool {
	n := 0
	for _, o := range rs {
		if o.Prefix != r.Prefix || o.Distance != r.Distance {
			continue
		}
		if o.Interface != r.Interface {
			return true
		}
		n++
	}
	return n >= 3
}

// show prints "show running-config route" (IPv4) or the routes of "show running-config ipv6".
func (c *cli) show(v6 bool) string {
	c.d.mu.Lock()
	rs := slices.Clone(c.d.routes)
	c.d.mu.Unlock()
	var b strings.Builder
	for _, r := range rs {
		if r.Prefix.Addr().Is6() != v6 {
			continue
		}
		dist := max(r.Distance, 1)
		if v6 {
			fmt.Fprintf(&b, "ipv6 route %s %s %s", r.Interface, r.Prefix, r.NextHop)
			if dist != 1 {
				fmt.Fprintf(&b, " %d", dist)
			}
			b.WriteString("\n")
			continue
		}
		fmt.Fprintf(&b, "route %s %s %s %s %d\n", r.Interface, r.Prefix.Addr(), mask(r.Prefix.Bits()), r.NextHop, dist)
	}
	return b.String()
}

func (c *cli) version() string {
	return "\nCisco Adaptive Security Appliance Software Version " + c.d.opts.Version + " \n" +
		"SSP Operating System Version 2.10(1.162)\nDevice Manager Version 7.16(1)\n\n" +
		"Compiled on Tue 17-Aug-21 16:32 GMT by builders\nSystem image file is \"boot:/asa9162-smp-k8.bin\"\n" +
		"Config file at boot was \"startup-config\"\n\n" + c.d.opts.Hostname + " up 2 hours 12 mins\n\n" +
		"Hardware:   ASAv, 2048 MB RAM, CPU Lynnfield 3695 MHz,\nInternal ATA Compact Flash, 8192MB\n" +
		"Slot 1: ATA Compact Flash, 8192MB\nBIOS Flash Firmware Hub @ 0x1, 0KB\n\n\n" +
		" 0: Ext: Management0/0       : address is 5254.0009.d178, irq 10\n" +
		" 1: Ext: GigabitEthernet0/0  : address is 5254.000a.06f3, irq 11\n" +
		" 2: Int: Internal-Data0/0    : address is 0000.0100.0001, irq 0\n\n" +
		"License mode: Smart Licensing\nASAv Platform License State: Unlicensed\n"
}

func mask(bits int) string {
	var m [4]byte
	for i := range bits {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(m).String()
}

// maskBits returns the prefix length of a contiguous dotted netmask, or -1.
func maskBits(s string) int {
	for bits := 0; bits <= 32; bits++ {
		if mask(bits) == s {
			return bits
		}
	}
	return -1
}
