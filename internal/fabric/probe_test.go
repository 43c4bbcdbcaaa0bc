package fabric_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
)

var ap = netip.MustParseAddrPort

func TestValidateProbeTarget(t *testing.T) {
	t.Parallel()
	inv := labInventory()
	tests := []struct {
		name   string
		target netip.AddrPort
		ok     bool
	}{
		{name: "internet address", target: ap("198.51.100.1:0"), ok: true},
		{name: "internet address with a tcp port", target: ap("198.51.100.1:443"), ok: true},
		{name: "private address outside pools and segments", target: ap("10.10.20.2:0"), ok: true},
		{name: "inside the pool", target: ap("10.210.10.2:0")},
		{name: "pool edge", target: ap("10.210.255.255:0")},
		{name: "inside the segment", target: ap("10.10.10.1:0")},
		{name: "unset", target: netip.AddrPort{}},
		{name: "ipv6", target: ap("[2001:db8::1]:0")},
		{name: "multicast", target: ap("224.0.0.1:0")},
		{name: "loopback", target: ap("127.0.0.1:0")},
	}
	for _, tt := range tests {
		err := inv.ValidateProbeTarget("target", tt.target)
		if tt.ok {
			if err != nil {
				t.Errorf("%s: ValidateProbeTarget(%s) = %v, want nil", tt.name, tt.target, err)
			}
			continue
		}
		if err == nil || err.Code != fabric.EINVALID || err.Field != "target" {
			t.Errorf("%s: ValidateProbeTarget(%s) = %#v, want an invalid error naming target", tt.name, tt.target, err)
		}
	}
}

func TestValidateProbeOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		count     int
		timeout   time.Duration
		wantField string // "" for valid
	}{
		{name: "defaults", count: 3, timeout: 2 * time.Second},
		{name: "bounds", count: fabric.ProbeMaxCount, timeout: fabric.ProbeMaxTimeout},
		{name: "no probe", count: 0, timeout: time.Second, wantField: "count"},
		{name: "too many", count: fabric.ProbeMaxCount + 1, timeout: time.Second, wantField: "count"},
		{name: "timeout too short", count: 1, timeout: time.Millisecond, wantField: "timeout"},
		{name: "timeout too long", count: 1, timeout: time.Minute, wantField: "timeout"},
	}
	for _, tt := range tests {
		err := fabric.ValidateProbeOptions(tt.count, tt.timeout)
		if got := fieldOf(err); got != tt.wantField {
			t.Errorf("%s: field at fault = %q (%v), want %q", tt.name, got, err, tt.wantField)
		}
	}
}

func fieldOf(err error) string {
	if err == nil {
		return ""
	}
	fe, ok := err.(*fabric.Error)
	if !ok || fe.Code != fabric.EINVALID {
		return "not an invalid *fabric.Error"
	}
	return fe.Field
}

