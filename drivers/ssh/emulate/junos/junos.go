// Package junos is a test-support emulation of a Juniper Junos device's CLI (MX/EX/QFX/SRX)
// over SSH, for the juniper_junos driver's tests. No Junos image can run on the project's
// machine, so the driver is tested against this: an in-process SSH server on 127.0.0.1 that
// keeps the committed configuration as "display set" statements (drivers/ssh/emulate/setcli)
// and answers the commands the driver sends, as Juniper documents them.
//
// Sources (Juniper's documentation, read through the project's search tool):
//   - Configuration modes: "Overview of the configure Command" and "Using the configure
//     exclusive Command" (Junos CLI User Guide; junos12.3 and current): "configure private"
//     edits a private copy of the committed configuration and commits only its own changes;
//     "configure exclusive" locks the shared candidate; both print "warning: uncommitted changes
//     will be discarded on exit" then "Entering configuration mode"; entering configuration
//     mode while the shared candidate is modified prints "The configuration has been changed
//     but not committed".
//   - "Using the configure private Command" (JUNOS 8.5 CLI guide): "You cannot enter configure
//     private mode when the global configuration has been modified" and "You cannot issue the
//     commit confirmed command when you are in configure private mode" (the JUNOScript and Junos
//     XML protocol guides say the same of a private copy).
//   - Commit: "commit complete"; a failed commit lists errors and ends with "error:
//     configuration check-out failed" (Junos CLI User Guide, "Commit the Configuration", and
//     the Junos examples in "How to Commit Your Junos Configuration"); "commit confirmed N"
//     prints "commit confirmed will be automatically rolled back in N minutes unless
//     confirmed", and "commit" or "commit check" confirms it; "rollback 0" prints "load
//     complete".
//   - The banner "[edit]" on the line before every configuration-mode prompt
//     ("Notational Conventions Used in Junos OS Configuration Hierarchies").
//   - Static routes: "static (Routing Options)" and "tag (Routing Options)": "route prefix
//     next-hop address", "tag", under [edit routing-options], [edit routing-options rib
//     inet6.0] and [edit routing-instances name routing-options ...].
//   - scrapligo's juniper_junos platform definition (prompts "user@host>" and "user@host#",
//     "set cli screen-width 511", "set cli screen-length 0", "set cli complete-on-space off").
//
// What it does not emulate: any statement outside routing-options/routing-instances static
// routes; the hierarchical (curly-brace) display (only "| display set"); "edit", "up", "top",
// "update", "show | compare", "commit and-quit", rollback numbers other than 0 and 1; the wording
// Junos uses for a refused next hop, for a static route left without a next hop, and for
// "commit confirmed" in private mode (Juniper does not document them: the emulation refuses at
// commit check with Junos's commit-error layout, a "[edit ...]" context line, the quoted
// statement, an indented message of its own, and "error: configuration check-out failed");
// routing-instance types (every instance name is accepted); the confirmed-commit timer (a
// test calls ExpireConfirm instead of waiting); "---(more)---" key bindings other than space
// and q; abbreviations, completion and terminal control sequences.
package junos

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/cliserver"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/setcli"
)

// Route is one static route next hop in the committed configuration.
type Route struct {
	Instance string // routing instance; "" for the master instance
	Prefix   netip.Prefix
	NextHop  netip.Addr
	Tag      string // the route's tag; "" for none
}

// Options configure a Device.
type Options struct {
	Hostname string // default "sw1"
	Username string
	Password string
	Model    string // "show version" model; default "mx240"
	// IgnoreTerminalLength makes "set cli screen-length 0" succeed without turning paging off,
	// so that every long output pages at PageLines lines: a client must answer ---(more)---.
	IgnoreTerminalLength bool
	PageLines            int // default 24
}

// Device is an emulated Junos device listening on 127.0.0.1.
type Device struct {
	*setcli.Device
	opts Options

	mu            sync.Mutex
	sharedChanged bool          // another user's uncommitted change sits in the shared candidate
	pending       setcli.Config // running before an unconfirmed "commit confirmed"; nil for none
	pendingMins   int           // that commit's rollback delay in minutes
	last          setcli.Config // the committed configuration before the last commit ("rollback 1")
	refuse        string        // set lines containing it get a syntax error; "" for none
	exclusive     bool          // a session holds configure exclusive
}

// single lists the Junos keywords that hold one value.
var single = setcli.Single{"tag": true}

