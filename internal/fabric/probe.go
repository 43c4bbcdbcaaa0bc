package fabric

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// ProbeResult is how a return-path probe ended.
type ProbeResult string

// Probe results. A probe that could not be sent at all (no docker0, no permission) is not a
// result: the host reports nothing, since it proved nothing about the path.
const (
	ProbeOK     ProbeResult = "ok"     // at least one reply came back to the docker0 gateway address
	ProbeFailed ProbeResult = "failed" // none did
)

// Probe limits: one place for the bounds the CLI and the API both hold a probe to.
const (
	ProbeMaxCount      = 20
	ProbeMinTimeout    = 100 * time.Millisecond
	ProbeMaxTimeout    = 30 * time.Second
	DefaultProbeMaxAge = 15 * time.Minute
)

// Probe is one return-path probe a Docker host ran and reported: packets sent from its docker0
// gateway address to Target, so that replies come back only over the routes returnpath
// installed (not to the host's uplink address). A Target with port 0 is an ICMP echo; any
// other port a TCP connection attempt, for targets that drop ICMP.
type Probe struct {
	Host     string
	Target   netip.AddrPort
	Source   netip.Addr // the docker0 gateway address the packets left from
	Result   ProbeResult
	Sent     int
	Received int
	RTT      time.Duration // mean round trip of the replies; 0 when none came
	At       time.Time     // when the host ran it
	By       string        // the token that reported it
}

