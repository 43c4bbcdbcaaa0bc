package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
	"github.com/returnpath/returnpath/internal/session"
	"github.com/returnpath/returnpath/internal/verify"
)

// verifyFleet is a real API server on real Postgres whose verifier reads in-memory devices.
type verifyFleet struct {
	url    string
	dbURL  string
	db     *postgres.DB
	hosts  *postgres.Hosts
	fakes  map[string]*drivertest.Fake
	viewer string
}

func verifyInventory(t *testing.T) *fabric.Inventory {
	t.Helper()
	cfg, err := loadConfig(writeConfig(t, testConfig), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	inv, _, err := cfg.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func (f *verifyFleet) factories() map[fabric.Platform]drivers.Factory {
	var all []*drivertest.Fake
	for _, fk := range f.fakes {
		all = append(all, fk)
	}
	fac := drivertest.FakeFactory(all...)
	return map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac, fabric.PlatformLinux: fac}
}

func newVerifyFleet(t *testing.T) *verifyFleet {
	t.Helper()
	ctx := context.Background()
	f := &verifyFleet{dbURL: pgtest.URL(t), fakes: map[string]*drivertest.Fake{}}
	db, err := postgres.Open(ctx, f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	f.db = db
	inv := verifyInventory(t)
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	f.hosts = postgres.NewHosts(db, inv)
	cfgs := map[string]drivers.Config{}
	for _, d := range inv.Devices {
		f.fakes[d.Name] = drivertest.NewFake(d.Name)
		cfgs[d.Name] = drivers.Config{Name: d.Name, Platform: d.Platform, Managed: inv.ManagedPrefixes()}
	}
	srv := httpapi.New(httpapi.Config{}, inv, f.hosts, db, slog.New(slog.DiscardHandler))
	srv.SetVerifier(&verify.Verifier{Inv: inv, Devices: &session.Devices{Configs: cfgs, Factories: f.factories()}, Hosts: f.hosts})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	f.url = ts.URL
	if f.viewer, err = db.CreateToken(ctx, "test", fabric.Token{Name: "ci", Role: fabric.RoleViewer}, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// addHost registers an active host and puts its routes on the devices, as a finished apply
// would; it returns the host's subnet.
func (f *verifyFleet) addHost(t *testing.T, name, address string) netip.Prefix {
	t.Helper()
	ctx := context.Background()
	h, _, err := f.hosts.Register(ctx, fabric.Actor{Name: "test", Role: fabric.RoleAdmin}, fabric.Registration{Name: name, Address: netip.MustParseAddr(address)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Pool.Exec(ctx, `UPDATE hosts SET state = 'active' WHERE name = $1`, name); err != nil {
		t.Fatal(err)
	}
	f.fakes["sw1"].Plant(fabric.Route{VRF: "default", Prefix: h.Subnet, NextHop: h.Address})
	f.fakes["fw1"].Plant(fabric.Route{VRF: "default", Prefix: h.Subnet, NextHop: netip.MustParseAddr("10.10.20.1")})
	return h.Subnet
}

// runVerifyCmd runs `returnpath verify args...` in-process with the given driver factories
// for --direct, and returns its output and exit status.
func runVerifyCmd(t *testing.T, factories map[fabric.Platform]drivers.Factory, args ...string) (string, int, error) {
	t.Helper()
	root := &cobra.Command{Use: "returnpath", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().String("config", "", "")
	root.AddCommand(verifyCommand(func() map[fabric.Platform]drivers.Factory { return factories }))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"verify"}, args...))
	err := root.ExecuteContext(context.Background())
	code := 0
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		code = ec.code
	case err != nil:
		code = 2 // what main() exits with for any other error
	}
	return out.String(), code, err
}

func TestVerifyCmdExitCodes(t *testing.T) {
	t.Parallel()
	f := newVerifyFleet(t)
	sub := f.addHost(t, "docker-01", "10.10.10.101")
	remote := []string{"--server", f.url, "--token", f.viewer}

	out, code, err := runVerifyCmd(t, nil, remote...)
	if code != 0 || err != nil {
		t.Fatalf("in sync: exit %d, err %v, output:\n%s", code, err, out)
	}
	if !strings.Contains(out, "IN SYNC: 2 devices") {
		t.Errorf("in sync output lacks the verdict:\n%s", out)
	}

	f.fakes["sw1"].Remove(fabric.Route{VRF: "default", Prefix: sub, NextHop: netip.MustParseAddr("10.10.10.101")})
	out, code, err = runVerifyCmd(t, nil, remote...)
	if code != 1 {
		t.Errorf("drift: exit %d (err %v), want 1; output:\n%s", code, err, out)
	}

	// fw1 unreachable: exit 2, and sw1's drift is still in the report.
	f.fakes["fw1"].Set(drivertest.WithUnreachable(true))
	out, code, _ = runVerifyCmd(t, nil, append(remote, "-o", "json")...)
	if code != 2 {
		t.Errorf("unreachable: exit %d, want 2", code)
	}
	var rep verify.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if rep.Unreachable() != 1 || rep.Drifted() != 1 || len(rep.Devices) != 2 {
		t.Errorf("report: %d unreachable, %d drift of %d devices; want 1, 1, 2", rep.Unreachable(), rep.Drifted(), len(rep.Devices))
	}
	// Only sw1: the drift alone decides.
	if _, code, _ = runVerifyCmd(t, nil, append(remote, "--device", "sw1")...); code != 1 {
		t.Errorf("--device sw1: exit %d, want 1", code)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string // in the error
	}{
		{"wrong token", []string{"--server", f.url, "--token", "rp_not-a-token"}, "authentication failed"},
		{"unknown device", append(remote, "--device", "nope"), "device"},
		{"unknown segment", append(remote, "--segment", "nope"), "segment"},
		{"bad format", append(remote, "-o", "yaml"), "--output"},
		{"bad format, old flag", append(remote, "--format", "yaml"), "yaml"},
		{"no server", []string{"--token", f.viewer}, "no server"},
		{"server down", []string{"--server", "http://127.0.0.1:1", "--token", f.viewer}, "127.0.0.1:1"},
		{"bad flag", []string{"--frobnicate"}, "frobnicate"},
	} {
		out, code, err := runVerifyCmd(t, nil, tt.args...)
		if code != 2 || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: exit %d, err %v; want exit 2 and an error mentioning %q (output %q)", tt.name, code, err, tt.want, out)
		}
		if err != nil && strings.Contains(err.Error(), f.viewer) {
			t.Errorf("%s: the error shows the token: %v", tt.name, err)
		}
	}
}

// TestVerifyCmdServerFromEnvAndConfig: the server and token come from RETURNPATH_* or the
// configuration file when no flag gives them.
func TestVerifyCmdServerFromEnvAndConfig(t *testing.T) {
	f := newVerifyFleet(t)
	f.addHost(t, "docker-01", "10.10.10.101")
	cfg := writeConfig(t, fmt.Sprintf("server: %q\ntoken: %q\n", f.url, f.viewer))
	if out, code, err := runVerifyCmd(t, nil, "--config", cfg); code != 0 {
		t.Errorf("from the config file: exit %d, err %v\n%s", code, err, out)
	}
	t.Setenv("RETURNPATH_SERVER", f.url)
	t.Setenv("RETURNPATH_TOKEN", f.viewer)
	if out, code, err := runVerifyCmd(t, nil); code != 0 {
		t.Errorf("from the environment: exit %d, err %v\n%s", code, err, out)
	}
	t.Setenv("RETURNPATH_TOKEN", "rp_wrong")
	if _, code, _ := runVerifyCmd(t, nil, "--token", f.viewer); code != 0 {
		t.Errorf("--token does not override RETURNPATH_TOKEN: exit %d", code)
	}
}

func TestVerifyCmdText(t *testing.T) {
	t.Parallel()
	f := newVerifyFleet(t)
	sub1 := f.addHost(t, "docker-01", "10.10.10.101")
	sub2 := f.addHost(t, "docker-02", "10.10.10.102")
	f.fakes["sw1"].Remove(fabric.Route{VRF: "default", Prefix: sub1, NextHop: netip.MustParseAddr("10.10.10.101")})
	f.fakes["sw1"].Remove(fabric.Route{VRF: "default", Prefix: sub2, NextHop: netip.MustParseAddr("10.10.10.102")})
	f.fakes["sw1"].Plant(fabric.Route{VRF: "default", Prefix: sub2, NextHop: netip.MustParseAddr("10.10.10.99")})
	f.fakes["fw1"].Plant(fabric.Route{VRF: "default", Prefix: netip.MustParsePrefix("10.210.250.0/24"), NextHop: netip.MustParseAddr("10.10.20.1")})
	f.fakes["fw1"].Plant(fabric.Route{VRF: "default", Prefix: netip.MustParsePrefix("10.99.0.0/24"), NextHop: netip.MustParseAddr("10.10.20.1")})
	out, code, _ := runVerifyCmd(t, nil, "--server", f.url, "--token", f.viewer)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	fields := func(l string) string { return strings.Join(strings.Fields(l), " ") }
	var got []string
	for _, l := range lines {
		got = append(got, fields(l))
	}
	want := []string{
		"DEVICE STATUS MISSING UNEXPECTED WRONG NEXT HOP IN FLIGHT TIME",
		"sw1 drift 1 0 1 0 ",
		"fw1 drift 0 1 0 0 ",
		"",
		fmt.Sprintf("sw1 missing %s via 10.10.10.101 vrf default (host docker-01)", sub1),
		fmt.Sprintf("sw1 wrong next hop %s vrf default via 10.10.10.99, want via 10.10.10.102 (host docker-02)", sub2),
		"fw1 unexpected 10.210.250.0/24 via 10.10.20.1 vrf default",
		"",
		"DRIFT: 2 of 2 devices, 3 routes differ from intent",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}
	if strings.Contains(out, "10.99.0.0") {
		t.Errorf("a route outside the pools is reported:\n%s", out)
	}
}

// junitDoc is a generic XML tree, so that the test checks the document as a CI system reads
// it rather than through the writer's own types.
type junitNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr  `xml:",any,attr"`
	Nodes   []junitNode `xml:",any"`
	Text    string      `xml:",chardata"`
}

func (n junitNode) attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

// checkJUnit validates the common JUnit XML shape (the Jenkins/Ant schema that GitLab, GitHub
// and others read): testsuites > testsuite > testcase; required attributes; children of a
// testcase limited to skipped/error/failure/system-out/system-err; and counts that agree with
// the elements. It returns the test cases.
func checkJUnit(t *testing.T, data []byte) []junitNode {
	t.Helper()
	var root junitNode
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatalf("not XML: %v\n%s", err, data)
	}
	if root.XMLName.Local != "testsuites" {
		t.Fatalf("root element %q, want testsuites", root.XMLName.Local)
	}
	num := func(n junitNode, attr string) int {
		v, ok := n.attr(attr)
		if !ok {
			t.Errorf("<%s> lacks %s", n.XMLName.Local, attr)
			return -1
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			t.Errorf("<%s %s=%q>: want a count", n.XMLName.Local, attr, v)
		}
		return i
	}
	secs := func(n junitNode) {
		v, ok := n.attr("time")
		if s, err := strconv.ParseFloat(v, 64); !ok || err != nil || s < 0 {
			t.Errorf("<%s time=%q>: want seconds", n.XMLName.Local, v)
		}
	}
	var cases []junitNode
	var totalTests, totalFailures, totalErrors int
	for _, s := range root.Nodes {
		if s.XMLName.Local != "testsuite" {
			t.Fatalf("<testsuites> holds <%s>, want only <testsuite>", s.XMLName.Local)
		}
		if name, _ := s.attr("name"); name == "" {
			t.Error("<testsuite> without a name")
		}
		secs(s)
		var tests, failed, errored int
		for _, c := range s.Nodes {
			if c.XMLName.Local != "testcase" {
				t.Fatalf("<testsuite> holds <%s>, want only <testcase>", c.XMLName.Local)
			}
			for _, a := range []string{"name", "classname"} {
				if v, _ := c.attr(a); v == "" {
					t.Errorf("<testcase> without %s", a)
				}
			}
			secs(c)
			var f, e int
			for _, k := range c.Nodes {
				switch k.XMLName.Local {
				case "failure":
					f++
				case "error":
					e++
				case "skipped", "system-out", "system-err":
				default:
					t.Errorf("<testcase> holds <%s>", k.XMLName.Local)
				}
				if k.XMLName.Local == "failure" || k.XMLName.Local == "error" {
					if m, _ := k.attr("message"); m == "" {
						t.Errorf("<%s> without a message", k.XMLName.Local)
					}
				}
			}
			tests++
			if e > 0 {
				errored++
			} else if f > 0 {
				failed++
			}
			cases = append(cases, c)
		}
		if num(s, "tests") != tests || num(s, "failures") != failed || num(s, "errors") != errored {
			t.Errorf("<testsuite tests/failures/errors=%d/%d/%d>, elements say %d/%d/%d", num(s, "tests"), num(s, "failures"), num(s, "errors"), tests, failed, errored)
		}
		totalTests, totalFailures, totalErrors = totalTests+tests, totalFailures+failed, totalErrors+errored
	}
	if num(root, "tests") != totalTests || num(root, "failures") != totalFailures || num(root, "errors") != totalErrors {
		t.Errorf("<testsuites> counts disagree with its suites")
	}
	return cases
}

