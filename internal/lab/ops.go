package lab

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Exec runs argv inside one of the lab's namespaces, named by role ("fw1", "ctr1") or in
// full ("<Name>-fw1"), and returns its combined output; on failure the error carries it.
func (l *Lab) Exec(ctx context.Context, ns string, argv ...string) ([]byte, error) {
	name, err := l.ns(ns)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("lab exec in %s: no command", name)
	}
	return run(ctx, nil, append([]string{"ip", "netns", "exec", name}, argv...)...)
}

// Ping sends echo requests (ICMP or ICMPv6, by to's family) from namespace fromNS to to, one
// every 200 ms, and succeeds at the first reply. It gives up after two seconds (up to 10
// packets).
func (l *Lab) Ping(ctx context.Context, fromNS string, to netip.Addr) error {
	family := "-4"
	switch {
	case !to.IsValid() || to.Zone() != "" || to.Is4In6():
		return fmt.Errorf("lab ping: %v is not an IPv4 or IPv6 address without a zone", to)
	case to.Is6():
		family = "-6"
	}
	_, err := l.Exec(ctx, fromNS, "ping", family, "-n", "-q", "-c", "1", "-i", "0.2", "-w", "2", to.String())
	return err
}

// SetDockerBridge does what dockerd does with daemon.json's bip on a lab host: docker0 gets
// bip, the container gets the next address in the same prefix with a default route via bip.
// Earlier addresses are replaced. It returns the container's address.
func (l *Lab) SetDockerBridge(ctx context.Context, host string, bip netip.Prefix) (netip.Addr, error) {
	h, ok := l.Hosts[host]
	if !ok {
		return netip.Addr{}, fmt.Errorf("lab %s: no host %q", l.Name, host)
	}
	ctr, err := containerAddr(bip)
	if err != nil {
		return netip.Addr{}, err
	}
	// "to 0.0.0.0/0": only IPv4 addresses go; those of SetDockerBridge6 stay.
	if err := ipBatch(ctx, h.Namespace, []string{
		"addr flush dev docker0 to 0.0.0.0/0",
		"addr add " + bip.String() + " dev docker0",
		"link set dev docker0 up",
	}); err != nil {
		return netip.Addr{}, err
	}
	if err := ipBatch(ctx, h.Container, []string{
		"addr flush dev eth0 to 0.0.0.0/0",
		"addr add " + netip.PrefixFrom(ctr, bip.Bits()).String() + " dev eth0",
		"link set dev eth0 up",
		"route replace default via " + bip.Addr().String(),
	}); err != nil {
		return netip.Addr{}, err
	}
	return ctr, nil
}

// SetDockerBridge6 does what dockerd does with daemon.json's "ipv6": true and fixed-cidr-v6
// on a lab host: docker0 gets gw (the gateway address in the fixed-cidr-v6 prefix, e.g.
// fd00:210:0:1::1/64), the container gets the next address with a default IPv6 route via gw.
// Earlier global IPv6 addresses are replaced; IPv4 addresses and link-local ones stay. It
// returns the container's address.
func (l *Lab) SetDockerBridge6(ctx context.Context, host string, gw netip.Prefix) (netip.Addr, error) {
	h, ok := l.Hosts[host]
	if !ok {
		return netip.Addr{}, fmt.Errorf("lab %s: no host %q", l.Name, host)
	}
	ctr, err := containerAddr6(gw)
	if err != nil {
		return netip.Addr{}, err
	}
	if err := ipBatch(ctx, h.Namespace, []string{
		"addr flush dev docker0 to ::/0 scope global",
		"addr add " + gw.String() + " dev docker0 nodad",
		"link set dev docker0 up",
	}); err != nil {
		return netip.Addr{}, err
	}
	if err := ipBatch(ctx, h.Container, []string{
		"addr flush dev eth0 to ::/0 scope global",
		"addr add " + netip.PrefixFrom(ctr, gw.Bits()).String() + " dev eth0 nodad",
		"link set dev eth0 up",
		"route replace ::/0 via " + gw.Addr().String(),
	}); err != nil {
		return netip.Addr{}, err
	}
	return ctr, nil
}