func TestValidateProbe(t *testing.T) {
	t.Parallel()
	inv := labInventory()
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	h := fabric.Host{Name: "d1", Segment: "rack1", Subnet: pfx("10.210.10.0/24"), State: fabric.HostActive}
	good := fabric.Probe{Host: "d1", Target: ap("198.51.100.1:0"), Source: addr("10.210.10.1"), Result: fabric.ProbeOK,
		Sent: 3, Received: 3, RTT: time.Millisecond, At: now}
	tests := []struct {
		name      string
		edit      func(*fabric.Probe)
		wantField string
	}{
		{name: "good", edit: func(*fabric.Probe) {}},
		{name: "failed, no rtt", edit: func(p *fabric.Probe) { p.Result, p.Received, p.RTT = fabric.ProbeFailed, 0, 0 }},
		{name: "no source given", edit: func(p *fabric.Probe) { p.Source = netip.Addr{} }, wantField: "source"},
		{name: "target in pool", edit: func(p *fabric.Probe) { p.Target = ap("10.210.20.5:0") }, wantField: "target"},
		{name: "unknown result", edit: func(p *fabric.Probe) { p.Result = "maybe" }, wantField: "result"},
		{name: "ok without replies", edit: func(p *fabric.Probe) { p.Received = 0 }, wantField: "result"},
		{name: "failed with replies", edit: func(p *fabric.Probe) { p.Result = fabric.ProbeFailed }, wantField: "result"},
		{name: "more replies than sent", edit: func(p *fabric.Probe) { p.Received = 4 }, wantField: "received"},
		{name: "nothing sent", edit: func(p *fabric.Probe) { p.Sent, p.Received = 0, 0 }, wantField: "sent"},
		{name: "ok without rtt", edit: func(p *fabric.Probe) { p.RTT = 0 }, wantField: "rtt_ms"},
		{name: "failed with rtt", edit: func(p *fabric.Probe) { p.Result, p.Received = fabric.ProbeFailed, 0 }, wantField: "rtt_ms"},
		{name: "absurd rtt", edit: func(p *fabric.Probe) { p.RTT = time.Hour }, wantField: "rtt_ms"},
		{name: "another host's gateway", edit: func(p *fabric.Probe) { p.Source = addr("10.210.11.1") }, wantField: "source"},
		{name: "no time", edit: func(p *fabric.Probe) { p.At = time.Time{} }, wantField: "at"},
		{name: "in the future", edit: func(p *fabric.Probe) { p.At = now.Add(time.Hour) }, wantField: "at"},
	}
	for _, tt := range tests {
		p := good
		tt.edit(&p)
		err := inv.ValidateProbe(h, p, now)
		if got := fieldOf(err); got != tt.wantField {
			t.Errorf("%s: field at fault = %q (%v), want %q", tt.name, got, err, tt.wantField)
		}
	}
}

func TestValidateProbes(t *testing.T) {
	t.Parallel()
	inv := labInventory()
	ps := fabric.ProbeSettings{
		Targets: []netip.AddrPort{ap("198.51.100.1:0"), ap("10.210.0.9:0"), ap("198.51.100.1:0"), ap("10.10.10.7:22")},
		MaxAge:  0,
	}
	var got []string
	for _, e := range inv.ValidateProbes("segments[0].probes", ps) {
		got = append(got, e.Field)
	}
	want := []string{"segments[0].probes.targets[1]", "segments[0].probes.targets[2]", "segments[0].probes.targets[3]", "segments[0].probes.max_age"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields at fault (-want +got):\n%s", diff)
	}
	if errs := inv.ValidateProbes("probes", fabric.ProbeSettings{MaxAge: time.Minute}); len(errs) != 0 {
		t.Errorf("no targets and a max_age: %v, want no error", errs)
	}
}

func TestJudgeProbes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	host := func(name string, state fabric.HostState) fabric.Host {
		return fabric.Host{Name: name, Segment: "rack1", State: state}
	}
	probe := func(r fabric.ProbeResult, ago time.Duration) fabric.Probe {
		return fabric.Probe{Result: r, At: now.Add(-ago)}
	}
	hosts := []fabric.Host{host("fresh", fabric.HostActive), host("failed", fabric.HostActive), host("stale", fabric.HostActive),
		host("never", fabric.HostActive), host("pending", fabric.HostPending), host("edge", fabric.HostActive)}
	last := map[string]fabric.Probe{
		"fresh": probe(fabric.ProbeOK, time.Minute), "failed": probe(fabric.ProbeFailed, time.Minute),
		"stale": probe(fabric.ProbeOK, 16*time.Minute), "pending": probe(fabric.ProbeFailed, time.Minute),
		"edge": probe(fabric.ProbeOK, 15*time.Minute),
	}
	for i, h := range hosts {
		if p, ok := last[h.Name]; ok {
			hosts[i].LastProbe = &p
		}
	}
	got := map[string]fabric.ProbeStatus{}
	for _, v := range fabric.JudgeProbes(hosts, func(string) time.Duration { return 15 * time.Minute }, now) {
		got[v.Host] = v.Status
		if (v.Last == nil) != (v.Status == fabric.ProbeStatusNone) {
			t.Errorf("%s: Last = %v with status %s", v.Host, v.Last, v.Status)
		}
	}
	want := map[string]fabric.ProbeStatus{"fresh": fabric.ProbeStatusOK, "failed": fabric.ProbeStatusFailed,
		"stale": fabric.ProbeStatusStale, "never": fabric.ProbeStatusNone, "edge": fabric.ProbeStatusOK}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}
