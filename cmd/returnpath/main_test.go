package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

func TestMain(m *testing.M) {
	// Re-executed by a test as the returnpath command itself (TestSIGHUPReloadsServe).
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(pgtest.Main(m))
}

// runMainEnv makes the test binary run main() instead of the tests.
const runMainEnv = "RETURNPATH_TEST_RUN_MAIN"

const testConfig = `
listen: "127.0.0.1:0"
database_url: "%DB%"
pools:
  - name: docker
    prefix: 10.210.0.0/16
    subnet_length: 24
segments:
  - name: rack1
    hosts: 10.10.10.0/24
    pool: docker
    route_via:
      - device: sw1
        next_hop: host
      - device: fw1
        next_hop: 10.10.20.1
devices:
  - name: sw1
    platform: frr
    transport: ssh
    address: 198.18.0.11
    vrf: default
    username: netops
    password_env: RETURNPATH_TEST_SW1_PASSWORD
    known_hosts: /dev/null
  - name: fw1
    platform: linux
    address: 198.18.0.12:22
    username: netops
    password_env: RETURNPATH_TEST_SW1_PASSWORD
    known_hosts: /dev/null
approval:
  four_eyes: true
  auto_approve: []
`

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "returnpath.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run executes the returnpath command line in-process and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestServeEndToEnd starts Main on :0 exactly as `returnpath serve` does, creates a token with
// the CLI and registers a host over HTTP.
func TestServeEndToEnd(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "s3cret-value")
	// A public pool: the service starts, and its log warns about it.
	m, logs, cfgPath := startMain(t, strings.Replace(testConfig, "prefix: 10.210.0.0/16", "prefix: 172.10.0.0/16", 1))

	out, err := run(t, "token", "create", "--config", cfgPath, "--name", "boot", "--role", "bootstrap")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if !strings.HasPrefix(secret, "rp_") {
		t.Fatalf("token create's last line = %q, want the secret", secret)
	}

	req, _ := http.NewRequest("POST", "http://"+m.Addr()+"/v1/hosts", strings.NewReader(`{"name":"docker-01","address":"10.10.10.101"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := apitest.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var host map[string]any
	_ = json.Unmarshal(b, &host)
	if resp.StatusCode != 201 || host["subnet"] != "172.10.0.0/24" {
		t.Fatalf("POST /v1/hosts = %d %s", resp.StatusCode, b)
	}
	resp, err = http.Get("http://" + m.Addr() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/readyz = %v %v", resp, err)
	}
	resp.Body.Close()

	out, err = run(t, "token", "list", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "boot") || strings.Contains(out, secret) {
		t.Errorf("token list = %v\n%s", err, out)
	}
	if _, err := run(t, "token", "revoke", "boot", "--config", cfgPath); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"s3cret-value", secret} {
		if strings.Contains(logs.String(), leak) {
			t.Errorf("logs contain a secret: %s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "172.10.0.0/16 is not private address space") {
		t.Errorf("no warning about the public pool in the logs:\n%s", logs.String())
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	base := strings.ReplaceAll(testConfig, "%DB%", "postgres:///x")
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown top-level key", "listen:", "colour: red\nlisten:", "colour"},
		{"unknown nested key", "    subnet_length: 24", "    subnet_length: 24\n    colour: red", "colour"},
		{"bad pool prefix", "prefix: 10.210.0.0/16", "prefix: 10.210.0.0/33", "pools[0].prefix"},
		{"unknown device", "device: fw1", "device: fw9", "segments[0].route_via[1].device"},
		{"bad next hop", "next_hop: 10.10.20.1", "next_hop: 10.10.20.300", "segments[0].route_via[1].next_hop"},
		{"a device twice in a parallel stage", "      - device: fw1\n", "      - devices: [fw1, sw1]\n", "segments[0].route_via[1].devices[1]"},
		{"device and devices both", "      - device: fw1\n", "      - device: fw1\n        devices: [fw1]\n", "segments[0].route_via[1].devices"},
		{"bad platform", "platform: frr", "platform: ios", "devices[0].platform"},
		{"missing password env", "password_env: RETURNPATH_TEST_SW1_PASSWORD\n    known_hosts: /dev/null\n  - name: fw1", "password_env: RETURNPATH_NOPE\n    known_hosts: /dev/null\n  - name: fw1", "devices[0].password_env"},
		{"bad host key policy", "address: 198.18.0.11\n", "address: 198.18.0.11\n    host_key: yolo\n", "devices[0].host_key"},
		{name: "fortios without its egress interface", from: "platform: linux\n", to: "platform: fortinet_fortios\n", want: "devices[1].fortios.device"},
		{name: "fortios interface that is not a name", from: "platform: linux\n", to: "platform: fortinet_fortios\n    fortios: {device: \"port1 comment x\"}\n", want: "devices[1].fortios.device"},
		{name: "fortios named VRF", from: "platform: linux\n", to: "platform: fortinet_fortios\n    vrf: blue\n    fortios: {device: port1}\n", want: "devices[1].vrf"},
		{"panos virtual router", "platform: linux\n", "platform: paloalto_panos\n    panos: {virtual_router: \"vr 1\"}\n", "devices[1].panos.virtual_router"},
		{"panos interface", "platform: linux\n", "platform: paloalto_panos\n    panos: {interface: \"ethernet1/2; commit\"}\n", "devices[1].panos.interface"},
		{"panos unknown key", "platform: linux\n", "platform: paloalto_panos\n    panos: {vsys: vsys1}\n", "vsys"},
		{name: "asa without its interface", from: "platform: linux\n", to: "platform: cisco_asa\n", want: "devices[1].asa.interface"},
		{name: "asa interface that is not a nameif", from: "platform: linux\n", to: "platform: cisco_asa\n    asa: {interface: \"inside 0.0.0.0 0.0.0.0 1.1.1.1\"}\n", want: "devices[1].asa.interface"},
		{name: "asa named VRF", from: "platform: linux\n", to: "platform: cisco_asa\n    vrf: blue\n    asa: {interface: inside}\n", want: "devices[1].vrf"},
		{"cisco_nxos bad vrf", "platform: frr\n    transport: ssh\n    address: 198.18.0.11\n    vrf: default", "platform: cisco_nxos\n    address: 198.18.0.11\n    vrf: \"blue\\nip route 0.0.0.0/0 1.1.1.1\"", "devices[0].vrf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("test config lacks %q", tt.from)
			}
			p := writeConfig(t, strings.Replace(base, tt.from, tt.to, 1))
			out, err := run(t, "config", "check", "--config", p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("config check = %v (%s), want an error naming %s", err, out, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "RETURNPATH_TEST_SW1_PASSWORD=") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
	p := writeConfig(t, base)
	if out, err := run(t, "config", "check", "--config", p); err != nil || !strings.Contains(out, "ok: 1 pools, 1 segments, 2 devices") {
		t.Errorf("valid config: %v %s", err, out)
	}
	p = writeConfig(t, strings.Replace(base, "platform: linux\n", "platform: paloalto_panos\n    panos: {virtual_router: vr-main, interface: ethernet1/2.100}\n", 1))
	if out, err := run(t, "config", "check", "--config", p); err != nil {
		t.Errorf("valid panos keys: %v %s", err, out)
	}
	for _, platform := range []string{"cisco_nxos", "cisco_iosxe"} {
		p := writeConfig(t, strings.Replace(base, "platform: frr\n    transport: ssh\n    address: 198.18.0.11\n    vrf: default",
			"platform: "+platform+"\n    address: 198.18.0.11\n    vrf: blue", 1))
		if out, err := run(t, "config", "check", "--config", p); err != nil || !strings.Contains(out, "ok: 1 pools, 1 segments, 2 devices") {
			t.Errorf("valid %s config: %v %s", platform, err, out)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	p := writeConfig(t, strings.ReplaceAll(testConfig, "%DB%", "postgres:///fromfile"))
	t.Setenv("RETURNPATH_DATABASE_URL", "postgres:///fromenv")
	cfg, err := loadConfig(p, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != "postgres:///fromenv" || cfg.Listen != "127.0.0.1:0" || cfg.LogLevel != "info" {
		t.Errorf("env over file over default: %+v", cfg)
	}
	cmd := newServeCmd()
	if err := cmd.Flags().Parse([]string{"--database-url", "postgres:///fromflag"}); err != nil {
		t.Fatal(err)
	}
	cfg, err = loadConfig(p, cmd.Flags(), true)
	if err != nil || cfg.DatabaseURL != "postgres:///fromflag" {
		t.Errorf("flag over env: %v %v", cfg.DatabaseURL, err)
	}
}

// TestConfigFortiOSKeys: a fortinet_fortios device with its egress interface and a numbered
// VRF is valid, and the interface reaches the driver's config.
func TestConfigFortiOSKeys(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	body := strings.Replace(strings.ReplaceAll(testConfig, "%DB%", "postgres:///x"),
		"platform: linux\n", "platform: fortinet_fortios\n    vrf: \"12\"\n    fortios: {device: wan1.100}\n", 1)
	p := writeConfig(t, body)
	if out, err := run(t, "config", "check", "--config", p); err != nil {
		t.Fatalf("config check = %v\n%s", err, out)
	}
	cfg, err := loadConfig(p, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	inv, _, err := cfg.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	dcs, err := cfg.DriverConfigs(inv)
	if err != nil {
		t.Fatal(err)
	}
	if got := dcs["fw1"].FortiOS.Device; got != "wan1.100" {
		t.Errorf("fw1's fortios.device = %q, want wan1.100", got)
	}
}

// TestConfigCheckListsEveryProblem: one run of config check names every key at fault (exit
// 1), suggests the known key an unknown one was probably meant to be, says where passwords go,
// and serve refuses to start with the same list.
func TestConfigCheckListsEveryProblem(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	base := strings.ReplaceAll(testConfig, "%DB%", "postgres:///x")
	edits := []struct{ from, to string }{
		{"    subnet_length: 24", "    subnet_lenght: 24"},
		{"password_env: RETURNPATH_TEST_SW1_PASSWORD\n    known_hosts: /dev/null\n  - name: fw1", "password: hunter2\n    known_hosts: /dev/null\n  - name: fw1"},
		{"device: fw1", "device: fw9"},
		{"listen:", "log_level: loud\nlisten:"},
		{"    address: 198.18.0.12:22", "    address: 198.18.0.12:22\n    max_sessions: lots"},
		{"approval:", "colour: red\napproval:"},
	}
	body := base
	for _, e := range edits {
		if !strings.Contains(body, e.from) {
			t.Fatalf("test config lacks %q", e.from)
		}
		body = strings.Replace(body, e.from, e.to, 1)
	}
	p := writeConfig(t, body)
	_, err := run(t, "config", "check", "--config", p)
	var ec exitCode
	if !errors.As(err, &ec) || ec.code != 1 {
		t.Fatalf("config check = %v, want exit status 1", err)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("config check = %T %v, want a *ConfigError", err, err)
	}
	got := map[string]string{}
	for _, p := range ce.Problems {
		key, msg, _ := strings.Cut(p.Error(), ": ")
		got[key] = msg
	}
	want := []struct{ key, says string }{
		{"pools[0].subnet_lenght", "did you mean subnet_length?"},
		{"pools[0].subnet_length", "must lie between"}, // the misspelt key left it unset
		{"devices[0].password", "password_env"},
		{"devices[0]", "set one of password_env, password_file or private_key_file"},
		{"segments[0].route_via[1].device", `no device named "fw9"`},
		{"log_level", "loud"},
		{"devices[1].max_sessions", "whole number"},
		{"colour", "unknown key"},
	}
	for _, w := range want {
		if msg, ok := got[w.key]; !ok || !strings.Contains(msg, w.says) {
			t.Errorf("problem %s = %q (listed: %v), want one saying %q", w.key, msg, ok, w.says)
		}
	}
	if len(ce.Problems) != len(want) {
		t.Errorf("%d problems, want %d: %v", len(ce.Problems), len(want), ce.Problems)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error quotes the password: %v", err)
	}
	var out bytes.Buffer
	printError(&out, ec.err) // as main does
	if lines := strings.Count(out.String(), "\n"); lines != len(want)+1 {
		t.Errorf("printed %d lines, want a header and one line per problem:\n%s", lines, out.String())
	}

	cfg, err := readConfig(p, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	err = m.Open(context.Background())
	if !errors.As(err, &ce) || len(ce.Problems) != len(want) {
		t.Errorf("serve's Open = %v, want the same %d problems", err, len(want))
	}
	if m.DB != nil {
		t.Error("Open connected to the database despite the problems")
	}
}

func TestUnknownKeyHints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, want string
	}{
		{key: "pools[3].subnet_lenght", want: "did you mean subnet_length?"},
		{key: "devices[0].pasword_env", want: "did you mean password_env?"},
		{key: "devices[0].password", want: "password_file"},
		{key: "devices[0].gnmi.insecur", want: "did you mean insecure?"},
		{key: "events.webhooks[1].secret", want: "secret_env"},
		{key: "lissten", want: "did you mean listen?"},
		{key: "pools[0].colour", want: "known in pools[]: name, prefix, subnet_length"},
		{key: "password", want: "unknown key (known here:"}, // no password_env at the top level
	}
	for _, tt := range tests {
		if got := unknownKeyError(tt.key).Error(); !strings.HasPrefix(got, tt.key+": unknown key") || !strings.Contains(got, tt.want) {
			t.Errorf("unknownKeyError(%q) = %q, want it to say %q", tt.key, got, tt.want)
		}
	}
}

// TestConfigASAKeys: a cisco_asa device with its interface is valid, and the nameif reaches
// the driver's config.
func TestConfigASAKeys(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	body := strings.Replace(strings.ReplaceAll(testConfig, "%DB%", "postgres:///x"),
		"platform: linux\n", "platform: cisco_asa\n    asa: {interface: inside-2}\n", 1)
	p := writeConfig(t, body)
	if out, err := run(t, "config", "check", "--config", p); err != nil {
		t.Fatalf("config check = %v\n%s", err, out)
	}
	cfg, err := loadConfig(p, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	inv, _, err := cfg.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	dcs, err := cfg.DriverConfigs(inv)
	if err != nil {
		t.Fatal(err)
	}
	if got := dcs["fw1"].ASA.Interface; got != "inside-2" {
		t.Errorf("fw1's asa.interface = %q, want inside-2", got)
	}
}

// TestConfigProbes: probes are checked at start, global and per segment, every problem named
// by its key; a segment inherits what it does not set.
func TestConfigProbes(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	base := strings.ReplaceAll(testConfig, "%DB%", "postgres:///x")
	body := strings.Replace(base, "approval:", `probes:
  targets: [198.51.100.1, "10.210.3.4", "198.51.100.1:443", nonsense]
  max_age: -1m
approval:`, 1)
	body = strings.Replace(body, "    route_via:\n", "    probes: {targets: [\"10.10.10.9\", \"198.51.100.9:0\"], max_age: -5s}\n    route_via:\n", 1)
	p := writeConfig(t, body)
	_, err := run(t, "config", "check", "--config", p)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("config check = %v, want a *ConfigError", err)
	}
	got := map[string]bool{}
	for _, p := range ce.Problems {
		key, _, _ := strings.Cut(p.Error(), ": ")
		got[key] = true
	}
	want := map[string]bool{
		"probes.targets[1]": true, "probes.targets[3]": true, "probes.max_age": true,
		"segments[0].probes.targets[0]": true, "segments[0].probes.targets[1]": true, "segments[0].probes.max_age": true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("keys at fault (-want +got):\n%s", diff)
	}

	body = strings.Replace(base, "approval:", "probes:\n  targets: [198.51.100.1, \"198.51.100.2:443\"]\napproval:", 1)
	body = strings.Replace(body, "    route_via:\n", "    probes: {max_age: 2m}\n    route_via:\n", 1)
	cfg, err := loadConfig(writeConfig(t, body), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	inv, _, err := cfg.Inventory()
	if err != nil {
		t.Fatalf("valid probes: %v", err)
	}
	seg, _ := inv.Segment("rack1")
	wantProbes := fabric.ProbeSettings{Targets: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:0"), netip.MustParseAddrPort("198.51.100.2:443")}, MaxAge: 2 * time.Minute}
	if diff := cmp.Diff(wantProbes, seg.Probes, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("rack1's probes (-want +got):\n%s", diff)
	}
	cfg, err = loadConfig(writeConfig(t, base), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if inv, _, err = cfg.Inventory(); err != nil || inv.ProbeMaxAge("rack1") != fabric.DefaultProbeMaxAge {
		t.Errorf("no probes key: %v, max_age %s, want the default %s", err, inv.ProbeMaxAge("rack1"), fabric.DefaultProbeMaxAge)
	}
}
