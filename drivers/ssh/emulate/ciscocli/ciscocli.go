// Package ciscocli is the part shared by returnpath's emulations of Cisco's line-by-line CLIs
// (drivers/ssh/emulate/nxos for NX-OS, drivers/ssh/emulate/iosxe for IOS XE): a device with a
// static route table, the exec and configuration modes both CLIs share ("configure terminal",
// "exit", "end"), "terminal length"/"terminal width", paging, and the test hooks. A dialect
// supplies what differs: the prompt, the syntax of route lines and sub-modes, error texts and
// show output.
//
// What both Cisco CLIs document and this package reproduces: a login with privilege 15 lands
// at the privileged prompt "host#"; "configure terminal" enters "host(config)#"; every
// configuration line takes effect in running-config as soon as it is accepted (there is no
// candidate configuration and no commit); a refused line changes nothing and the CLI stays
// where it was; "exit" leaves a sub-mode (or configuration mode), "end" returns to the
// privileged prompt from any configuration mode; a command the parser refuses is answered
// with a caret under the offending word and a "% ..." line. Sources are listed in the
// dialect packages.
//
// It is test support: nothing in returnpath's binary imports it.
package ciscocli

import (
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
	Name    string // the route's "name", "" for none
	Tag     uint32 // the route's "tag", 0 for none
}

// Key identifies a static route as both CLIs do: VRF, prefix and next hop. A second line with
// the same three replaces the first's attributes.
type Key struct {
	VRF     string
	Prefix  netip.Prefix
	NextHop netip.Addr
}

func (r Route) key() Key { return Key{r.VRF, r.Prefix, r.NextHop} }

// Dialect is what one Cisco CLI does differently.
type Dialect struct {
	// Hostname is the default hostname ("switch", "Router").
	Hostname string
	// PromptSpace makes the CLI print a space after "#" (NX-OS does; IOS XE does not).
	PromptSpace bool
	// More is the pager's marker, e.g. " --More-- ".
	More string
	// Invalid renders the parser's answer to a line it cannot read, the offending word at
	// byte offset at of line: the caret line and the error.
	Invalid func(prompt, line string, at int) string
	// Configure runs one configuration-mode line (already split into words, "no" included).
	Configure func(c *Conn, line string, f []string) string
	// Show answers "show ..." (f holds the words after "show" and the raw line).
	Show func(c *Conn, line string, f []string) string
}

// Options configure a Device.
type Options struct {
	Hostname string // default: the dialect's
	Username string
	Password string
	VRFs     []string // VRFs that exist besides default
	// IgnoreTerminalLength makes "terminal length 0" succeed without turning paging off, so
	// that every long output pages at PageLines lines: a client must answer the pager.
	IgnoreTerminalLength bool
	PageLines            int // default 24
}

// Device is an emulated Cisco device listening on 127.0.0.1.
type Device struct {
	opts              Options
	dl                Dialect
	*cliserver.Server // SSH: Addr, HostKey, Close

	mu        sync.Mutex
	running   map[Key]Route
	vrfs      []string
	failAfter int // route lines to accept before refusing one with failText; -1 for none
	failText  string
	dropAfter int // route lines to apply before the one after which the connection drops; -1 for none
	commits   int
}

// Start starts a device speaking dl with an empty route table.
func Start(dl Dialect, opts Options) (*Device, error) {
	if opts.Hostname == "" {
		opts.Hostname = dl.Hostname
	}
	if opts.PageLines <= 0 {
		opts.PageLines = 24
	}
	d := &Device{opts: opts, dl: dl, running: map[Key]Route{}, vrfs: slices.Clone(opts.VRFs), failAfter: -1, dropAfter: -1}
	srv, err := cliserver.Start(cliserver.Options{
		Username: opts.Username,
		Password: opts.Password,
		Shell:    func(s *cliserver.Session) { (&Conn{d: d, s: s, paging: true}).run() },
	})
	if err != nil {
		return nil, err
	}
	d.Server = srv
	return d, nil
}