// Start starts a device with an empty configuration.
func Start(opts Options) (*Device, error) {
	if opts.Hostname == "" {
		opts.Hostname = "sw1"
	}
	if opts.Model == "" {
		opts.Model = "mx240"
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

// statement returns the words of r's next-hop statement, and of its tag statement when it has
// one.
func statements(r Route) [][]string {
	var pre []string
	if r.Instance != "" {
		pre = []string{"routing-instances", r.Instance}
	}
	pre = append(pre, "routing-options")
	if r.Prefix.Addr().Is6() {
		rib := "inet6.0"
		if r.Instance != "" {
			rib = r.Instance + ".inet6.0"
		}
		pre = append(pre, "rib", rib)
	}
	pre = append(pre, "static", "route", r.Prefix.String())
	out := [][]string{append(append([]string{}, pre...), "next-hop", r.NextHop.String())}
	if r.Tag != "" {
		out = append(out, append(append([]string{}, pre...), "tag", r.Tag))
	}
	return out
}

// Set adds a static route next hop (and the route's tag) to the committed configuration, out
// of band.
func (d *Device) Set(r Route) {
	d.Update(func(c setcli.Config) {
		for _, st := range statements(r) {
			c.Set(st, single)
		}
	})
}

// Delete removes a next hop from the committed configuration, out of band, and the route with
// it when that was its last next hop.
func (d *Device) Delete(instance string, p netip.Prefix, nh netip.Addr) {
	d.Update(func(c setcli.Config) {
		st := statements(Route{Instance: instance, Prefix: p, NextHop: nh})[0]
		c.Delete(st)
		if !c.Has(append(st[:len(st)-2:len(st)-2], "next-hop")) {
			c.Delete(st[:len(st)-2])
		}
	})
}

// Routes lists the committed static route next hops, one per next hop, with the route's tag.
func (d *Device) Routes() []Route {
	var out []Route
	c := d.Running()
	for _, st := range c.Lines() {
		p, ok := parseStatic(st)
		if !ok || p.leaf != "next-hop" {
			continue
		}
		tag := ""
		if tl := c.Lines(slices.Concat(p.route(), []string{"tag"})...); len(tl) == 1 {
			tag = tl[0][len(tl[0])-1]
		}
		out = append(out, Route{Instance: p.instance, Prefix: p.prefix, NextHop: p.nh, Tag: tag})
	}
	return out
}

// ModifySharedCandidate leaves (or, with false, clears) an uncommitted change by another user
// in the shared candidate: "configure private" then fails and "configure exclusive" warns.
func (d *Device) ModifySharedCandidate(changed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sharedChanged = changed
}

// RefuseStatementsWith makes the parser refuse every "set" line containing substr (none for
// "") with Junos's caret and "syntax error.", as a release whose schema lacks a statement
// does.
func (d *Device) RefuseStatementsWith(substr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refuse = substr
}

// PendingConfirm reports whether a "commit confirmed" waits for its confirmation.
func (d *Device) PendingConfirm() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending != nil
}

// ExpireConfirm does what Junos does when a confirmed commit's timer runs out: it rolls back to
// the configuration from before that commit. It reports whether there was one pending.
func (d *Device) ExpireConfirm() bool {
	d.mu.Lock()
	prev := d.pending
	d.pending = nil
	d.mu.Unlock()
	if prev == nil {
		return false
	}
	d.Replace(prev)
	return true
}

// staticPath is a parsed static route statement.
type staticPath struct {
	words    []string // the statement
	instance string
	rib      string // "" for inet.0
	prefix   netip.Prefix
	leaf     string // "next-hop", "tag" or "" (the statement stops at the route or above)
	nh       netip.Addr
	tag      string
	depth    int // index of the route prefix word in words; -1 when the statement stops above it
}

// route returns the words of the route the statement belongs to.
func (p staticPath) route() []string { return p.words[:p.depth+1] }

// parseStatic parses "[routing-instances NAME] routing-options [rib RIB] static route PREFIX
// [next-hop ADDR | tag N]". A statement may stop early (for delete); bad reports the index of
// the first word Junos's parser would refuse.
func parseStatic(w []string) (p staticPath, ok bool) {
	p, bad := parseStaticAt(w)
	return p, bad < 0
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func parseStaticAt(w []string) (staticPath, int) {
	p := staticPath{words: w, depth: -1}
	i := 0
	next := func() (string, bool) {
		if i >= len(w) {
			return "", false
		}
		i++
		return w[i-1], true
	}
	word, ok := next()
	if !ok {
		return p, 0
	}
	if word == "routing-instances" {
		name, ok := next()
		if !ok {
			return p, -1
		}
		if !nameRE.MatchString(name) {
			return p, i - 1
		}
		p.instance = name
		if word, ok = next(); !ok {
			return p, -1
		}
	}
	if word != "routing-options" {
		return p, i - 1
	}
	if word, ok = next(); !ok {
		return p, -1
	}
	if word == "rib" {
		rib, ok := next()
		if !ok {
			return p, -1
		}
		if !nameRE.MatchString(rib) {
			return p, i - 1
		}
		p.rib = rib
		if word, ok = next(); !ok {
			return p, -1
		}
	}
	if word != "static" {
		return p, i - 1
	}
	if word, ok = next(); !ok {
		return p, -1
	}
	if word != "route" {
		return p, i - 1
	}
	pw, ok := next()
	if !ok {
		return p, -1
	}
	pfx, err := netip.ParsePrefix(pw)
	if err != nil || pfx != pfx.Masked() {
		return p, i - 1
	}
	p.prefix, p.depth = pfx, i-1
	leaf, ok := next()
	if !ok {
		return p, -1
	}
	val, ok := next()
	if !ok || i != len(w) {
		if !ok {
			return p, i - 1
		}
		return p, i
	}
	switch leaf {
	case "next-hop":
		a, err := netip.ParseAddr(val)
		if err != nil || a.Zone() != "" {
			return p, i - 1
		}
		p.nh = a
	case "tag":
		if n, err := strconv.ParseUint(val, 10, 32); err != nil || strconv.FormatUint(n, 10) != val {
			return p, i - 1
		}
		p.tag = val
	default:
		return p, i - 2
	}
	p.leaf = leaf
	return p, -1
}

// cli is one login session's command-line interface.
type cli struct {
	d      *Device
	s      *cliserver.Session
	paging bool
	// mode is "" outside configuration mode, else "private" or "exclusive".
	mode      string
	base      setcli.Config // the committed configuration the candidate was copied from
	candidate setcli.Config
}

func (c *cli) user() string { return c.s.User + "@" + c.d.opts.Hostname }

func (c *cli) prompt() string {
	if c.mode == "" {
		return c.user() + "> "
	}
	banner := "\n"
	c.d.mu.Lock()
	if c.d.pending != nil {
		banner += fmt.Sprintf("# commit confirmed will be rolled back in %d minutes\n", c.d.pendingMins)
	}
	c.d.mu.Unlock()
	return banner + "[edit]\n" + c.user() + "# "
}

func (c *cli) run() {
	c.paging = true
	if !c.s.Write(c.prompt()) {
		return
	}
	for {
		line, ok := c.s.ReadLine()
		if !ok {
			c.leave()
			return
		}
		out, quit := c.handle(line)
		if quit {
			c.leave()
			return
		}
		if !c.output(out) || !c.s.Write(c.prompt()) {
			c.leave()
			return
		}
	}
}

// leave releases what the session holds when it ends: its private copy is discarded and an
// exclusive lock released with its uncommitted changes.
func (c *cli) leave() {
	if c.mode == "exclusive" {
		c.d.mu.Lock()
		c.d.exclusive = false
		c.d.mu.Unlock()
	}
	c.mode, c.base, c.candidate = "", nil, nil
}

func (c *cli) output(out string) bool {
	if !c.paging {
		return c.s.Write(out)
	}
	return c.s.Page(out, c.d.opts.PageLines, "---(more)---")
}

// syntaxError is Junos's answer to a word its parser refuses: a caret under word bad of line
// (past its end when the line stops too early), then "syntax error.".
func (c *cli) syntaxError(line string, bad int) string {
	col := len(c.user()) + 2 // the prompt "user@host# " or "user@host> "
	off := 0
	found := false
	for i, f := range strings.Fields(line) {
		idx := strings.Index(line[off:], f) + off
		if i == bad {
			col += idx
			found = true
			break
		}
		off = idx + len(f)
	}
	if !found {
		col += len(strings.TrimRight(line, " ")) + 1
	}
	return strings.Repeat(" ", col) + "^\nsyntax error.\n"
}

// handle runs one command and returns its output; quit ends the session.
func (c *cli) handle(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", false
	}
	if c.mode != "" {
		return c.config(line, f)
	}
	switch {
	case f[0] == "exit" || f[0] == "quit":
		return "", true
	case len(f) == 4 && f[0] == "set" && f[1] == "cli" && f[2] == "screen-length":
		n, err := strconv.Atoi(f[3])
		if err != nil || n < 0 {
			return c.syntaxError(line, 3), false
		}
		if !c.d.opts.IgnoreTerminalLength {
			c.paging = n != 0
		}
		return "Screen length set to " + f[3] + "\n", false
	case len(f) == 4 && f[0] == "set" && f[1] == "cli" && f[2] == "screen-width":
		return "Screen width set to " + f[3] + "\n", false
	case len(f) == 4 && f[0] == "set" && f[1] == "cli" && f[2] == "complete-on-space" && f[3] == "off":
		return "Disabling complete-on-space\n", false
	case f[0] == "show":
		return c.show(line, f), false
	case f[0] == "configure":
		return c.configure(line, f), false
	}
	return c.syntaxError(line, 0), false
}

// configure enters configuration mode: private or exclusive (plain "configure", the shared
// candidate, is not emulated).
func (c *cli) configure(line string, f []string) string {
	if len(f) != 2 || (f[1] != "private" && f[1] != "exclusive") {
		return c.syntaxError(line, 1)
	}
	d := c.d
	d.mu.Lock()
	shared, locked := d.sharedChanged, d.exclusive
	if f[1] == "exclusive" && !locked {
		d.exclusive = true
	}
	d.mu.Unlock()
	var b strings.Builder
	switch {
	case f[1] == "private" && shared:
		return "error: shared configuration database modified\n"
	case f[1] == "exclusive" && locked:
		return "error: configuration database locked by another user\n"
	}
	b.WriteString("warning: uncommitted changes will be discarded on exit\nEntering configuration mode\n")
	if shared {
		b.WriteString("The configuration has been changed but not committed\n")
	}
	c.mode = f[1]
	c.base = d.Running()
	c.candidate = c.base.Clone()
	return b.String()
}

// config runs one configuration-mode command.
func (c *cli) config(line string, f []string) (string, bool) {
	switch {
	case (f[0] == "exit" || f[0] == "quit") && (len(f) == 1 || (len(f) == 2 && f[1] == "configuration-mode")):
		if setcli.Changed(c.base, c.candidate) {
			// Junos asks before it discards; the driver never leaves with changes.
			return "The configuration has been changed but not committed\nerror: emulation: exit with uncommitted changes is not emulated\n", false
		}
		c.leave()
		return "Exiting configuration mode\n", false
	case f[0] == "set" && len(f) > 1:
		p, bad := parseStaticAt(f[1:])
		if bad >= 0 || p.leaf == "" {
			if bad < 0 {
				bad = len(f) - 1
			}
			return c.syntaxError(line, bad+1), false
		}
		c.d.mu.Lock()
		refuse := c.d.refuse
		c.d.mu.Unlock()
		if refuse != "" && strings.Contains(line, refuse) {
			return c.syntaxError(line, len(f)-1), false
		}
		c.candidate.Set(f[1:], single)
		return "", false
	case f[0] == "delete" && len(f) > 1:
		if _, bad := parseStaticAt(f[1:]); bad >= 0 {
			return c.syntaxError(line, bad+1), false
		}
		if !c.candidate.Delete(f[1:]) {
			return "warning: statement not found\n", false
		}
		return "", false
	case f[0] == "rollback" && len(f) == 2 && f[1] == "0":
		c.base = c.d.Running()
		c.candidate = c.base.Clone()
		return "load complete\n", false
	case f[0] == "rollback" && len(f) == 2 && f[1] == "1":
		c.d.mu.Lock()
		last := c.d.last
		c.d.mu.Unlock()
		if last == nil {
			return "error: rollback 1 does not exist\n", false
		}
		c.base = c.d.Running()
		c.candidate = last.Clone()
		return "load complete\n", false
	case f[0] == "commit":
		return c.commit(line, f)
	case f[0] == "run" && len(f) > 1:
		return c.show(strings.TrimPrefix(strings.TrimSpace(line), "run "), f[1:]), false
	}
	return c.syntaxError(line, 0), false
}

// commit runs "commit check", "commit" and "commit confirmed [N]".
func (c *cli) commit(line string, f []string) (string, bool) {
	d := c.d
	check := len(f) == 2 && f[1] == "check"
	confirmed := len(f) >= 2 && f[1] == "confirmed"
	minutes := 10
	switch {
	case len(f) == 1 || check:
	case confirmed && len(f) <= 3:
		if len(f) == 3 {
			n, err := strconv.Atoi(f[2])
			if err != nil || n < 1 || n > 65535 {
				return c.syntaxError(line, 2), false
			}
			minutes = n
		}
		if c.mode == "private" {
			return "error: commit confirmed is not supported in configure private mode\n", false
		}
	default:
		return c.syntaxError(line, 1), false
	}
	if text := d.TakeFailure(); text != "" {
		return text + "\nerror: configuration check-out failed\n", false
	}
	if errs := validate(c.candidate); errs != "" {
		return errs + "error: configuration check-out failed\n", false
	}
	if check {
		// A commit check also confirms a pending confirmed commit.
		d.mu.Lock()
		d.pending = nil
		d.mu.Unlock()
		return "configuration check succeeds\n", false
	}
	before, drop := d.Commit(c.base, c.candidate)
	d.mu.Lock()
	d.last = before
	if confirmed {
		if d.pending == nil {
			d.pending = before
		}
		d.pendingMins = minutes
	} else {
		d.pending = nil
	}
	d.mu.Unlock()
	c.base = d.Running()
	c.candidate = c.base.Clone()
	if drop {
		c.s.Drop()
		return "", true
	}
	if confirmed {
		return fmt.Sprintf("commit confirmed will be automatically rolled back in %d minutes unless confirmed\ncommit complete\n", minutes), false
	}
	return "commit complete\n", false
}

// validate checks a candidate as the emulated commit does, returning Junos-layout errors.
func validate(cand setcli.Config) string {
	var b strings.Builder
	nexthops := map[string]int{}
	routes := map[string]staticPath{}
	for _, st := range cand.Lines() {
		p, ok := parseStatic(st)
		if !ok || p.depth < 0 {
			continue
		}
		key := strings.Join(p.route(), " ")
		routes[key] = p
		if p.leaf == "next-hop" {
			nexthops[key]++
		}
		v6 := p.prefix.Addr().Is6()
		wantRIB := ""
		if v6 {
			wantRIB = "inet6.0"
			if p.instance != "" {
				wantRIB = p.instance + ".inet6.0"
			}
		}
		ctx := "[edit " + strings.Join(p.route()[:len(p.route())-2], " ") + " route " + p.prefix.String() + "]\n"
		if p.rib != wantRIB && p.leaf == "next-hop" {
			fmt.Fprintf(&b, "%s  'route %s'\n    Prefix does not belong to routing table %s\n", ctx, p.prefix, ribName(p))
			continue
		}
		if p.leaf == "next-hop" && (p.nh.Is6() != v6 || p.nh.IsMulticast() || p.nh.IsUnspecified() ||
			(p.nh.Is4() && netip.MustParsePrefix("240.0.0.0/4").Contains(p.nh))) {
			fmt.Fprintf(&b, "%s  'next-hop %s'\n    Invalid next-hop address\n", ctx, p.nh)
		}
	}
	for key, p := range routes {
		if nexthops[key] == 0 {
			fmt.Fprintf(&b, "[edit %s]\n  'route %s'\n    Static route has no next-hop\n", strings.Join(p.route()[:len(p.route())-2], " "), p.prefix)
		}
	}
	return b.String()
}

func ribName(p staticPath) string {
	if p.rib == "" {
		if p.instance != "" {
			return p.instance + ".inet.0"
		}
		return "inet.0"
	}
	return p.rib
}

// show answers "show version" and "show configuration [PATH] | display set [| match RE]".
func (c *cli) show(line string, f []string) string {
	if len(f) == 2 && f[1] == "version" {
		return fmt.Sprintf("Hostname: %s\nModel: %s\nJunos: 21.4R3-S5.4\nJUNOS OS Kernel 64-bit  [20230829.8a4f1a2_builder_stable_12_214]\n", c.d.opts.Hostname, c.d.opts.Model)
	}
	if len(f) < 2 || f[1] != "configuration" {
		return c.syntaxError(line, 1)
	}
	parts := strings.Split(line, "|")
	path := strings.Fields(parts[0])[2:]
	display := false
	var match *regexp.Regexp
	for _, p := range parts[1:] {
		pf := strings.Fields(p)
		switch {
		case len(pf) == 2 && pf[0] == "display" && pf[1] == "set":
			display = true
		case len(pf) >= 2 && pf[0] == "match":
			re, err := regexp.Compile(strings.Trim(strings.Join(pf[1:], " "), `"`))
			if err != nil {
				return "error: invalid regular expression\n"
			}
			match = re
		default:
			return c.syntaxError(line, len(f)-1)
		}
	}
	if !display {
		return "error: emulation: only '| display set' is emulated\n"
	}
	var b strings.Builder
	for _, st := range c.d.Running().Lines(path...) {
		l := "set " + strings.Join(st, " ")
		if match != nil && !match.MatchString(l) {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