// Family is the target's address family, "ipv4" or "ipv6".
func (p Probe) Family() string {
	if p.Target.Addr().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// Method is "icmp" for an echo probe and "tcp" for a connection attempt to Target's port.
func (p Probe) Method() string {
	if p.Target.Port() == 0 {
		return "icmp"
	}
	return "tcp"
}

// ValidateProbeOptions checks the count and per-probe timeout a host probes with.
func ValidateProbeOptions(count int, timeout time.Duration) error {
	if count < 1 || count > ProbeMaxCount {
		return FieldErrorf(EINVALID, "count", "want 1 to %d probes, got %d", ProbeMaxCount, count)
	}
	if timeout < ProbeMinTimeout || timeout > ProbeMaxTimeout {
		return FieldErrorf(EINVALID, "timeout", "want %s to %s, got %s", ProbeMinTimeout, ProbeMaxTimeout, timeout)
	}
	return nil
}

// ValidateProbeTarget checks that t (reported under field) can prove a return path: an IPv4
// unicast address outside every pool and every segment's host range. A target inside a pool
// is another host's container network, and one inside a segment is reached over the hosts'
// own link: neither reply would travel the return path the routes make.
func (inv *Inventory) ValidateProbeTarget(field string, t netip.AddrPort) *Error {
	a := t.Addr()
	switch {
	case !a.IsValid():
		return FieldErrorf(EINVALID, field, "is required")
	case !a.Is4() || a.Zone() != "":
		return FieldErrorf(EINVALID, field, "%s: only IPv4 targets can be probed", a)
	case !a.IsGlobalUnicast() && !a.IsPrivate():
		return FieldErrorf(EINVALID, field, "%s is not a unicast address", a)
	}
	for _, p := range inv.Pools {
		if p.Prefix.Contains(a) {
			return FieldErrorf(EINVALID, field, "%s is inside pool %s (%s): a probe must leave the container networks", a, p.Name, p.Prefix)
		}
	}
	for _, s := range inv.Segments {
		if s.Hosts.Contains(a) {
			return FieldErrorf(EINVALID, field, "%s is inside segment %s (%s): its replies would not take the return path", a, s.Name, s.Hosts)
		}
	}
	return nil
}

// ValidateProbe checks a probe host h reports: its target, a result that agrees with its
// counts and round trip, a source that is h's docker0 gateway address (a host that reports
// under another host's name gives its own gateway and is refused), and a time that is neither
// unset nor ahead of now by more than a clock's slack.
func (inv *Inventory) ValidateProbe(h Host, p Probe, now time.Time) error {
	if err := inv.ValidateProbeTarget("target", p.Target); err != nil {
		return err
	}
	switch {
	case p.Result != ProbeOK && p.Result != ProbeFailed:
		return FieldErrorf(EINVALID, "result", "want ok or failed, got %q", p.Result)
	case p.Sent < 1 || p.Sent > ProbeMaxCount:
		return FieldErrorf(EINVALID, "sent", "want 1 to %d, got %d", ProbeMaxCount, p.Sent)
	case p.Received < 0 || p.Received > p.Sent:
		return FieldErrorf(EINVALID, "received", "want 0 to sent (%d), got %d", p.Sent, p.Received)
	case (p.Result == ProbeOK) != (p.Received > 0):
		return FieldErrorf(EINVALID, "result", "%s does not agree with %d of %d replies", p.Result, p.Received, p.Sent)
	case p.RTT < 0 || (p.Result == ProbeFailed && p.RTT != 0) || (p.Result == ProbeOK && p.RTT == 0):
		return FieldErrorf(EINVALID, "rtt_ms", "a round trip is set exactly when a reply came")
	case p.RTT > ProbeMaxTimeout:
		return FieldErrorf(EINVALID, "rtt_ms", "%s is longer than any probe waits (%s)", p.RTT, ProbeMaxTimeout)
	case !p.Source.IsValid():
		return FieldErrorf(EINVALID, "source", "is required: the docker0 gateway address the probe was sent from")
	case p.Source != h.Gateway():
		return FieldErrorf(EINVALID, "source", "%s is not host %s's docker0 gateway address %s", p.Source, h.Name, h.Gateway())
	case p.At.IsZero():
		return FieldErrorf(EINVALID, "at", "is required")
	case p.At.After(now.Add(probeClockSlack)):
		return FieldErrorf(EINVALID, "at", "%s is in the future", p.At.UTC().Format(time.RFC3339))
	}
	return nil
}

// probeClockSlack is how far ahead of the service's clock a host's may run.
const probeClockSlack = time.Minute

// ProbeSettings are the probes a segment's hosts run (probes in the configuration, global or
// per segment): the targets a host probes when none is named, and how old a host's last
// probe may be before verify with probes counts it as failing.
type ProbeSettings struct {
	Targets []netip.AddrPort
	MaxAge  time.Duration
}

// ValidateProbes checks probe settings under key (e.g. "probes" or "segments[1].probes"):
// every target outside every pool and segment, none twice, and a positive max_age.
func (inv *Inventory) ValidateProbes(key string, ps ProbeSettings) []*Error {
	var errs []*Error
	for i, t := range ps.Targets {
		f := fmt.Sprintf("%s.targets[%d]", key, i)
		if err := inv.ValidateProbeTarget(f, t); err != nil {
			errs = append(errs, err)
		} else if slices.Contains(ps.Targets[:i], t) {
			errs = append(errs, FieldErrorf(EINVALID, f, "%s is listed twice", t))
		}
	}
	if ps.MaxAge <= 0 {
		errs = append(errs, FieldErrorf(EINVALID, key+".max_age", "want a positive duration such as 15m, got %s", ps.MaxAge))
	}
	return errs
}

// ProbeStatus is a host's verdict in a verification with probes.
type ProbeStatus string

// Probe verdicts: only ok passes.
const (
	ProbeStatusOK     ProbeStatus = "ok"     // the last probe came back, within max_age
	ProbeStatusFailed ProbeStatus = "failed" // the last probe got no reply
	ProbeStatusStale  ProbeStatus = "stale"  // the last probe is older than max_age
	ProbeStatusNone   ProbeStatus = "none"   // the host never reported a probe
)

// ProbeVerdict is one host's data-plane verdict.
type ProbeVerdict struct {
	Host    string
	Segment string
	Status  ProbeStatus
	Last    *Probe // nil when the host never reported one
	MaxAge  time.Duration
}

// JudgeProbes returns, for each active host, the verdict on its last probe (Host.LastProbe)
// under maxAge, the segment's probes.max_age. Hosts that are not active are left out: their
// return routes are not meant to work yet, or no longer. The verdicts are in the order of
// hosts.
func JudgeProbes(hosts []Host, maxAge func(segment string) time.Duration, now time.Time) []ProbeVerdict {
	var out []ProbeVerdict
	for _, h := range hosts {
		if h.State != HostActive {
			continue
		}
		v := ProbeVerdict{Host: h.Name, Segment: h.Segment, MaxAge: maxAge(h.Segment)}
		p := h.LastProbe
		switch {
		case p == nil:
			v.Status = ProbeStatusNone
		case p.Result != ProbeOK:
			v.Status = ProbeStatusFailed
		case now.Sub(p.At) > v.MaxAge:
			v.Status = ProbeStatusStale
		default:
			v.Status = ProbeStatusOK
		}
		v.Last = p
		out = append(out, v)
	}
	return out
}

// ProbeMaxAge returns probes.max_age of segment seg, DefaultProbeMaxAge when the segment is
// unknown or sets none.
func (inv *Inventory) ProbeMaxAge(seg string) time.Duration {
	if s, ok := inv.Segment(seg); ok && s.Probes.MaxAge > 0 {
		return s.Probes.MaxAge
	}
	return DefaultProbeMaxAge
}

// ParseProbeTarget parses a probe target: "ADDR" for an ICMP echo, "ADDR:PORT" for a TCP
// connection attempt to PORT (1 to 65535).
func ParseProbeTarget(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 0), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("want ADDR (ICMP echo) or ADDR:PORT (TCP, port 1 to 65535), got %q", s)
	}
	return ap, nil
}
