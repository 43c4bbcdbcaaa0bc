package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const testConfig = `
listen: "127.0.0.1:0"
database_url: "%DB%"
pools:
  - name: docker
    prefix: 172.10.0.0/16
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
	m, logs, cfgPath := startMain(t, testConfig)

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
		{"bad pool prefix", "prefix: 172.10.0.0/16", "prefix: 172.10.0.0/33", "pools[0].prefix"},
		{"unknown device", "device: fw1", "device: fw9", "segments[0].route_via[1].device"},
		{"bad next hop", "next_hop: 10.10.20.1", "next_hop: 10.10.20.300", "segments[0].route_via[1].next_hop"},
		{"bad platform", "platform: frr", "platform: ios", "devices[0].platform"},
		{"missing password env", "password_env: RETURNPATH_TEST_SW1_PASSWORD\n    known_hosts: /dev/null\n  - name: fw1", "password_env: RETURNPATH_NOPE\n    known_hosts: /dev/null\n  - name: fw1", "devices[0].password_env"},
		{"bad host key policy", "address: 198.18.0.11\n", "address: 198.18.0.11\n    host_key: yolo\n", "devices[0].host_key"},
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
