// Package fortios is a test-support emulation of a FortiGate's FortiOS CLI over SSH, for the
// fortinet_fortios driver's tests. No FortiOS image can run on the project's machine, so the
// driver is tested against this: an in-process SSH server on 127.0.0.1 that keeps the
// "config router static" and "config router static6" tables and answers the few commands
// the driver sends, as Fortinet documents them.
//
// Sources (Fortinet's documentation, read through the project's search tool):
//   - Tables, "edit", "next", "end", "abort", "delete", and the prompt naming the current
//     table or entry ("(static) #", "(0) #"); "edit 0" confirms the creation of entry 0 and
//     the next unused number is assigned when the entry is saved at "next" or "end": FortiOS
//     Administration Guide 7.4, "Subcommands",
//     https://docs.fortinet.com/document/fortigate/7.4.0/administration-guide/627485.
//   - The static route table's fields (seq-num, dst as "A MASK", gateway, device, comment,
//     vrf, status, distance, ...): FortiOS CLI Reference 7.2,
//     https://docs.fortinet.com/document/container-fortios/7.2.1/cli-reference/200835411;
//     static6 with an IPv6 prefix: FortiOS 6.0 CLI Reference, "router {static | static6}";
//     static6's own fields (dst as an ipv6-network "P/LEN", gateway an ipv6-address, device,
//     comment, status, distance, and "set vrf {integer}" since 7.0): FortiOS CLI Reference
//     7.2.2, "config router static6",
//     https://docs.fortinet.com/document/fortigate/7.2.2/cli-reference/564620.
//   - "Command fail. Return code N" after a refused command, and "command parse error" for
//     an unknown field: the return codes described at
//     https://socpuppet.blogspot.com/2014/08/fortinet-and-understanding-return-codes.html and
//     the batch log format in scrapli_community's fortinet_fortios driver.
//   - The pager: "config system console" / "set output more|standard"; output stops at
//     "--More--" until a key is pressed (FortiOS CLI Reference, "system console"; NOC
//     project's Fortigate profile matches "^--More--").
//   - The prompt "HOSTNAME # " with a trailing space: scrapli_community's fortinet_fortios
//     prompt pattern.
//
// What it does not emulate: VDOMs ("config vdom", "config global"); any table but static
// and static6, and any field of theirs but dst, gateway, device, comment, vrf, status and
// distance; "show" inside a table; "get router info routing-table"; installation into a
// forwarding table (a route is configured, nothing more); FortiOS's checks that the gateway
// is reachable through the device; the exact wording FortiOS uses for a refused gateway
// (Fortinet does not document it: the emulation refuses multicast, class E, broadcast and
// unspecified gateways with "value parse error before '<value>'" and "Command fail. Return
// code -8", the form it uses for malformed values); what a real FortiGate does when "next"
// fails (the emulation discards the entry and returns to the table); the order of fields in
// "show" beyond the one in the CLI reference; abbreviations, line editing, "?" help and
// terminal control sequences. Like FortiOS, it saves an entry at "next" even when one of its
// "set" lines was refused: the refused field is simply not set.
package fortios

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/returnpath/returnpath/drivers/ssh/emulate/cliserver"
)

// Entry is one entry of the emulated "config router static" or "static6" table.
type Entry struct {
	Seq      uint32
	Dst      netip.Prefix // the table is static6 when Dst is IPv6
	Gateway  netip.Addr   // invalid when unset
	Device   string
	Comment  string
	VRF      int
	Disabled bool // "set status disable"
	Distance int  // 0: FortiOS's default (10), not printed
}

// Options configure a Device.
type Options struct {
	Hostname   string   // default "FGT"
	Interfaces []string // names "set device" accepts; default port1 to port4
	Username   string
	Password   string
	// Paging is the console's "set output more" (FortiOS's default): output longer than
	// PageLines stops at --More--. The driver never changes it.
	Paging    bool
	PageLines int    // default 24
	Version   string // "get system status"'s Version value
}

// Device is an emulated FortiGate listening on 127.0.0.1.
type Device struct {
	opts              Options
	*cliserver.Server // SSH: Addr, HostKey, Close

	mu         sync.Mutex
	v4, v6     map[uint32]Entry
	failCommit string // printed at the next "next", which then saves nothing
	dropCommit bool   // close the connection at the next "next", after saving
	commits    int
}