// containerAddr6 validates gw as an IPv6 bridge address and returns the address after it.
func containerAddr6(gw netip.Prefix) (netip.Addr, error) {
	a := gw.Addr()
	if !gw.IsValid() || !a.Is6() || a.Is4In6() || a.Zone() != "" || gw.Bits() < 48 || gw.Bits() > 126 {
		return netip.Addr{}, fmt.Errorf("fixed-cidr-v6 gateway %v: want an IPv6 address with a prefix length of 48 to 126", gw)
	}
	if !a.IsGlobalUnicast() {
		return netip.Addr{}, fmt.Errorf("fixed-cidr-v6 gateway %v: want a global unicast or unique local address", gw)
	}
	if a == gw.Masked().Addr() {
		return netip.Addr{}, fmt.Errorf("fixed-cidr-v6 gateway %v: the bridge needs a host address, not the subnet-router anycast address", gw)
	}
	ctr := a.Next()
	if !ctr.IsValid() || !gw.Contains(ctr) {
		return netip.Addr{}, fmt.Errorf("fixed-cidr-v6 gateway %v: no room for a container address after the bridge's", gw)
	}
	return ctr, nil
}

// containerAddr validates bip as a bridge address and returns the address after it.
func containerAddr(bip netip.Prefix) (netip.Addr, error) {
	if !bip.IsValid() || !bip.Addr().Is4() || bip.Bits() > 30 || bip.Bits() < 8 {
		return netip.Addr{}, fmt.Errorf("bip %v: want an IPv4 address with a prefix length of 8 to 30", bip)
	}
	if bip.Addr() == bip.Masked().Addr() {
		return netip.Addr{}, fmt.Errorf("bip %v: the bridge needs a host address, not the network address", bip)
	}
	ctr := bip.Addr().Next()
	b := bip.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (1<<(32-bip.Bits()) - 1)
	var bc [4]byte
	binary.BigEndian.PutUint32(bc[:], v)
	if !bip.Contains(ctr) || ctr == netip.AddrFrom4(bc) {
		return netip.Addr{}, fmt.Errorf("bip %v: no room for a container address after the bridge's", bip)
	}
	return ctr, nil
}

// Status is a snapshot of a lab's namespaces and daemons.
type Status struct {
	Name       string
	Dir        string
	Namespaces []NamespaceStatus
	Processes  []ProcessStatus
}

// NamespaceStatus says whether one lab namespace exists.
type NamespaceStatus struct {
	Name   string
	Exists bool
}

// ProcessStatus says whether one lab daemon still runs.
type ProcessStatus struct {
	Name      string // e.g. "sw1 zebra"
	Namespace string
	PID       int
	Running   bool
}

// Healthy reports whether every namespace exists and every daemon runs.
func (s Status) Healthy() bool {
	if len(s.Namespaces) == 0 {
		return false
	}
	for _, n := range s.Namespaces {
		if !n.Exists {
			return false
		}
	}
	for _, p := range s.Processes {
		if !p.Running {
			return false
		}
	}
	return true
}

// String renders the status as a small table for `returnpath lab status`.
func (s Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s in %s\n", s.Name, s.Dir)
	for _, n := range s.Namespaces {
		fmt.Fprintf(&b, "  netns   %-16s %s\n", n.Name, upDown(n.Exists))
	}
	for _, p := range s.Processes {
		fmt.Fprintf(&b, "  daemon  %-16s pid %-7d %s\n", p.Name, p.PID, upDown(p.Running))
	}
	return b.String()
}

func upDown(ok bool) string {
	if ok {
		return "up"
	}
	return "DOWN"
}

// Status reports which of the lab's namespaces exist and which daemons still run.
func (l *Lab) Status(ctx context.Context) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, err
	}
	l.mu.Lock()
	st := l.st
	l.mu.Unlock()
	s := Status{Name: l.Name, Dir: l.Dir}
	for _, n := range st.Namespaces {
		var fs syscall.Statfs_t
		exists := false
		if _, err := os.Stat(filepath.Join("/var/run/netns", n)); err == nil {
			// A namespace file is an nsfs bind mount; a plain file left behind is not one.
			exists = syscall.Statfs(filepath.Join("/var/run/netns", n), &fs) == nil && fs.Type == nsfsMagic
		}
		s.Namespaces = append(s.Namespaces, NamespaceStatus{Name: n, Exists: exists})
	}
	for _, p := range st.Processes {
		s.Processes = append(s.Processes, ProcessStatus{Name: p.Name, Namespace: p.Namespace, PID: p.PID, Running: p.alive()})
	}
	return s, nil
}

const nsfsMagic = 0x6e736673
