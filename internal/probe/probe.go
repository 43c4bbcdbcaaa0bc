// Package probe sends a Docker host's return-path probe: ICMP echo (or a TCP connection
// attempt) from the docker0 gateway address to a target outside the fabric. Because the
// packets leave from an address of the host's docker0 subnet, a reply can arrive only over
// the return routes returnpath installed, never over the host's uplink address: a reply is
// proof on the wire that containers' traffic comes back.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// CannotTest is a probe that could not be sent at all: no docker0, no address of the host's
// subnet on it, no permission to open the socket. It says nothing about the return path.
type CannotTest struct{ Reason string }

func (e *CannotTest) Error() string { return "cannot test: " + e.Reason }

// Source returns the docker0 gateway address (the first address of subnet) as the interface
// named ifname holds it, or a *CannotTest when the interface is missing or does not hold it.
func Source(ifname string, subnet netip.Prefix) (netip.Addr, error) {
	want := subnet.Masked().Addr().Next()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, &CannotTest{Reason: fmt.Sprintf("no interface %s on this host (is dockerd running with bip %s/%d?)", ifname, want, subnet.Bits())}
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, &CannotTest{Reason: fmt.Sprintf("read the addresses of %s: %v", ifname, err)}
	}
	var held []string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip == want {
			return ip, nil
		}
		held = append(held, a.String())
	}
	return netip.Addr{}, &CannotTest{Reason: fmt.Sprintf("%s holds %v, not the host's gateway address %s of its allocated subnet %s (daemon.json's bip not applied?)", ifname, held, want, subnet)}
}

// Options are one probe's settings.
type Options struct {
	Source  netip.Addr     // the docker0 gateway address to send from
	Target  netip.AddrPort // port 0: ICMP echo; otherwise a TCP connection attempt to it
	Count   int            // packets (or connection attempts) to send
	Timeout time.Duration  // how long to wait for each reply
}

// Result is what came back.
type Result struct {
	Sent     int
	Received int
	RTT      time.Duration // mean round trip of the replies; 0 when none came
	At       time.Time     // when the probe started
}

// Run sends the probe. The error is a *CannotTest when nothing could be sent; otherwise the
// result says how many replies came back (none is a result, not an error).
func Run(ctx context.Context, o Options) (Result, error) {
	if !o.Source.Is4() || !o.Target.Addr().Is4() {
		return Result{}, &CannotTest{Reason: "only IPv4 return paths can be probed"}
	}
	if o.Target.Port() != 0 {
		return runTCP(ctx, o)
	}
	return runICMP(ctx, o)
}

// runTCP attempts Count connections from Source. A completed handshake and a refusal (a RST)
// both prove that packets came back to the source address; a timeout or an unreachable
// network does not.
func runTCP(ctx context.Context, o Options) (Result, error) {
	r := Result{At: time.Now()}
	var total time.Duration
	for range o.Count {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(o.Source, 0)), Timeout: o.Timeout}
		start := time.Now()
		conn, err := d.DialContext(ctx, "tcp4", o.Target.String())
		took := time.Since(start)
		r.Sent++
		switch {
		case err == nil:
			conn.Close()
			r.Received++
			total += took
		case errors.Is(err, syscall.ECONNREFUSED):
			r.Received++
			total += took
		case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
			return Result{}, &CannotTest{Reason: fmt.Sprintf("connect from %s: %v", o.Source, err)}
		case ctx.Err() != nil:
			return r, ctx.Err()
		}
	}
	if r.Received > 0 {
		r.RTT = total / time.Duration(r.Received)
	}
	return r, nil
}

// runICMP sends Count echo requests from Source, one at a time, each waiting up to Timeout
// for its reply. It opens a raw ICMP socket bound to Source (CAP_NET_RAW), and falls back to
// an unprivileged ICMP datagram socket (net.ipv4.ping_group_range) without it; see
// golang.org/x/net/icmp ListenPacket.
func runICMP(ctx context.Context, o Options) (Result, error) {
	raw := true
	conn, err := icmp.ListenPacket("ip4:icmp", o.Source.String())
	if err != nil && isPermission(err) {
		raw = false
		conn, err = icmp.ListenPacket("udp4", o.Source.String())
	}
	if err != nil {
		return Result{}, &CannotTest{Reason: fmt.Sprintf("open an ICMP socket on %s: %v (run as root, with CAP_NET_RAW, or in net.ipv4.ping_group_range)", o.Source, err)}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	// The raw socket sees every echo reply to Source: ours carry our id. The datagram socket
	// gets its id from the kernel and sees only its own replies.
	id := os.Getpid() & 0xffff
	var peer net.Addr = &net.IPAddr{IP: o.Target.Addr().AsSlice()}
	if !raw {
		peer = &net.UDPAddr{IP: o.Target.Addr().AsSlice()}
	}
	r := Result{At: time.Now()}
	var total time.Duration
	buf := make([]byte, 1500)
	for seq := 1; seq <= o.Count; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("returnpath probe")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return Result{}, err
		}
		start := time.Now()
		if _, err := conn.WriteTo(b, peer); err != nil {
			if isPermission(err) {
				return Result{}, &CannotTest{Reason: fmt.Sprintf("send from %s: %v", o.Source, err)}
			}
			// No route to the target and the like: the probe was sent as far as it could go.
			r.Sent++
			continue
		}
		r.Sent++
		if err := conn.SetReadDeadline(start.Add(o.Timeout)); err != nil {
			return Result{}, err
		}
		if waitReply(conn, buf, o.Target.Addr(), id, seq, raw) {
			r.Received++
			total += time.Since(start)
		}
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
	}
	if r.Received > 0 {
		r.RTT = total / time.Duration(r.Received)
	}
	return r, nil
}

// waitReply reads until the echo reply for seq from target arrives (true) or the read
// deadline passes (false).
func waitReply(conn *icmp.PacketConn, buf []byte, target netip.Addr, id, seq int, raw bool) bool {
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return false
		}
		if fromAddr(from) != target {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n]) // 1: ICMP for IPv4
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if ok && e.Seq == seq && (!raw || e.ID == id) {
			return true
		}
	}
}

func fromAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	out, _ := netip.AddrFromSlice(ip)
	return out.Unmap()
}

func isPermission(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission)
}