// Start starts a device with empty tables.
func Start(opts Options) (*Device, error) {
	if opts.Hostname == "" {
		opts.Hostname = "FGT"
	}
	if len(opts.Interfaces) == 0 {
		opts.Interfaces = []string{"port1", "port2", "port3", "port4"}
	}
	if opts.PageLines <= 0 {
		opts.PageLines = 24
	}
	if opts.Version == "" {
		opts.Version = "FortiGate-VM64 v7.2.5,build1517,230606 (GA.F)"
	}
	d := &Device{opts: opts, v4: map[uint32]Entry{}, v6: map[uint32]Entry{}}
	srv, err := cliserver.Start(cliserver.Options{
		Username: opts.Username,
		Password: opts.Password,
		Shell:    func(s *cliserver.Session) { (&cli{d: d, s: s, paging: opts.Paging}).run() },
	})
	if err != nil {
		return nil, err
	}
	d.Server = srv
	return d, nil
}

// Entries returns both tables' entries, IPv4 first, each by sequence number.
func (d *Device) Entries() []Entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append(sorted(d.v4), sorted(d.v6)...)
}

// Set stores e out of band, under e.Seq, or under the next unused number when it is 0; it
// returns the number.
func (d *Device) Set(e Entry) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.table(e.Dst.Addr().Is6())
	if e.Seq == 0 {
		e.Seq = nextSeq(t)
	}
	t[e.Seq] = e
	return e.Seq
}

// Delete removes, out of band, every entry of the route (dst, gateway, VRF), whatever its
// comment.
func (d *Device) Delete(dst netip.Prefix, gw netip.Addr, vrf int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.table(dst.Addr().Is6())
	for seq, e := range t {
		if e.Dst == dst && e.Gateway == gw && e.VRF == vrf {
			delete(t, seq)
		}
	}
}

// FailNextCommit makes the next "next" print text and save nothing, as when FortiOS refuses
// an entry as a whole.
func (d *Device) FailNextCommit(text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failCommit = text
}

// DropNextCommit makes the next "next" save its entry and then close the connection before
// answering: the client cannot know how much of its batch landed.
func (d *Device) DropNextCommit() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropCommit = true
}

// Commits returns how many changes FortiOS applied: entries saved by "next" or "end" and
// entries removed by "delete". FortiOS applies each at once; there is no commit of a batch.
func (d *Device) Commits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commits
}

func (d *Device) table(v6 bool) map[uint32]Entry {
	if v6 {
		return d.v6
	}
	return d.v4
}

func nextSeq(t map[uint32]Entry) uint32 {
	var top uint32
	for seq := range t {
		top = max(top, seq)
	}
	return top + 1
}

func sorted(t map[uint32]Entry) []Entry {
	out := make([]Entry, 0, len(t))
	for _, e := range t {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return int(a.Seq) - int(b.Seq) })
	return out
}

// cli is one login session's command-line interface.
type cli struct {
	d      *Device
	s      *cliserver.Session
	paging bool

	table   string // "static" or "static6" inside "config router ..."; "console" in "config system console"
	editing *Entry // the entry being edited, nil outside "edit"
	editSeq uint32 // the number typed after "edit"
}

func (c *cli) prompt() string {
	h := c.d.opts.Hostname
	switch {
	case c.editing != nil:
		return fmt.Sprintf("%s (%d) # ", h, c.editSeq)
	case c.table != "":
		return h + " (" + c.table + ") # "
	}
	return h + " # "
}

func (c *cli) run() {
	c.s.Serve(c.prompt, func(line string) (string, bool) { return c.handle(strings.TrimSpace(line)) }, c.output)
}

func (c *cli) output(out string) bool {
	if !c.paging {
		return c.s.Write(out)
	}
	return c.s.Page(out, c.d.opts.PageLines, "--More-- ")
}

func fail(code int, reason string) string {
	return fmt.Sprintf("%s\nCommand fail. Return code %d\n", reason, code)
}

func parseError(word string) string { return fail(-61, "command parse error before '"+word+"'") }
func valueError(word string) string { return fail(-8, "value parse error before '"+word+"'") }

