package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/gnmi"
	"github.com/returnpath/returnpath/drivers/gnmi/gnmitarget"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// runDeviceCmd runs `returnpath device args...` in-process with the given driver factories and
// returns its standard output, standard error and exit status.
func runDeviceCmd(t *testing.T, factories map[fabric.Platform]drivers.Factory, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := &cobra.Command{Use: "returnpath", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().String("config", "", "")
	root.AddCommand(deviceCommand(func() map[fabric.Platform]drivers.Factory { return factories }))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"device"}, args...))
	err := root.ExecuteContext(context.Background())
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		code = ec.code
	case err != nil:
		code = 2 // what main() exits with for any other error
	}
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func decodeCheckReport(t *testing.T, out string) checkReport {
	t.Helper()
	var r checkReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json output is not a report: %v\n%s", err, out)
	}
	return r
}

// deadDatabase is a database URL where nothing listens.
const deadDatabase = "postgres://returnpath@127.0.0.1:1/returnpath?connect_timeout=2&sslmode=disable"

// versioned wraps a Fake's sessions with a Versioner that reports line.
type versioned struct {
	drivers.Driver
	line string
}

func (v versioned) Version(context.Context) (string, error) { return v.line, nil }

func versionedFactory(f drivers.Factory, line string) drivers.Factory {
	return drivers.Factory{
		Open: func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
			d, err := f.Open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return versioned{Driver: d, line: line}, nil
		},
		Preview: f.Preview,
	}
}

