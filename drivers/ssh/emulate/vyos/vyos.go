// Package vyos is a test-support emulation of a VyOS router's CLI over SSH, for the vyos
// driver's tests. No VyOS image can run on the project's machine, so the driver is tested
// against this: an in-process SSH server on 127.0.0.1 that keeps the running configuration as
// "show configuration commands" statements (drivers/ssh/emulate/setcli) and answers the
// commands the driver sends, as VyOS documents them.
//
// Sources (read through the project's search tool):
//   - VyOS documentation, "Configuration Overview" (vyos-documentation, docs/cli): the
//     operational prompt "vyos@vyos:~$", "configure" answering "[edit]" and the prompt
//     "vyos@vyos#", the "[edit]" banner before every configuration-mode prompt, "show
//     configuration commands" printing "set" lines with the last value in single quotes
//     ("set interfaces loopback 'lo'"), "commit" printing nothing on success, "save" printing
//     "Saving configuration to '/config/config.boot'..." and "Done", "exit" refusing with
//     "Cannot exit: configuration modified." and "Use 'exit discard' to discard the changes
//     and exit.", "exit discard", "run" for operational commands in configuration mode, and
//     "Warning: configuration changes have not been saved." on leaving after an unsaved commit.
//   - VyOS static routes: "protocols static route <prefix> next-hop <address>", "route6" for
//     IPv6, and "vrf name <name> protocols static ..." inside a VRF (VyOS documentation,
//     "Static" and "VRF").
//   - scrapligo's vyatta_vyos platform definition: the prompts it expects, "terminal width
//     512" and "terminal length 0" at login, and the failure markers "Invalid command", "is not
//     valid" and "Set failed".
//   - "No configuration changes to commit" for a commit with nothing to do.
//
// What it does not emulate: any statement other than static routes; "edit", "up", "top",
// "compare", "rollback", "commit-confirm", "discard"; the hierarchical display; per-node commit
// scripts (a commit here applies whole or fails whole, with "Commit failed" as its last line);
// the exact text VyOS prints for a value its validators refuse (the emulation answers
// "Configuration path: [...] is not valid" and "Set failed" for a statement outside its
// grammar, and refuses a multicast or reserved next hop at commit, with a message of its own);
// VRF existence and table ids; the op-mode pager's key bindings (paging left on stops at a
// less-style ":" line and continues on any key); abbreviations and terminal control sequences.
package vyos

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/cliserver"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/setcli"
)

// Route is one static route next hop in the running configuration.
type Route struct {
	VRF     string // "" for the default VRF
	Prefix  netip.Prefix
	NextHop netip.Addr
}

// Options configure a Device.
type Options struct {
	Hostname string // default "vyos"
	Username string
	Password string
	// IgnoreTerminalLength makes "terminal length 0" succeed without turning paging off, so
	// that every long output pages at PageLines lines: a client must answer the ":" prompt.
	IgnoreTerminalLength bool
	PageLines            int // default 24
}

// Device is an emulated VyOS router listening on 127.0.0.1.
type Device struct {
	*setcli.Device
	opts Options

	mu    sync.Mutex
	saves int
}

// Start starts a router with an empty configuration.
func Start(opts Options) (*Device, error) {
	if opts.Hostname == "" {
		opts.Hostname = "vyos"
	}
	if opts.PageLines <= 0 {
		opts.PageLines = 24
	}
	d := &Device{opts: opts}
	base, err := setcli.Start(setcli.Options{Username: opts.Username, Password: opts.Password,
		Shell: func(s *cliserver.Session) { (&cli{d: d, s: s}).run() }})
	if err != nil {
		return nil, err
	}
	d.Device = base
	return d, nil
}

// Saves returns how many times "save" wrote the configuration.
func (d *Device) Saves() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.saves
}

func routeWords(vrf string, p netip.Prefix) []string {
	var w []string
	if vrf != "" {
		w = []string{"vrf", "name", vrf}
	}
	kind := "route"
	if p.Addr().Is6() {
		kind = "route6"
	}
	return append(w, "protocols", "static", kind, p.String())
}

