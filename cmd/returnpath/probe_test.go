package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/verify"
)

// TestVerifyCmdProbes: verify --probes exits 1 naming a host whose last probe failed or
// never came though every device is in sync, and prints a JUnit testcase per host.
func TestVerifyCmdProbes(t *testing.T) {
	t.Parallel()
	f := newVerifyFleet(t)
	sub := f.addHost(t, "docker-01", "10.10.10.101")
	remote := []string{"--server", f.url, "--token", f.viewer}
	record := func(result fabric.ProbeResult) {
		t.Helper()
		p := fabric.Probe{Target: netip.MustParseAddrPort("198.51.100.1:0"), Source: sub.Addr().Next(), Result: result, Sent: 3, At: time.Now()}
		if result == fabric.ProbeOK {
			p.Received, p.RTT = 3, time.Millisecond
		}
		if _, err := f.hosts.RecordProbe(context.Background(), fabric.Actor{Name: "boot", Role: fabric.RoleBootstrap}, "docker-01", p); err != nil {
			t.Fatal(err)
		}
	}

	out, code, _ := runVerifyCmd(t, nil, append(remote, "--probes")...)
	if code != 1 || !strings.Contains(out, "docker-01 (none)") {
		t.Errorf("never probed: exit %d, want 1 naming docker-01; output:\n%s", code, out)
	}
	if _, code, _ := runVerifyCmd(t, nil, remote...); code != 0 {
		t.Errorf("without --probes the devices alone decide: exit %d, want 0", code)
	}
	record(fabric.ProbeOK)
	out, code, err := runVerifyCmd(t, nil, append(remote, "--probes")...)
	if code != 0 || !strings.Contains(out, "1 host proved its return path") {
		t.Errorf("probe ok: exit %d (%v), want 0; output:\n%s", code, err, out)
	}
	record(fabric.ProbeFailed)
	out, code, err = runVerifyCmd(t, nil, append(remote, "--probes", "-o", "junit")...)
	if code != 1 || err == nil || !strings.Contains(err.Error(), "docker-01 (failed)") {
		t.Errorf("probe failed: exit %d (%v), want 1 naming docker-01", code, err)
	}
	var doc junitSuites
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("junit: %v\n%s", err, out)
	}
	var probeCase *junitCase
	for i, c := range doc.Suites[0].Cases {
		if c.Classname == "returnpath.probe" {
			probeCase = &doc.Suites[0].Cases[i]
		}
	}
	if doc.Tests != 3 || doc.Failures != 1 || probeCase == nil || probeCase.Name != "docker-01" || len(probeCase.Failures) != 1 || probeCase.Failures[0].Type != "probe_failed" {
		t.Errorf("junit: %d tests, %d failures, probe case %+v; want 3 tests (2 devices, 1 host), the host failing", doc.Tests, doc.Failures, probeCase)
	}
	out, _, _ = runVerifyCmd(t, nil, append(remote, "--probes", "-o", "json")...)
	var rep verify.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Hosts) != 1 || rep.Hosts[0].Status != fabric.ProbeStatusFailed || rep.Drifted() != 0 {
		t.Errorf("json: %v %+v; want the host failed and no drift", err, rep)
	}
}

// TestHostProbeCannotTest: without the docker0 interface, or without the host's gateway
// address on it, host probe exits 2 and reports nothing.
func TestHostProbeCannotTest(t *testing.T) {
	t.Parallel()
	f := newVerifyFleet(t)
	f.addHost(t, "docker-01", "10.10.10.101")
	boot, err := f.db.CreateToken(context.Background(), "test", fabric.Token{Name: "boot", Role: fabric.RoleBootstrap}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{name: "no docker0", args: []string{"--target", "198.51.100.1", "--interface", "nodocker0"}, want: "no interface nodocker0"},
		{name: "docker0 without the gateway", args: []string{"--target", "198.51.100.1", "--interface", "lo"}, want: "not the host's gateway address"},
		{name: "target that does not parse", args: []string{"--target", "example.com"}, want: "--target"},
		{name: "count out of bounds", args: []string{"--target", "198.51.100.1", "--count", "0"}, want: "--count"},
		{name: "unknown host", args: []string{"--target", "198.51.100.1", "--name", "docker-99", "--interface", "lo"}, want: "look up host docker-99"},
		{name: "no target, none configured", args: []string{"--interface", "lo"}, want: "segment rack1 configures no IPv4 probes.targets"},
	} {
		args := append([]string{"host", "probe", "--server", f.url, "--token", boot, "--name", "docker-01", "-o", "json"}, tt.args...)
		out, err := run(t, args...)
		var ec exitCode
		if !errors.As(err, &ec) || ec.code != exitProbeNotTest || !strings.Contains(err.Error()+out, tt.want) {
			t.Errorf("%s: %v, want exit 2 saying %q; output:\n%s", tt.name, err, tt.want, out)
		}
	}
	var n int
	if err := f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM host_probes`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d probes recorded (%v), want none", n, err)
	}
}

// TestHostRegisterProbeNeedsWait: --probe without --wait is bad usage, refused before anything
// is registered.
func TestHostRegisterProbeNeedsWait(t *testing.T) {
	t.Parallel()
	out, err := run(t, "host", "register", "--server", "http://127.0.0.1:1", "--token", "x", "--name", "d1", "--address", "10.10.10.5", "--probe", "198.51.100.1")
	if err == nil || !strings.Contains(err.Error(), "--probe: needs --wait") {
		t.Errorf("register --probe without --wait = %v, want it refused\n%s", err, out)
	}
}