// Hostname is the name in the device's prompt.
func (d *Device) Hostname() string { return d.opts.Hostname }

// Routes returns the running route table, default VRF first, then VRFs by name, each by
// address family, prefix and next hop.
func (d *Device) Routes() []Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Route, 0, len(d.running))
	for _, r := range d.running {
		out = append(out, r)
	}
	slices.SortFunc(out, compare)
	return out
}

func compare(a, b Route) int {
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
}

// VRFs returns the VRFs that exist besides default, sorted.
func (d *Device) VRFs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := slices.Clone(d.vrfs)
	slices.Sort(v)
	return v
}

// HasVRF reports whether vrf exists ("default" always does).
func (d *Device) HasVRF(vrf string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return vrf == "default" || slices.Contains(d.vrfs, vrf)
}

// CreateVRF creates vrf if it does not exist (NX-OS's "vrf context" does).
func (d *Device) CreateVRF(vrf string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if vrf != "default" && !slices.Contains(d.vrfs, vrf) {
		d.vrfs = append(d.vrfs, vrf)
	}
}

// Set adds or replaces a route in the running table, out of band.
func (d *Device) Set(r Route) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[r.key()] = r
}

// Delete removes a route from the running table, out of band.
func (d *Device) Delete(vrf string, p netip.Prefix, nh netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.running, Key{vrf, p, nh})
}

// Lookup returns the route with key k.
func (d *Device) Lookup(k Key) (Route, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.running[k]
	return r, ok
}

// FailCommitAfter makes the device accept n more route lines and refuse the one after with
// text (as the device refuses a line it cannot apply), leaving running-config as it was.
// Each accepted route line is its own commit on these platforms.
func (d *Device) FailCommitAfter(n int, text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failAfter, d.failText = n, text
}

// DropCommitAfter makes the device apply n more route lines, then apply the next one and
// close the connection before answering: the client cannot know whether that line landed.
func (d *Device) DropCommitAfter(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropAfter = n
}

// Commits returns how many route lines changed running-config (each is a commit here).
func (d *Device) Commits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commits
}

// Conn is one login session's command-line interface.
type Conn struct {
	d       *Device
	s       *cliserver.Session
	paging  bool // terminal length other than 0
	config  bool // in configuration mode
	submode string
	vrf     string // the VRF of a VRF sub-mode
	dropped bool
}

// Device returns the device this session runs on.
func (c *Conn) Device() *Device { return c.d }

// Config reports whether the session is in configuration mode (any sub-mode included).
func (c *Conn) Config() bool { return c.config }

// Submode returns the sub-mode's prompt name ("config-vrf") and its VRF; "" at the top of
// configuration mode.
func (c *Conn) Submode() (string, string) { return c.submode, c.vrf }

// Enter puts the session in a configuration sub-mode, e.g. ("config-vrf", "blue").
func (c *Conn) Enter(submode, vrf string) { c.submode, c.vrf = submode, vrf }

// Prompt is the prompt the CLI prints now.
func (c *Conn) Prompt() string {
	p := c.d.opts.Hostname
	switch {
	case c.submode != "":
		p += "(" + c.submode + ")#"
	case c.config:
		p += "(config)#"
	default:
		p += "#"
	}
	if c.d.dl.PromptSpace {
		p += " "
	}
	return p
}

// Commit applies one route line to running-config through the test hooks: change runs under
// the device's lock and returns the line's output ("" when accepted, or the device's refusal,
// which must leave the table alone). A line the hooks refuse changes nothing.
func (c *Conn) Commit(change func(running map[Key]Route) string) string {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failAfter == 0 {
		d.failAfter = -1
		return d.failText + "\n"
	}
	if out := change(d.running); out != "" {
		return out
	}
	d.commits++
	if d.failAfter > 0 {
		d.failAfter--
	}
	switch {
	case d.dropAfter == 0:
		d.dropAfter = -1
		c.dropped = true
	case d.dropAfter > 0:
		d.dropAfter--
	}
	return ""
}