func TestVerifyCmdJUnit(t *testing.T) {
	t.Parallel()
	f := newVerifyFleet(t)
	sub1 := f.addHost(t, "docker-01", "10.10.10.101")
	sub2 := f.addHost(t, "docker-02", "10.10.10.102")
	f.fakes["fw1"].Remove(fabric.Route{VRF: "default", Prefix: sub1, NextHop: netip.MustParseAddr("10.10.20.1")})
	f.fakes["fw1"].Remove(fabric.Route{VRF: "default", Prefix: sub2, NextHop: netip.MustParseAddr("10.10.20.1")})
	f.fakes["sw1"].Set(drivertest.WithUnreachable(true))
	path := filepath.Join(t.TempDir(), "verify.xml")
	out, code, _ := runVerifyCmd(t, nil, "--server", f.url, "--token", f.viewer, "-o", "junit", "--output-file", path)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if out != "" {
		t.Errorf("--output-file still wrote to stdout: %q", out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := checkJUnit(t, data)
	got := map[string][2]int{}
	for _, c := range cases {
		name, _ := c.attr("name")
		var n [2]int
		for _, k := range c.Nodes {
			switch k.XMLName.Local {
			case "failure":
				n[0]++
			case "error":
				n[1]++
			}
		}
		got[name] = n
	}
	want := map[string][2]int{"sw1": {0, 1}, "fw1": {2, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("failures/errors per test case = %v, want %v\n%s", got, want, data)
	}

	// In sync: every test case passes.
	f.fakes["sw1"].Set(drivertest.WithUnreachable(false))
	f.fakes["fw1"].Plant(fabric.Route{VRF: "default", Prefix: sub1, NextHop: netip.MustParseAddr("10.10.20.1")})
	f.fakes["fw1"].Plant(fabric.Route{VRF: "default", Prefix: sub2, NextHop: netip.MustParseAddr("10.10.20.1")})
	out, code, err = runVerifyCmd(t, nil, "--server", f.url, "--token", f.viewer, "-o", "junit")
	if code != 0 {
		t.Errorf("in sync: exit %d (%v)", code, err)
	}
	for _, c := range checkJUnit(t, []byte(out)) {
		if len(c.Nodes) != 0 {
			t.Errorf("in sync, yet test case %v has children", c.Attrs)
		}
	}
}

// TestVerifyCmdDirect: the break-glass mode reads the database and the devices of the
// configuration file with no server.
func TestVerifyCmdDirect(t *testing.T) {
	t.Parallel()
	f := newVerifyFleet(t)
	sub := f.addHost(t, "docker-01", "10.10.10.101")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(testConfig, "%DB%", f.dbURL)
	body = strings.ReplaceAll(body, "password_env: RETURNPATH_TEST_SW1_PASSWORD", "password_file: "+pw)
	cfg := writeConfig(t, body)
	out, code, err := runVerifyCmd(t, f.factories(), "--config", cfg, "--direct")
	if code != 0 {
		t.Fatalf("direct, in sync: exit %d, err %v\n%s", code, err, out)
	}
	f.fakes["fw1"].Remove(fabric.Route{VRF: "default", Prefix: sub, NextHop: netip.MustParseAddr("10.10.20.1")})
	out, code, _ = runVerifyCmd(t, f.factories(), "--config", cfg, "--direct", "-o", "json", "--segment", "rack1")
	if code != 1 {
		t.Errorf("direct, drift: exit %d, want 1\n%s", code, out)
	}
	var rep verify.Report
	if err := json.NewDecoder(io.LimitReader(strings.NewReader(out), 1<<20)).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Devices {
		if d.Device == "fw1" && (len(d.Missing) != 1 || d.Missing[0].Prefix != sub) {
			t.Errorf("fw1 missing = %+v, want %s", d.Missing, sub)
		}
	}
	// Without a configuration file there is nothing to read.
	if _, code, err := runVerifyCmd(t, f.factories(), "--direct", "--config", filepath.Join(t.TempDir(), "none.yaml")); code != 2 || err == nil {
		t.Errorf("direct without a config: exit %d, err %v; want 2", code, err)
	}
}

// TestVerifyTextEscapesDeviceErrors: a device's error text (which may quote what the device
// said) is printed escaped.
func TestVerifyTextEscapesDeviceErrors(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	r := verify.Report{Devices: []verify.Device{{Device: "sw1", Status: verify.StatusUnreachable, ErrorKind: "auth",
		Error: "login refused: \x1b[2J\rIN SYNC\u202e"}}}
	if err := writeText(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b.String(), "\x1b\r\u202e") || !strings.Contains(b.String(), `login refused: \x1b[2J\rIN SYNC\u202e`) {
		t.Errorf("verify text output:\n%q", b.String())
	}
}

// TestVerifyCmdLegacyFlags: the flags of the last release (--format F, --output FILE) still
// work, each with a deprecation warning on standard error, and -o F with --output-file FILE
// does the same without one. --token-file works as for every client command.
func TestVerifyCmdLegacyFlags(t *testing.T) {
	t.Parallel()
	f := newVerifyFleet(t)
	f.addHost(t, "docker-01", "10.10.10.101")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(f.viewer+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string // besides --server and the token; "FILE" stands for the report file
		wantWarn []string // flags the warnings name
		wantJSON bool     // the file holds JSON (else text)
	}{
		{name: "new flags", args: []string{"-o", "json", "--output-file", "FILE"}, wantJSON: true},
		{name: "--format and --output FILE", args: []string{"--format", "json", "--output", "FILE"}, wantWarn: []string{"--format", "--output FILE"}, wantJSON: true},
		{name: "--output FILE alone", args: []string{"--output", "FILE.txt"}, wantWarn: []string{"--output FILE"}},
		{name: "--format with --output-file", args: []string{"--format", "json", "--output-file", "FILE"}, wantWarn: []string{"--format"}, wantJSON: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "report")
			args := []string{"--server", f.url, "--token-file", tokenFile}
			for _, a := range tt.args {
				if strings.HasPrefix(a, "FILE") {
					path += strings.TrimPrefix(a, "FILE")
					a = path
				}
				args = append(args, a)
			}
			out, code, err := runVerifyCmd(t, nil, args...)
			if code != 0 {
				t.Fatalf("exit %d, %v\n%s", code, err, out)
			}
			for _, w := range tt.wantWarn {
				if !strings.Contains(out, "warning: "+w) {
					t.Errorf("no deprecation warning for %s in %q", w, out)
				}
			}
			if len(tt.wantWarn) == 0 && out != "" {
				t.Errorf("output besides the file: %q", out)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if isJSON := json.Valid(data); isJSON != tt.wantJSON || !bytes.Contains(data, []byte("sw1")) {
				t.Errorf("report file (JSON %v, want %v):\n%s", isJSON, tt.wantJSON, data)
			}
		})
	}
}