// Set adds a static route next hop to the running configuration, out of band.
func (d *Device) Set(r Route) {
	d.Update(func(c setcli.Config) {
		c.Set(append(routeWords(r.VRF, r.Prefix), "next-hop", r.NextHop.String()), nil)
	})
}

// Delete removes a next hop from the running configuration, out of band, and the route with it
// when that was its last child.
func (d *Device) Delete(vrf string, p netip.Prefix, nh netip.Addr) {
	d.Update(func(c setcli.Config) {
		rw := routeWords(vrf, p)
		c.Delete(append(slices.Clone(rw), "next-hop", nh.String()))
	})
}

// Routes lists the running static route next hops.
func (d *Device) Routes() []Route {
	var out []Route
	for _, st := range d.Running().Lines() {
		if p, ok := parse(st); ok && p.nh.IsValid() {
			out = append(out, Route{VRF: p.vrf, Prefix: p.prefix, NextHop: p.nh})
		}
	}
	return out
}

// path is a parsed static route statement.
type path struct {
	vrf    string
	prefix netip.Prefix
	nh     netip.Addr // zero when the statement stops at the route
}

var vrfRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$`)

// parse parses "[vrf name V] protocols static route|route6 P [next-hop NH]"; a statement may
// stop after the route (for delete).
func parse(w []string) (path, bool) {
	var p path
	if len(w) >= 3 && w[0] == "vrf" && w[1] == "name" {
		if !vrfRE.MatchString(w[2]) || w[2] == "default" {
			return p, false
		}
		p.vrf, w = w[2], w[3:]
	}
	if len(w) < 4 || w[0] != "protocols" || w[1] != "static" || (w[2] != "route" && w[2] != "route6") {
		return p, false
	}
	pfx, err := netip.ParsePrefix(w[3])
	if err != nil || pfx != pfx.Masked() || pfx.Addr().Is6() != (w[2] == "route6") {
		return p, false
	}
	p.prefix = pfx
	switch {
	case len(w) == 4:
		return p, true
	case len(w) == 6 && w[4] == "next-hop":
		a, err := netip.ParseAddr(w[5])
		if err != nil || a.Zone() != "" || a.Is6() != pfx.Addr().Is6() {
			return p, false
		}
		p.nh = a
		return p, true
	}
	return p, false
}

// cli is one login session's command-line interface.
type cli struct {
	d         *Device
	s         *cliserver.Session
	paging    bool
	config    bool
	unsaved   bool // a commit of this session has not been saved
	base      setcli.Config
	candidate setcli.Config
}

func (c *cli) prompt() string {
	u := c.s.User + "@" + c.d.opts.Hostname
	if c.config {
		return "[edit]\n" + u + "# "
	}
	return u + ":~$ "
}

func (c *cli) run() {
	c.paging = true
	c.s.Serve(c.prompt, func(line string) (string, bool) { return c.handle(strings.TrimSpace(line)) }, c.output)
}

// output writes a command's output; operational output pages when paging is on.
func (c *cli) output(out string) bool {
	if !c.paging || c.config {
		return c.s.Write(out)
	}
	return c.s.Page(out, c.d.opts.PageLines, ":")
}

func invalidCommand(line string) string {
	return "\n  Invalid command: [" + line + "]\n\n"
}

func (c *cli) handle(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", false
	}
	if c.config {
		return c.configure(line, f)
	}
	switch {
	case f[0] == "exit" && len(f) == 1:
		return "", true
	case f[0] == "terminal" && len(f) == 3 && (f[1] == "length" || f[1] == "width"):
		if f[1] == "length" && !c.d.opts.IgnoreTerminalLength {
			c.paging = f[2] != "0"
		}
		return "", false
	case f[0] == "configure" && len(f) == 1:
		c.config = true
		c.base = c.d.Running()
		c.candidate = c.base.Clone()
		return "", false
	case f[0] == "show":
		return c.show(line, f), false
	}
	return invalidCommand(line), false
}

// configure runs one configuration-mode command.
func (c *cli) configure(line string, f []string) (string, bool) {
	switch {
	case f[0] == "exit" && len(f) == 2 && f[1] == "discard":
		c.config, c.base, c.candidate = false, nil, nil
		return "", false
	case f[0] == "exit" && len(f) == 1:
		if setcli.Changed(c.base, c.candidate) {
			return "Cannot exit: configuration modified.\nUse 'exit discard' to discard the changes and exit.\n", false
		}
		c.config, c.base, c.candidate = false, nil, nil
		if c.unsaved {
			return "Warning: configuration changes have not been saved.\n", false
		}
		return "", false
	case f[0] == "set" && len(f) > 1:
		p, ok := parse(f[1:])
		if !ok || !p.nh.IsValid() {
			return "\n  Configuration path: [" + strings.Join(f[1:], " ") + "] is not valid\n  Set failed\n\n", false
		}
		c.candidate.Set(f[1:], nil)
		return "", false
	case f[0] == "delete" && len(f) > 1:
		if _, ok := parse(f[1:]); !ok {
			return "\n  Configuration path: [" + strings.Join(f[1:], " ") + "] is not valid\n  Delete failed\n\n", false
		}
		if !c.candidate.Delete(f[1:]) {
			return "\n  Nothing to delete (the specified node does not exist)\n  Delete failed\n\n", false
		}
		return "", false
	case f[0] == "commit" && len(f) == 1:
		return c.commit()
	case f[0] == "save" && len(f) == 1:
		c.d.mu.Lock()
		c.d.saves++
		c.d.mu.Unlock()
		c.unsaved = false
		return "Saving configuration to '/config/config.boot'...\nDone\n", false
	case f[0] == "run" && len(f) > 1:
		return c.show(strings.TrimSpace(strings.TrimPrefix(line, "run")), f[1:]), false
	}
	return invalidCommand(line), false
}

// commit applies the session's changes whole, or fails whole.
func (c *cli) commit() (string, bool) {
	d := c.d
	if !setcli.Changed(c.base, c.candidate) {
		return "No configuration changes to commit\n", false
	}
	if text := d.TakeFailure(); text != "" {
		return text + "\nCommit failed\n", false
	}
	if errs := validate(c.candidate); errs != "" {
		return errs + "Commit failed\n", false
	}
	_, drop := d.Commit(c.base, c.candidate)
	c.base = d.Running()
	c.candidate = c.base.Clone()
	c.unsaved = true
	if drop {
		c.s.Drop()
		return "", true
	}
	return "", false
}

// validate refuses next hops no router can use, in the layout of a VyOS commit error: the
// path in brackets, then the message.
func validate(cand setcli.Config) string {
	var b strings.Builder
	for _, st := range cand.Lines() {
		p, ok := parse(st)
		if !ok || !p.nh.IsValid() {
			continue
		}
		if p.nh.IsMulticast() || p.nh.IsUnspecified() || (p.nh.Is4() && netip.MustParsePrefix("240.0.0.0/4").Contains(p.nh)) {
			fmt.Fprintf(&b, "[ %s ]\nNext-hop %s is not a unicast address\n\n", strings.Join(st, " "), p.nh)
		}
	}
	return b.String()
}

// show answers "show version" and "show configuration commands [| match WORD]".
func (c *cli) show(line string, f []string) string {
	if len(f) == 2 && f[1] == "version" {
		return "Version:          VyOS 1.4.0\nRelease train:    sagitta\n\nBuilt by:         emulation\nArchitecture:     x86_64\n"
	}
	parts := strings.Split(line, "|")
	if strings.Join(strings.Fields(parts[0]), " ") != "show configuration commands" {
		return invalidCommand(line)
	}
	var match string
	for _, p := range parts[1:] {
		pf := strings.Fields(p)
		if len(pf) != 2 || pf[0] != "match" {
			return invalidCommand(line)
		}
		match = strings.Trim(pf[1], `"'`)
	}
	var b strings.Builder
	for _, st := range c.d.Running().Lines() {
		// The last value in single quotes, as VyOS prints it.
		l := "set " + strings.Join(st[:len(st)-1], " ") + " '" + st[len(st)-1] + "'"
		if match != "" && !strings.Contains(l, match) {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
