package toyos

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/returnpath/returnpath/drivers/route"
)

// Device is an in-memory ToyOS box. It stands in for the remote end of a real transport (an
// SSH session, a gNMI target): it speaks the ToyOS command language line by line, answers
// refused lines with "% ..." texts, and keeps a route table that persists across sessions.
//
// ToyOS commands:
//
//	route add vrf V P via NH [tag T]
//	route del vrf V P via NH tag T     deletes only a route carrying tag T
//	show routes                        one line per route: "vrf V P via NH [tag T]"
type Device struct {
	name     string
	username string
	password string

	mu      sync.Mutex
	vrfs    []string
	refuse  []netip.Addr // next hops the device answers "% next hop unreachable" for
	routes  map[entry]string
	current int // open sessions
}

type entry struct {
	vrf     string
	prefix  netip.Prefix
	nextHop netip.Addr
}

// NewDevice returns an empty device called name that accepts username and password, has the
// default VRF and vrfs, and refuses every route via one of refuse (one per address family).
func NewDevice(name, username, password string, refuse []netip.Addr, vrfs ...string) *Device {
	return &Device{name: name, username: username, password: password, refuse: refuse,
		vrfs: append([]string{route.DefaultVRF}, vrfs...), routes: map[entry]string{}}
}

// errClosed is what a session's Exec returns once the session is gone.
var errClosed = errors.New("session closed")

// errLogin is what Login returns for wrong credentials.
var errLogin = errors.New("% Login incorrect")

// session is one login to the device.
type session struct {
	dev    *Device
	mu     sync.Mutex
	closed bool
}

// login starts a session, as an SSH handshake with password authentication would.
func (d *Device) login(username, password string) (*session, error) {
	if username != d.username || password != d.password {
		return nil, errLogin
	}
	d.mu.Lock()
	d.current++
	d.mu.Unlock()
	return &session{dev: d}, nil
}

// Exec runs one command line and returns the device's answer.
func (s *session) Exec(line string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errClosed
	}
	return s.dev.exec(line), nil
}

func (s *session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.dev.mu.Lock()
		s.dev.current--
		s.dev.mu.Unlock()
	}
}

func (d *Device) exec(line string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := strings.Fields(line)
	if len(f) == 2 && f[0] == "show" && f[1] == "routes" {
		return d.show()
	}
	// route add|del vrf V P via NH [tag T]
	if len(f) != 7 && len(f) != 9 || f[0] != "route" || f[2] != "vrf" || f[5] != "via" || len(f) == 9 && f[7] != "tag" {
		return "% Invalid input: " + line
	}
	p, err1 := netip.ParsePrefix(f[4])
	nh, err2 := netip.ParseAddr(f[6])
	if err1 != nil || err2 != nil {
		return "% Invalid address: " + line
	}
	if !slices.Contains(d.vrfs, f[3]) {
		return fmt.Sprintf("%% VRF %s does not exist", f[3])
	}
	tag := ""
	if len(f) == 9 {
		tag = f[8]
	}
	e := entry{vrf: f[3], prefix: p, nextHop: nh}
	switch f[1] {
	case "add":
		if slices.Contains(d.refuse, nh) {
			return "% next hop " + nh.String() + " unreachable"
		}
		d.routes[e] = tag
		return ""
	case "del":
		if t, ok := d.routes[e]; !ok || t != tag {
			return "% no such route"
		}
		delete(d.routes, e)
		return ""
	}
	return "% Invalid input: " + line
}

func (d *Device) show() string {
	var b strings.Builder
	for e, tag := range d.routes {
		fmt.Fprintf(&b, "vrf %s %s via %s", e.vrf, e.prefix, e.nextHop)
		if tag != "" {
			fmt.Fprintf(&b, " tag %s", tag)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// AllRoutes lists every route on the device, whoever made it, read out of band.
func (d *Device) AllRoutes() []route.Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]route.Route, 0, len(d.routes))
	for e := range d.routes {
		out = append(out, route.Route{VRF: e.vrf, Prefix: e.prefix, NextHop: e.nextHop})
	}
	return out
}

// Plant adds r out of band with tag (empty for a route someone typed by hand).
func (d *Device) Plant(r route.Route, tag string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.routes[entry{vrf: r.VRF, prefix: r.Prefix, nextHop: r.NextHop}] = tag
}

// Remove deletes r out of band, whatever its tag.
func (d *Device) Remove(r route.Route) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.routes, entry{vrf: r.VRF, prefix: r.Prefix, nextHop: r.NextHop})
}

// Sessions returns how many sessions are open.
func (d *Device) Sessions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}
