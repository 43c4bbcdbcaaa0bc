package verify_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/pgcluster"
	"github.com/returnpath/returnpath/internal/postgres"
)

// TestLabVerifyCommand runs the real `returnpath verify --direct` binary against the lab and a
// throwaway PostgreSQL: exit 0 in sync, 1 after a route is removed by hand on the switch, and
// 2 when the switch cannot be reached, with the firewall's drift still in the JUnit report.
func TestLabVerifyCommand(t *testing.T) {
	l := labtest.Require(t)
	ctx := t.Context()
	dir, err := os.MkdirTemp("", "rp-verify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	bin := filepath.Join(dir, "returnpath")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/returnpath/returnpath/cmd/returnpath")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	pg, err := pgcluster.Start(ctx, "", pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	dbURL := pg.URL("postgres")
	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	inv := labInventory(l, 24) // the same fabric as lab.WriteConfig's
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	h, _, err := postgres.NewHosts(db, inv).Register(ctx, fabric.Actor{Name: "test", Role: fabric.RoleAdmin},
		fabric.Registration{Name: "docker-01", Address: l.Hosts["host1"].Uplink})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE hosts SET state = 'active' WHERE name = $1`, h.Name); err != nil {
		t.Fatal(err)
	}
	h.State = fabric.HostActive
	converge(t, l, inv, []fabric.Host{h})

	cfg := filepath.Join(dir, "returnpath.yaml")
	if err := l.WriteConfig(cfg, "", dbURL); err != nil {
		t.Fatal(err)
	}
	run := func(config string, args ...string) (string, int) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, bin, append([]string{"verify", "--config", config, "--direct"}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		}
		t.Fatalf("run returnpath verify: %v", err)
		return "", -1
	}

	if out, code := run(cfg); code != 0 || !strings.Contains(out, "IN SYNC: 2 devices") {
		t.Fatalf("in sync: exit %d, want 0:\n%s", code, out)
	}

	if _, err := l.Vtysh(ctx, "sw1", "no ip route "+h.Subnet.String()+" "+h.Address.String()); err != nil {
		t.Fatal(err)
	}
	out, code := run(cfg)
	if code != 1 || !strings.Contains(out, "missing") || !strings.Contains(out, h.Subnet.String()+" via "+h.Address.String()) {
		t.Errorf("route removed on sw1: exit %d, want 1 naming the missing route:\n%s", code, out)
	}

	// A leftover on fw1, and sw1 unreachable (nothing listens on port 1).
	leftover := netip.MustParsePrefix("10.210.99.0/24")
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "add", leftover.String(), "via", "10.10.20.1", "proto", "202"); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sw := l.Devices["sw1"].Mgmt
	down := filepath.Join(dir, "sw1-down.yaml")
	text := strings.Replace(string(body), "address: "+sw.String(), "address: "+netip.AddrPortFrom(sw.Addr(), 1).String(), 1)
	if text == string(body) {
		t.Fatalf("config has no line %q", "address: "+sw.String())
	}
	if err := os.WriteFile(down, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "verify.xml")
	out, code = run(down, "--format", "junit", "--output", report)
	if code != 2 {
		t.Errorf("sw1 unreachable: exit %d, want 2:\n%s", code, out)
	}
	xmlText, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<testcase name="sw1"`, `<error message="could not read sw1: unreachable" type="unreachable">`,
		`<testcase name="fw1"`, `<failure message="unexpected ` + leftover.String() + ` via 10.10.20.1 vrf default" type="unexpected">`,
		`tests="2" failures="1" errors="1"`,
	} {
		if !strings.Contains(string(xmlText), want) {
			t.Errorf("JUnit report lacks %s:\n%s", want, xmlText)
		}
	}
	if n := strings.Count(string(xmlText), "<failure "); n != 1 {
		t.Errorf("JUnit report has %d failures, want exactly the leftover:\n%s", n, xmlText)
	}
}
