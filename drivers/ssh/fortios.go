package ssh

import (
	"bufio"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Fortinet FortiOS rendering and parsing. Everything here is pure: the driver in
// fortiosdriver.go feeds it the firewall's text.
//
// Sources (Fortinet's documentation, read through the project's search tool):
//   - "config router static" and its fields (seq-num, dst as ipv4-classnet, gateway, device,
//     comment, vrf): FortiOS CLI Reference, https://docs.fortinet.com/document/container-fortios/7.2.1/cli-reference/200835411
//     and the FortiProxy 7.4 reference with the same table; "config router static6" takes
//     the same fields with an IPv6 prefix (FortiOS 6.0 CLI Reference, "router {static |
//     static6}", https://docs.fortinet.com/document/fortigate/6.0.5/cli-reference/524231);
//     static6 has had "set vrf {integer}" since 7.0 (FortiOS CLI Reference 7.2.2, "config
//     router static6", https://docs.fortinet.com/document/fortigate/7.2.2/cli-reference/564620).
//     The field is spelt "comment" (the GUI calls it Comments).
//   - "edit 0" creates a new entry and FortiOS assigns the next unused number when the
//     entry is saved at "next" or "end": FortiOS Administration Guide, "Subcommands",
//     https://docs.fortinet.com/document/fortigate/7.4.0/administration-guide/627485.

// fortiosOwner is the comment returnpath gives every static route it adds on FortiOS; reads
// count only entries carrying it.
const fortiosOwner = "returnpath"

// fortiosDeviceRE is what the driver accepts as an egress interface: FortiOS's "device" is a
// string of at most 35 characters naming an interface, zone or tunnel; returnpath accepts
// only letters, digits, '_', '.' and '-', so that nothing but a name reaches the CLI.
var fortiosDeviceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,34}$`)

// fortiosMaxVRF is the highest VRF number FortiOS 7.2 and later accept in "set vrf".
const fortiosMaxVRF = 251

// fortiosVRF maps a returnpath VRF name to FortiOS's VRF number: "default" is VRF 0 (no "set
// vrf" line), and the names "1" to "251" are those VRFs. Any other name cannot be rendered.
func fortiosVRF(vrf string) (int, error) {
	if vrf == route.DefaultVRF {
		return 0, nil
	}
	n, err := strconv.Atoi(vrf)
	if err != nil || n < 1 || n > fortiosMaxVRF || strconv.Itoa(n) != vrf {
		return 0, &route.FieldError{Field: "vrf", Message: fmt.Sprintf("FortiOS VRFs are numbers: want default or 1 to %d, got %q", fortiosMaxVRF, vrf)}
	}
	return n, nil
}

// FortiOSCheck validates the fortinet_fortios settings of cfg: the egress interface
// (fortios.device) is required and must be a plain interface name, and the device's VRF a
// FortiOS VRF number or default.
func FortiOSCheck(cfg drivers.Config) error {
	if cfg.FortiOS.Device == "" {
		return &route.FieldError{Field: "fortios.device", Message: "is required: FortiOS needs the egress interface of every static route (e.g. port1)"}
	}
	if !fortiosDeviceRE.MatchString(cfg.FortiOS.Device) {
		return &route.FieldError{Field: "fortios.device", Message: fmt.Sprintf("invalid interface name %q: 1-35 letters, digits, '_', '.', '-'", cfg.FortiOS.Device)}
	}
	if cfg.VRF != "" {
		if _, err := fortiosVRF(cfg.VRF); err != nil {
			return err
		}
	}
	return nil
}

// fortiosCheckOps refuses, before anything is sent, a batch the driver cannot render: the
// checks every driver makes, the device settings, and VRF names FortiOS cannot hold.
func fortiosCheckOps(cfg drivers.Config, ops []route.RouteOp) error {
	if err := checkOps(cfg, ops); err != nil {
		return err
	}
	if err := FortiOSCheck(cfg); err != nil {
		return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "%w", err)
	}
	for i, op := range ops {
		if _, err := fortiosVRF(op.Route.VRF); err != nil {
			return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "op %d (%s): %w", i, op, err)
		}
	}
	return checkSameRoute(cfg, ops)
}

// fortiosTable returns the configuration table holding routes of p's family.
func fortiosTable(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "static"
	}
	return "static6"
}

// fortiosDst renders a destination as FortiOS writes it: "A MASK" for IPv4 (ipv4-classnet),
// the prefix for IPv6.
func fortiosDst(p netip.Prefix) string {
	if !p.Addr().Is4() {
		return p.String()
	}
	var m [4]byte
	for i := range p.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return p.Addr().String() + " " + netip.AddrFrom4(m).String()
}

// fortiosAddLines renders one new entry: "edit 0" (FortiOS numbers it at "next"), the
// route's fields, the owner's comment, "next". r must have passed Validate and fortiosVRF;
// device must match fortiosDeviceRE: every byte is then printable and no value holds a quote
// or a space.
func fortiosAddLines(r route.Route, device string) []string {
	lines := []string{
		"edit 0",
		"set dst " + fortiosDst(r.Prefix),
		"set gateway " + r.NextHop.String(),
		"set device " + device,
	}
	if vrf, _ := fortiosVRF(r.VRF); vrf != 0 {
		lines = append(lines, "set vrf "+strconv.Itoa(vrf))
	}
	return append(lines, `set comment "`+fortiosOwner+`"`, "next")
}

// fortiosOp is one op to send, with the sequence numbers of the entries a delete removes.
type fortiosOp struct {
	Index int // in the ops passed to Apply
	Op    route.RouteOp
	Seqs  []uint32 // delete only: every entry of the route carrying returnpath's comment
}

// fortiosBatch renders ops as lines, one "config router static" (or "static6") block per run
// of ops of one family, in order: an add is a new entry, a delete is "delete N" for each of
// the route's entries. With preview, a delete is shown as "delete <seq of ROUTE>" instead:
// the sequence numbers are read from the firewall only when the batch is sent.
func fortiosBatch(ops []fortiosOp, device string, preview bool) lineBatch {
	var b lineBatch
	table := ""
	for _, o := range ops {
		if t := fortiosTable(o.Op.Route.Prefix); t != table {
			if table != "" {
				b.add(-1, "end")
			}
			table = t
			b.add(-1, "config router "+t)
		}
		switch {
		case o.Op.Action == route.ActionAdd:
			b.add(o.Index, fortiosAddLines(o.Op.Route, device)...)
		case preview:
			b.add(o.Index, "delete <seq of "+o.Op.Route.String()+">")
		default:
			for _, seq := range o.Seqs {
				b.add(o.Index, "delete "+strconv.FormatUint(uint64(seq), 10))
			}
		}
	}
	if table != "" {
		b.add(-1, "end")
	}
	return b
}

// FortiOSPreview renders ops as the lines the fortinet_fortios driver sends. A delete is
// shown as "delete <seq of ROUTE>": FortiOS deletes entries by the sequence number it
// assigned, which the driver reads from the firewall when the batch is sent (deletes of
// routes the firewall does not hold under returnpath's comment are dropped then). Invalid
// ops, prefixes outside cfg.Managed and VRFs FortiOS cannot hold are refused.
func FortiOSPreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := fortiosCheckOps(cfg, ops); err != nil {
		return nil, err
	}
	fops := make([]fortiosOp, len(ops))
	for i, op := range ops {
		fops[i] = fortiosOp{Index: i, Op: op}
	}
	return fortiosBatch(fops, cfg.FortiOS.Device, true).Lines, nil
}

// fortiosEntry is one "edit N" block of "show router static" (or "static6"): its sequence
// number and its "set" fields, each as the words after the field name, unquoted.
type fortiosEntry struct {
	Seq    uint32
	Fields map[string][]string
	Nested bool // the entry holds a "config" sub-table: not a plain route
}

// parseFortiOSEntries reads the entries of a "show router static" (or "static6") listing:
//
//	config router static
//	    edit 1
//	        set dst 10.210.10.0 255.255.255.0
//	        set gateway 10.10.20.1
//	        set device "port1"
//	        set comment "returnpath"
//	    next
//	end
func parseFortiOSEntries(text string) []fortiosEntry {
	var out []fortiosEntry
	var cur *fortiosEntry
	depth := 0 // nested "config" blocks inside the current entry
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := fortiosWords(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case cur == nil && f[0] == "edit" && len(f) == 2:
			seq, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil {
				continue
			}
			cur = &fortiosEntry{Seq: uint32(seq), Fields: map[string][]string{}}
		case cur == nil:
		case f[0] == "config":
			depth++
			cur.Nested = true
		case f[0] == "end" && depth > 0:
			depth--
		case depth > 0:
		case f[0] == "set" && len(f) >= 2:
			cur.Fields[f[1]] = f[2:]
		case f[0] == "next" && len(f) == 1:
			out = append(out, *cur)
			cur = nil
		}
	}
	return out
}

// fortiosWords splits a line of FortiOS configuration into words; a double-quoted word may
// hold spaces and backslash-escaped characters.
func fortiosWords(line string) []string {
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

// fortiosOwned reports whether e carries returnpath's comment. Every such entry is
// returnpath's, even one that does not read as a route (the driver deletes those it created
// when it undoes a batch).
func (e fortiosEntry) fortiosOwned() bool {
	c := e.Fields["comment"]
	return len(c) == 1 && c[0] == fortiosOwner
}

// fortiosPlainFields are the fields of an entry of exactly the form returnpath renders.
var fortiosPlainFields = map[string]bool{"dst": true, "gateway": true, "device": true, "comment": true, "vrf": true}

// route returns the route e holds when it is of exactly the form returnpath renders, with
// returnpath's comment: a destination (absent means the default route, which FortiOS does
// not print), a gateway, a device, optionally a VRF, and nothing else (a disabled entry, a
// distance, a blackhole, an address object or an SD-WAN zone make it someone else's).
func (e fortiosEntry) route(v6 bool) (route.Route, bool) {
	if !e.fortiosOwned() || e.Nested {
		return route.Route{}, false
	}
	for k := range e.Fields {
		if !fortiosPlainFields[k] {
			return route.Route{}, false
		}
	}
	if d := e.Fields["device"]; len(d) != 1 || !fortiosDeviceRE.MatchString(d[0]) {
		return route.Route{}, false
	}
	var p netip.Prefix
	var err error
	switch dst := e.Fields["dst"]; {
	case dst == nil && v6:
		p = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	case dst == nil:
		p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case len(dst) == 1:
		p, err = netip.ParsePrefix(dst[0])
	case len(dst) == 2 && !v6:
		p, err = fortiosClassnet(dst[0], dst[1])
	default:
		return route.Route{}, false
	}
	if err != nil {
		return route.Route{}, false
	}
	gw := e.Fields["gateway"]
	if len(gw) != 1 {
		return route.Route{}, false
	}
	nh, err := netip.ParseAddr(gw[0])
	if err != nil {
		return route.Route{}, false
	}
	vrf := route.DefaultVRF
	if v := e.Fields["vrf"]; v != nil {
		if len(v) != 1 {
			return route.Route{}, false
		}
		if v[0] != "0" {
			if _, err := fortiosVRF(v[0]); err != nil {
				return route.Route{}, false
			}
			vrf = v[0]
		}
	}
	r := route.Route{VRF: vrf, Prefix: p, NextHop: nh}
	if r.Validate() != nil || p.Addr().Is6() != v6 || nh.IsUnspecified() {
		return route.Route{}, false
	}
	return r, true
}

// fortiosClassnet parses "A MASK" with a contiguous mask.
func fortiosClassnet(a, mask string) (netip.Prefix, error) {
	addr, err := netip.ParseAddr(a)
	if err != nil || !addr.Is4() {
		return netip.Prefix{}, fmt.Errorf("bad address %q", a)
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() {
		return netip.Prefix{}, fmt.Errorf("bad mask %q", mask)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 0
	for bits < 32 && v&(1<<(31-bits)) != 0 {
		bits++
	}
	if bits < 32 && v<<bits != 0 {
		return netip.Prefix{}, fmt.Errorf("non-contiguous mask %q", mask)
	}
	return netip.PrefixFrom(addr, bits), nil
}

// parseFortiOSRoutes reads the routes returnpath owns from a "show router static" (v6
// false) or "show router static6" listing.
func parseFortiOSRoutes(text string, v6 bool) []route.Route {
	var out []route.Route
	for _, e := range parseFortiOSEntries(text) {
		if r, ok := e.route(v6); ok {
			out = append(out, r)
		}
	}
	return out
}

// FortiOS prompts: "FGT # " at the top, "FGT (static) # " in a table, "FGT (0) # " in an
// entry; the hostname is at most 35 characters.
var (
	fortiosPromptLine = regexp.MustCompile(`^[\w.\-]{1,35}(?: \([\w.\-]{1,63}\))? # ?(.*)$`)
	fortiosPrompts    = cliPrompts{
		Line:  fortiosPromptLine,
		End:   regexp.MustCompile(`(?:^|\n)[\w.\-]{1,35}(?: \([\w.\-]{1,63}\))? # ?$`),
		Exec:  regexp.MustCompile(`(?:^|\n)[\w.\-]{1,35} # ?$`),
		Pager: []byte("--More--"),
	}
)

// fortiosRefusal returns FortiOS's error text for one line's output, or "" when it was
// accepted. FortiOS ends every refused command with "Command fail. Return code N", after
// the reason ("command parse error before ...", "value parse error before ...", "entry not
// found in datasource").
func fortiosRefusal(output []string) string {
	failed := false
	var lines []string
	for _, l := range output {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "Command fail.") || strings.HasPrefix(t, "Unknown action") {
			failed = true
		}
		if t != "" {
			lines = append(lines, t)
		}
	}
	if !failed {
		return ""
	}
	return strings.Join(lines, "\n")
}

// fortiosVersion turns "get system status" into one line: its "Version:" value, e.g.
// "FortiGate-VM64 v7.2.5,build1517,230606 (GA.F)".
func fortiosVersion(out string) string {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return versionLine(out)
}