func (c *Conn) run() {
	if !c.s.Write(c.Prompt()) {
		return
	}
	for {
		line, ok := c.s.ReadLine()
		if !ok {
			return
		}
		out, quit := c.handle(line)
		if c.dropped {
			c.s.Drop()
			return
		}
		if quit {
			return
		}
		if !c.output(out) || !c.s.Write(c.Prompt()) {
			return
		}
	}
}

// output writes a command's output, paging it when paging is on.
func (c *Conn) output(out string) bool {
	if !c.paging {
		return c.s.Write(out)
	}
	return c.s.Page(out, c.d.opts.PageLines, c.d.dl.More)
}

// Invalid is the parser's answer to a line it cannot read, the offending word being f[i].
func (c *Conn) Invalid(line string, f []string, i int) string {
	at := len(line)
	if i < len(f) {
		at = wordOffset(line, i)
	}
	return c.d.dl.Invalid(c.Prompt(), line, at)
}

// wordOffset returns the byte offset of the i-th space-separated word of line.
func wordOffset(line string, i int) int {
	n := -1
	in := false
	for j, r := range line {
		if r == ' ' || r == '\t' {
			in = false
			continue
		}
		if !in {
			in = true
			n++
			if n == i {
				return j
			}
		}
	}
	return len(line)
}

// handle runs one line and returns its output; quit ends the session.
func (c *Conn) handle(line string) (string, bool) {
	line = strings.TrimRight(line, " \t")
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", false
	}
	switch {
	case f[0] == "exit" && len(f) == 1:
		switch {
		case c.submode != "":
			c.submode, c.vrf = "", ""
		case c.config:
			c.config = false
		default:
			return "", true
		}
		return "", false
	case f[0] == "end" && len(f) == 1 && c.config:
		c.config, c.submode, c.vrf = false, "", ""
		return "", false
	case f[0] == "configure" && len(f) == 2 && f[1] == "terminal" && !c.config:
		c.config = true
		return "", false
	case f[0] == "terminal" && !c.config:
		if len(f) != 3 || (f[1] != "length" && f[1] != "width") {
			return c.Invalid(line, f, min(len(f), 2)), false
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 {
			return c.Invalid(line, f, 2), false
		}
		if f[1] == "length" && !c.d.opts.IgnoreTerminalLength {
			c.paging = n != 0
		}
		return "", false
	case f[0] == "show" && !c.config:
		return c.d.dl.Show(c, line, f[1:]), false
	case c.config:
		return c.d.dl.Configure(c, line, f), false
	}
	return c.Invalid(line, f, 0), false
}

// Attrs reads the attributes both CLIs allow after a static route's next hop, "name N" and
// "tag T", in any order. It returns the index in f of the first word it cannot read, or -1.
// Distances (a bare number), "track", "permanent" and the rest are not emulated and count as
// unreadable.
func Attrs(f []string) (name string, tag uint32, bad int) {
	for i := 0; i < len(f); i += 2 {
		if i+1 >= len(f) {
			return "", 0, len(f)
		}
		switch f[i] {
		case "name":
			name = f[i+1]
		case "tag":
			t, err := strconv.ParseUint(f[i+1], 10, 32)
			if err != nil {
				return "", 0, i + 1
			}
			tag = uint32(t)
		default:
			return "", 0, i
		}
	}
	return name, tag, -1
}

// UsableNextHop reports whether a can be a static route's next hop given without an
// interface: not unspecified, multicast, loopback, (IPv4) in 240.0.0.0/4, or an IPv6
// link-local address (both CLIs need the interface for one).
func UsableNextHop(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() && !(a.Is6() && a.IsLinkLocalUnicast()) &&
		!(a.Is4() && netip.MustParsePrefix("240.0.0.0/4").Contains(a))
}