// handle runs one command and returns its output; quit ends the session.
func (c *cli) handle(line string) (string, bool) {
	f := words(line)
	if len(f) == 0 {
		return "", false
	}
	switch {
	case c.editing != nil:
		return c.entry(f)
	case c.table == "console":
		return c.console(f), false
	case c.table != "":
		return c.inTable(f)
	}
	switch {
	case f[0] == "exit" && len(f) == 1:
		return "", true
	case f[0] == "config" && len(f) == 3 && f[1] == "router" && (f[2] == "static" || f[2] == "static6"):
		c.table = f[2]
		return "", false
	case f[0] == "config" && len(f) == 3 && f[1] == "system" && f[2] == "console":
		c.table = "console"
		return "", false
	case f[0] == "show" && len(f) == 3 && f[1] == "router" && (f[2] == "static" || f[2] == "static6"):
		return c.show(f[2] == "static6"), false
	case f[0] == "get" && len(f) == 3 && f[1] == "system" && f[2] == "status":
		return "Version: " + c.d.opts.Version + "\nSerial-Number: FGVMEVEMULATED00\nHostname: " + c.d.opts.Hostname +
			"\nOperation Mode: NAT\nVirtual domain configuration: disable\n", false
	case f[0] == "config" || f[0] == "show" || f[0] == "get":
		return parseError(f[len(f)-1]), false
	}
	return fail(-1, "Unknown action 0"), false
}

func (c *cli) console(f []string) string {
	switch {
	case f[0] == "set" && len(f) == 3 && f[1] == "output" && (f[2] == "more" || f[2] == "standard"):
		c.paging = f[2] == "more"
	case (f[0] == "end" || f[0] == "abort") && len(f) == 1:
		c.table = ""
	default:
		return parseError(f[0])
	}
	return ""
}

// inTable runs a command at "(static) #".
func (c *cli) inTable(f []string) (string, bool) {
	d := c.d
	switch {
	case (f[0] == "end" || f[0] == "abort") && len(f) == 1:
		c.table = ""
		return "", false
	case f[0] == "edit" && len(f) == 2:
		seq, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return valueError(f[1]), false
		}
		c.editSeq = uint32(seq)
		d.mu.Lock()
		e, ok := d.table(c.table == "static6")[c.editSeq]
		d.mu.Unlock()
		if ok && seq != 0 {
			c.editing = &e
			return "", false
		}
		c.editing = &Entry{Seq: c.editSeq}
		return fmt.Sprintf("new entry '%d' added\n", seq), false
	case f[0] == "delete" && len(f) == 2:
		seq, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return valueError(f[1]), false
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		t := d.table(c.table == "static6")
		if _, ok := t[uint32(seq)]; !ok {
			return fail(-3, "entry not found in datasource"), false
		}
		delete(t, uint32(seq))
		d.commits++
		return "", false
	}
	return parseError(f[0]), false
}

// entry runs a command inside "edit N".
func (c *cli) entry(f []string) (string, bool) {
	e := c.editing
	v6 := c.table == "static6"
	switch {
	case f[0] == "abort" && len(f) == 1:
		c.editing = nil
		return "", false
	case (f[0] == "next" || f[0] == "end") && len(f) == 1:
		out, quit := c.save()
		c.editing = nil
		if f[0] == "end" {
			c.table = ""
		}
		return out, quit
	case f[0] == "set" && len(f) >= 3:
		return c.set(e, v6, f[1], f[2:]), false
	case f[0] == "unset" && len(f) == 2 && f[1] == "comment":
		e.Comment = ""
		return "", false
	}
	return parseError(f[0]), false
}

// set applies one "set FIELD VALUE..." to e; a refused value leaves the field as it was.
func (c *cli) set(e *Entry, v6 bool, field string, v []string) string {
	switch field {
	case "dst":
		var p netip.Prefix
		var err error
		switch {
		case len(v) == 1:
			p, err = netip.ParsePrefix(v[0])
		case len(v) == 2 && !v6:
			p, err = classnet(v[0], v[1])
		default:
			return valueError(v[len(v)-1])
		}
		if err != nil || p.Addr().Is6() != v6 {
			return valueError(v[0])
		}
		e.Dst = p.Masked()
	case "gateway":
		a, err := netip.ParseAddr(v[0])
		if len(v) != 1 || err != nil || a.Is6() != v6 || a.IsMulticast() || a.IsUnspecified() || (a.Is4() && a.As4()[0] >= 240) {
			return valueError(v[0])
		}
		e.Gateway = a
	case "device":
		if len(v) != 1 || !slices.Contains(c.d.opts.Interfaces, v[0]) {
			return "entry not found in datasource\n" + valueError(v[0])
		}
		e.Device = v[0]
	case "comment":
		if len(v) != 1 || len(v[0]) > 255 {
			return valueError(v[len(v)-1])
		}
		e.Comment = v[0]
	case "vrf":
		n, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || n < 0 || n > 251 {
			return valueError(v[0])
		}
		e.VRF = n
	case "status":
		if len(v) != 1 || (v[0] != "enable" && v[0] != "disable") {
			return valueError(v[0])
		}
		e.Disabled = v[0] == "disable"
	case "distance":
		n, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || n < 1 || n > 255 {
			return valueError(v[0])
		}
		e.Distance = n
	default:
		return parseError(field)
	}
	return ""
}