// TestDeviceCheckGNMI checks an OpenConfig device served by the in-process gNMI target
// through the real gNMI driver, with the session budget held in a real database.
func TestDeviceCheckGNMI(t *testing.T) {
	t.Parallel()
	model, err := gnmitarget.OpenConfig()
	if err != nil {
		t.Fatal(err)
	}
	tg, err := gnmitarget.Start(model, gnmitarget.WithCredentials("netops", "gnmi-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	path, err := ygot.StringToStructuredPath("/network-instances/network-instance[name=DEFAULT]")
	if err != nil {
		t.Fatal(err)
	}
	seed := &gpb.SetRequest{Update: []*gpb.Update{{Path: path, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{
		JsonIetfVal: []byte(`{"name":"DEFAULT","config":{"name":"DEFAULT","type":"openconfig-network-instance-types:DEFAULT_INSTANCE"}}`)}}}}}
	if err := tg.Apply(seed); err != nil {
		t.Fatalf("seed the target's default network-instance: %v", err)
	}
	addr := netip.MustParseAddrPort(tg.Addr().String())
	pwFile := writeConfig(t, "gnmi-secret\n")

	// A route returnpath owns, put there by the driver as an apply would.
	owned := fabric.Route{VRF: fabric.DefaultVRF, Prefix: netip.MustParsePrefix("10.210.7.0/24"), NextHop: netip.MustParseAddr("10.10.10.107")}
	d, err := gnmi.Open(t.Context(), drivers.Config{Name: "oc1", Platform: fabric.PlatformOpenConfig, Address: addr,
		Managed: []netip.Prefix{netip.MustParsePrefix("10.210.0.0/16")}, Username: "netops", Password: "gnmi-secret",
		GNMI: drivers.GNMIConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(t.Context(), []fabric.RouteOp{{Action: fabric.ActionAdd, Route: owned}}); err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	setsBefore, _ := tg.Counts()

	cfg := writeConfig(t, `
database_url: "`+pgtest.URL(t)+`"
pools:
  - {name: docker, prefix: 10.210.0.0/16, subnet_length: 24}
segments:
  - name: rack1
    hosts: 10.10.10.0/24
    pool: docker
    route_via:
      - {device: oc1, next_hop: host}
devices:
  - name: oc1
    platform: openconfig
    address: "`+addr.String()+`"
    username: netops
    password_file: `+pwFile+`
    gnmi: {insecure: true}
`)
	factories := map[fabric.Platform]drivers.Factory{fabric.PlatformOpenConfig: gnmi.Factory()}

	out, stderr, code := runDeviceCmd(t, factories, "check", "oc1", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		"device oc1 (openconfig at " + addr.String() + ")",
		"session budget: max_sessions 1, one slot held for this check",
		"version:  gNMI 0.10.0, 3 models: openconfig-local-routing",
		"routes returnpath owns: 1\n    10.210.7.0/24 via 10.10.10.107 vrf default\n",
		"never sent (10.210.255.0/24 via 10.10.10.1 vrf default)",
		"    add:    ", "    delete: ",
		"OK: nothing was changed on the device",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}

	out, _, code = runDeviceCmd(t, factories, "check", "oc1", "--config", cfg, "-o", "json")
	if code != 0 {
		t.Fatalf("-o json: exit %d, want 0:\n%s", code, out)
	}
	r := decodeCheckReport(t, out)
	if !r.OK || !r.Budget.Enforced || len(r.Devices) != 1 {
		t.Fatalf("report ok=%v budget=%+v devices=%d, want ok, enforced, 1", r.OK, r.Budget, len(r.Devices))
	}
	c := r.Devices[0]
	if c.Version == nil || !strings.HasPrefix(*c.Version, "gNMI 0.10.0") {
		t.Errorf("version = %v, want the target's gNMI version", c.Version)
	}
	if len(c.Routes) != 1 || c.Routes[0] != toCheckRoute(owned) {
		t.Errorf("routes = %+v, want %v", c.Routes, owned)
	}
	if c.Preview == nil || len(c.Preview.Add) == 0 || len(c.Preview.Delete) == 0 {
		t.Fatalf("preview = %+v, want add and delete lines", c.Preview)
	}
	if strings.Join(c.Preview.Add, "\n") == strings.Join(c.Preview.Delete, "\n") {
		t.Errorf("add and delete preview are the same: %q", c.Preview.Add)
	}
	if c.OpenMS <= 0 || c.ReadMS <= 0 {
		t.Errorf("open_ms %v, read_ms %v: want both measured", c.OpenMS, c.ReadMS)
	}
	if sets, _ := tg.Counts(); sets != setsBefore {
		t.Errorf("device check sent %d Set requests, want none", sets-setsBefore)
	}

	// Wrong password: the driver's kind, exit 2.
	if err := os.WriteFile(pwFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code = runDeviceCmd(t, factories, "check", "oc1", "--config", cfg, "-o", "json")
	r = decodeCheckReport(t, out)
	if code != 2 || r.OK || r.Devices[0].ErrorKind != "auth" || r.Devices[0].FailedAt != stageSession {
		t.Errorf("wrong password: exit %d, device %+v; want 2, auth at session", code, r.Devices[0])
	}
}

// TestDeviceCheckAll checks every device of the fleet one after another: a failing device
// does not hide the others, and any failure exits 2 with the driver's error kind.
func TestDeviceCheckAll(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "pw")
	cfg := writeConfig(t, strings.Replace(testConfig, "%DB%", deadDatabase, 1))
	sw1, fw1 := drivertest.NewFake("sw1"), drivertest.NewFake("fw1")
	planted := fabric.Route{VRF: fabric.DefaultVRF, Prefix: netip.MustParsePrefix("10.210.3.0/24"), NextHop: netip.MustParseAddr("10.10.10.103")}
	sw1.Plant(planted)
	fleet := drivertest.FakeFactory(sw1, fw1)
	// sw1 reports a version with terminal control sequences in it; fw1's driver reports none.
	factories := map[fabric.Platform]drivers.Factory{
		fabric.PlatformFRR:   versionedFactory(fleet, "FRRouting 10.1\x1b[2J (sw1)"),
		fabric.PlatformLinux: fleet,
	}

	out, stderr, code := runDeviceCmd(t, factories, "check", "--all", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		`version:  FRRouting 10.1\x1b[2J (sw1)`,
		"routes returnpath owns: 1\n    10.210.3.0/24 via 10.10.10.103 vrf default\n",
		"never sent (10.210.255.0/24 via 10.10.10.1 vrf default)",
		"device fw1 (linux at 198.18.0.12:22)",
		"version:  not reported by this driver",
		"never sent (10.210.255.0/24 via 10.10.20.1 vrf default)",
		"session budget: not enforced (database unreachable)",
		"2 of 2 devices ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("text output carries a raw escape character:\n%q", out)
	}
	if !strings.Contains(stderr, "warning: database unreachable") {
		t.Errorf("stderr lacks the database warning:\n%s", stderr)
	}
	if strings.Count(out, "OK: nothing was changed") != 2 {
		t.Errorf("want both devices OK:\n%s", out)
	}

	fw1.Set(drivertest.WithUnreachable(true))
	sw1.Set(drivertest.WithCredentials("someone-else", "x"))
	out, _, code = runDeviceCmd(t, factories, "check", "--all", "--config", cfg, "-o", "json")
	r := decodeCheckReport(t, out)
	if code != 2 || r.OK || len(r.Devices) != 2 {
		t.Fatalf("exit %d ok=%v devices=%d, want 2, not ok, 2 devices:\n%s", code, r.OK, len(r.Devices), out)
	}
	for i, want := range []struct{ device, kind string }{{device: "sw1", kind: "auth"}, {device: "fw1", kind: "unreachable"}} {
		got := r.Devices[i]
		if got.Device != want.device || got.ErrorKind != want.kind || got.FailedAt != stageSession || got.Error == "" {
			t.Errorf("devices[%d] = %+v, want %s failing with %s at session", i, got, want.device, want.kind)
		}
	}
	if r.Budget.Enforced || len(r.Warnings) != 1 {
		t.Errorf("budget %+v warnings %q, want not enforced with one warning", r.Budget, r.Warnings)
	}

	for _, tc := range []struct {
		name string
		args []string
	}{
		{name: "name and --all", args: []string{"check", "sw1", "--all", "--config", cfg}},
		{name: "no name", args: []string{"check", "--config", cfg}},
		{name: "unknown device", args: []string{"check", "sw9", "--config", cfg}},
		{name: "bad output", args: []string{"check", "sw1", "-o", "yaml", "--config", cfg}},
	} {
		if _, _, code := runDeviceCmd(t, factories, tc.args...); code != 2 {
			t.Errorf("%s: exit %d, want 2", tc.name, code)
		}
	}
}

// TestDeviceCheckHonoursSessionBudget shows that device check takes a slot of the device's
// session budget in the database, as the service does: with the only slot held elsewhere it
// reports the device busy and never logs in.
func TestDeviceCheckHonoursSessionBudget(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "pw")
	dbURL := pgtest.URL(t)
	cfg := writeConfig(t, strings.Replace(testConfig, "%DB%", dbURL, 1))
	sw1 := drivertest.NewFake("sw1")
	factories := map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: drivertest.FakeFactory(sw1)}

	db, err := postgres.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	release, ok, err := db.TryDeviceSession(t.Context(), "sw1", 1)
	if err != nil || !ok {
		t.Fatalf("hold sw1's slot: ok=%v err=%v", ok, err)
	}
	out, _, code := runDeviceCmd(t, factories, "check", "sw1", "--config", cfg, "--wait", "300ms", "-o", "json")
	r := decodeCheckReport(t, out)
	if code != 2 || r.Devices[0].ErrorKind != "busy" || !r.Budget.Enforced {
		t.Errorf("slot held: exit %d, device %+v, budget %+v; want 2, busy, enforced", code, r.Devices[0], r.Budget)
	}
	if n := sw1.Sessions(); n != 0 {
		t.Errorf("sw1 saw %d logins while its only slot was held, want 0", n)
	}
	release()
	start := time.Now()
	if out, _, code := runDeviceCmd(t, factories, "check", "sw1", "--config", cfg); code != 0 {
		t.Errorf("slot free: exit %d, want 0 (after %s):\n%s", code, time.Since(start), out)
	}
	if n := sw1.Sessions(); n != 1 {
		t.Errorf("sw1 saw %d logins, want 1", n)
	}
}
