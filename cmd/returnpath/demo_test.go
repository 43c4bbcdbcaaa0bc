package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
)

// rootNamespace is what the lab must never change: the root namespace's links, addresses,
// routes and rules.
func rootNamespace(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"-br", "link"}, {"-br", "addr"}, {"route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"}, {"rule"}} {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
		b.Write(out)
	}
	return b.String()
}

// TestDemoEndToEnd runs `make demo`'s script, the end-to-end story, on real FRR and a
// real Linux firewall: the ping fails without return routes, host register fills daemon.json,
// the change is reviewed and approved through the CLI, the ping works with the container's own
// address on the uplink, verify exits 0, a hand-deleted route makes it exit 1, an approved
// remediation restores it, deregistration removes the routes and releases the subnet. The
// script checks each step and exits non-zero at the first that does not hold. Afterwards the
// root namespace must be exactly as before.
func TestDemoEndToEnd(t *testing.T) {
	if err := lab.Check(); err != nil {
		if os.Getenv(labtest.EnvRequireLab) == "1" {
			t.Fatalf("the end-to-end test needs the lab: %v", err)
		}
		t.Skipf("the end-to-end test needs the lab: %v", err)
	}
	if testing.Short() {
		t.Skip("-short")
	}
	for _, tool := range []string{"jq", "curl", "tcpdump", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make deps installs it)", tool)
		}
	}
	before := rootNamespace(t)
	bin := filepath.Join(t.TempDir(), "returnpath")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command("bash", "../../scripts/demo.sh", bin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	// The service allocates the pool's first subnet, 10.210.0.0/24: the demo asks for none.
	for _, want := range []string{
		"postgres returnpath", // lab status lists the lab's database
		"no reply (the reply dies at the firewall)",
		"ip route 10.210.0.0/24 10.10.10.101",              // the switch's line the reviewer saw
		"route add 10.210.0.0/24 via 10.10.20.1 proto 202", // the firewall's
		"host docker-01 is active",
		"the host's own probe from docker0 fails too (exit 1)",
		"docker-01: OK: 3 of 3 replies from 198.51.100.1 to 10.210.0.1 (icmp)", // the host proved its return path
		"1 host proved its return path",
		"10.210.0.2 > 198.51.100.1: ICMP echo request", // not NATed on the host's uplink
		"in sync (exit 0)",
		"fw1  missing  10.210.0.0/24 via 10.10.20.1",
		"drift found (exit 1)",
		"1 op, in the order they are applied:", // the remediation
		"in sync again (exit 0)",
		"sw1: 0 routes   fw1: 0 routes",
		"DRIFT: 1 of 2 devices, 1 route differs from intent",
		"pool docker: 0 of 256 subnets allocated",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo did not show %q", want)
		}
	}
	// The narration tells the truth: no subnet asked for, nothing said twice, plurals right,
	// no empty events heading, and the host registered before dockerd took the bip.
	for _, wrong := range []string{"--subnet", "approved: now approved", "1 ops", "1 routes", "1 attempts", "not rewritten"} {
		if strings.Contains(out.String(), wrong) {
			t.Errorf("the demo says %q", wrong)
		}
	}
	if n := strings.Count(out.String(), "events:"); n != 1 {
		t.Errorf("the demo shows %d events headings, want 1 (the full change the reviewer reads)", n)
	}
	registered, dockerd := strings.Index(out.String(), "daemon.json now:"), strings.Index(out.String(), "host1: docker0 ")
	if registered < 0 || dockerd < 0 || dockerd < registered {
		t.Errorf("dockerd took its bip (at %d) before the host was registered (at %d)", dockerd, registered)
	}
	if after := rootNamespace(t); after != before {
		t.Errorf("the root namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