// save stores the entry being edited, numbering a new one; it honours the commit hooks.
func (c *cli) save() (string, bool) {
	d := c.d
	d.mu.Lock()
	if d.failCommit != "" {
		text := d.failCommit
		d.failCommit = ""
		d.mu.Unlock()
		return text + "\n", false
	}
	e := *c.editing
	v6 := c.table == "static6"
	if !e.Dst.IsValid() {
		if v6 {
			e.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		} else {
			e.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
	}
	t := d.table(v6)
	if e.Seq == 0 {
		e.Seq = nextSeq(t)
	}
	t[e.Seq] = e
	d.commits++
	drop := d.dropCommit
	d.dropCommit = false
	d.mu.Unlock()
	if drop {
		c.s.Drop()
		return "", true
	}
	return "", false
}

// show prints a table as "show router static" does: only fields that differ from their
// defaults, strings quoted, an IPv4 destination as "A MASK".
func (c *cli) show(v6 bool) string {
	d := c.d
	d.mu.Lock()
	es := sorted(d.table(v6))
	d.mu.Unlock()
	var b strings.Builder
	name := "static"
	if v6 {
		name = "static6"
	}
	b.WriteString("config router " + name + "\n")
	for _, e := range es {
		fmt.Fprintf(&b, "    edit %d\n", e.Seq)
		if e.Disabled {
			b.WriteString("        set status disable\n")
		}
		if e.Dst.Bits() != 0 {
			if v6 {
				fmt.Fprintf(&b, "        set dst %s\n", e.Dst)
			} else {
				fmt.Fprintf(&b, "        set dst %s %s\n", e.Dst.Addr(), mask(e.Dst.Bits()))
			}
		}
		if e.Gateway.IsValid() {
			fmt.Fprintf(&b, "        set gateway %s\n", e.Gateway)
		}
		if e.Distance != 0 {
			fmt.Fprintf(&b, "        set distance %d\n", e.Distance)
		}
		if e.Device != "" {
			fmt.Fprintf(&b, "        set device %q\n", e.Device)
		}
		if e.Comment != "" {
			fmt.Fprintf(&b, "        set comment %s\n", quote(e.Comment))
		}
		if e.VRF != 0 {
			fmt.Fprintf(&b, "        set vrf %d\n", e.VRF)
		}
		b.WriteString("    next\n")
	}
	b.WriteString("end\n")
	return b.String()
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func mask(bits int) string {
	var m [4]byte
	for i := range bits {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(m).String()
}

func classnet(a, m string) (netip.Prefix, error) {
	addr, err := netip.ParseAddr(a)
	if err != nil || !addr.Is4() {
		return netip.Prefix{}, fmt.Errorf("bad address")
	}
	ma, err := netip.ParseAddr(m)
	if err != nil || !ma.Is4() {
		return netip.Prefix{}, fmt.Errorf("bad mask")
	}
	for bits := 0; bits <= 32; bits++ {
		if mask(bits) == ma.String() {
			return netip.PrefixFrom(addr, bits), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("bad mask")
}

// words splits a command line; a double-quoted word may hold spaces and backslash escapes.
func words(line string) []string {
	var out []string
	s := strings.TrimSpace(line)
	for s != "" {
		if s[0] != '"' {
			w, rest, _ := strings.Cut(s, " ")
			out = append(out, w)
			s = strings.TrimLeft(rest, " ")
			continue
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		out = append(out, b.String())
		s = strings.TrimLeft(s[min(i+1, len(s)):], " ")
	}
	return out
}
