package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// deviceCheckRun runs `returnpath device check args...` and returns stdout, stderr and the
// exit status.
func deviceCheckRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"device", "check"}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("run returnpath device check: %v", err)
	return "", "", -1
}

// TestLabDeviceCheck runs the real binary's `device check` against the lab's FRR switch and
// Linux firewall, each holding a route returnpath owns: exit 0, the platform's version line,
// the owned routes and the preview lines, and nothing changed on either device. With the
// switch's port wrong it exits 2 naming the error kind, and --all still reports the firewall.
func TestLabDeviceCheck(t *testing.T) {
	l := labtest.Require(t)
	ctx := t.Context()
	host := l.Hosts["host1"]
	swRoute := netip.MustParsePrefix("10.210.77.0/24")
	fwRoute := netip.MustParsePrefix("10.210.78.0/24")
	if _, err := l.Vtysh(ctx, "sw1", "ip route "+swRoute.String()+" "+host.Uplink.String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = l.Vtysh(context.Background(), "sw1", "no ip route "+swRoute.String()+" "+host.Uplink.String())
	})
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "add", fwRoute.String(), "via", "10.10.20.1", "proto", "202"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = l.Exec(context.Background(), "fw1", "ip", "route", "del", fwRoute.String(), "via", "10.10.20.1", "proto", "202")
	})
	snapshot := func() (string, string) {
		t.Helper()
		sw, err := l.Vtysh(ctx, "sw1", "show running-config staticd")
		if err != nil {
			t.Fatal(err)
		}
		fw, err := l.Exec(ctx, "fw1", "ip", "route", "show", "table", "all", "proto", "202")
		if err != nil {
			t.Fatal(err)
		}
		return sw, string(fw)
	}
	swBefore, fwBefore := snapshot()

	cfg := filepath.Join(t.TempDir(), "returnpath.yaml")
	if err := l.WriteConfig(cfg, "", pgtest.URL(t)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		device string
		want   []string
	}{
		{device: "sw1", want: []string{
			"session budget: max_sessions 1, one slot held for this check",
			"version:  FRRouting ",
			"routes returnpath owns: 1\n    " + swRoute.String() + " via " + host.Uplink.String() + " vrf default\n",
			"    add:    ip route 10.210.255.0/24 ",
			"    delete: no ip route 10.210.255.0/24 ",
			"OK: nothing was changed on the device",
		}},
		{device: "fw1", want: []string{
			"version:  Linux ",
			"routes returnpath owns: 1\n    " + fwRoute.String() + " via 10.10.20.1 vrf default\n",
			"    add:    route add 10.210.255.0/24 via 10.10.20.1 proto 202",
			"    delete: route del 10.210.255.0/24 via 10.10.20.1 proto 202",
			"OK: nothing was changed on the device",
		}},
	} {
		out, stderr, code := deviceCheckRun(t, tc.device, "--config", cfg)
		t.Logf("device check %s:\n%s%s", tc.device, out, stderr)
		if code != 0 {
			t.Errorf("%s: exit %d, want 0", tc.device, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q", tc.device, w)
			}
		}
	}
	if sw, fw := snapshot(); sw != swBefore || fw != fwBefore {
		t.Errorf("device check changed a device:\nsw1 before:\n%s\nafter:\n%s\nfw1 before:\n%s\nafter:\n%s", swBefore, sw, fwBefore, fw)
	}

	// The switch's port is wrong: nothing listens there.
	body, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sw := l.Devices["sw1"].Mgmt
	text := strings.Replace(string(body), "address: "+sw.String(), "address: "+netip.AddrPortFrom(sw.Addr(), 1).String(), 1)
	if text == string(body) {
		t.Fatalf("config has no line %q", "address: "+sw.String())
	}
	down := filepath.Join(t.TempDir(), "sw1-down.yaml")
	if err := os.WriteFile(down, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := deviceCheckRun(t, "sw1", "--config", down)
	t.Logf("device check sw1 on a wrong port:\n%s%s", out, stderr)
	if code != 2 || !strings.Contains(out, "FAILED (unreachable): sw1 connect: unreachable") {
		t.Errorf("wrong port: exit %d, want 2 and the unreachable kind with the driver's text", code)
	}
	out, _, code = deviceCheckRun(t, "--all", "--config", down, "-o", "json")
	var r struct {
		OK      bool `json:"ok"`
		Devices []struct {
			Device    string  `json:"device"`
			OK        bool    `json:"ok"`
			ErrorKind string  `json:"error_kind"`
			Version   *string `json:"version"`
			Routes    []struct {
				Prefix string `json:"prefix"`
			} `json:"routes"`
		} `json:"devices"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if code != 2 || r.OK || len(r.Devices) != 2 {
		t.Fatalf("--all with sw1 down: exit %d, ok %v, %d devices; want 2, false, 2:\n%s", code, r.OK, len(r.Devices), out)
	}
	if d := r.Devices[0]; d.Device != "sw1" || d.OK || d.ErrorKind != "unreachable" {
		t.Errorf("sw1 = %+v, want unreachable", d)
	}
	if d := r.Devices[1]; d.Device != "fw1" || !d.OK || d.Version == nil || len(d.Routes) != 1 || d.Routes[0].Prefix != fwRoute.String() {
		t.Errorf("fw1 = %+v, want ok with its version and %s", d, fwRoute)
	}
}
