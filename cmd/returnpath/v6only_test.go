package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// v6OnlyConfigText is dualConfigText plus rack6, an IPv6-only segment (hosts6 and pool6, no
// hosts or pool) of pool only6, whose fw1 hop has a plain IPv6 next hop.
func v6OnlyConfigText() string {
	c := dualConfigText()
	c = strings.Replace(c, "segments:\n", "  - name: only6\n    prefix: 2001:db8:b00::/48\n    subnet_length: 64\nsegments:\n", 1)
	return strings.Replace(c, "devices:\n", `  - name: rack6
    hosts6: 2001:db8:60::/64
    pool6: only6
    route_via:
      - device: sw1
        next_hop: host
      - device: fw1
        next_hop: "2001:db8:20::1"
devices:
`, 1)
}

func v6OnlyConfig() string {
	return strings.Replace(v6OnlyConfigText(), `"%DB%"`, `"postgres:///x"`, 1)
}

// TestConfigV6Only: a segment with hosts6 and pool6 alone is valid; its plain next hop is IPv6.
func TestConfigV6Only(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	cfg, err := loadConfig(writeConfig(t, v6OnlyConfig()), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	checked, err := cfg.Check()
	if err != nil {
		t.Fatal(err)
	}
	seg, ok := checked.Inventory.Segment("rack6")
	if !ok || seg.Hosts.IsValid() || seg.Pool != "" || seg.Hosts6 != netip.MustParsePrefix("2001:db8:60::/64") || seg.Pool6 != "only6" {
		t.Fatalf("rack6 = %+v, %v; want hosts6 and pool6 only", seg, ok)
	}
	if nh, _ := seg.RouteVia[1].NextHop.Fixed(true); nh != netip.MustParseAddr("2001:db8:20::1") {
		t.Errorf("fw1's IPv6 next hop = %v", nh)
	}
	if out, err := run(t, "config", "check", "--config", writeConfig(t, v6OnlyConfig())); err != nil || !strings.Contains(out, "ok: 3 pools, 2 segments, 2 devices") {
		t.Errorf("config check = %v %s", err, out)
	}
}

// TestConfigV6OnlyErrorsNameTheKey: each bad IPv6-only setting is refused naming its key.
func TestConfigV6OnlyErrorsNameTheKey(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	base := v6OnlyConfig()
	hop := `next_hop: "2001:db8:20::1"`
	fw1 := "segments[1].route_via[1].next_hop"
	for _, tt := range []struct{ name, from, to, want string }{
		{name: "plain IPv4 next hop", from: hop, to: "next_hop: 10.10.20.1", want: fw1},
		{name: "map without ipv6", from: hop, to: "next_hop: {ipv4: 10.10.20.1}", want: fw1},
		{name: "hosts6 without pool6", from: "    pool6: only6\n", to: "", want: "segments[1].pool6"},
		{name: "pool6 without hosts6", from: "    hosts6: 2001:db8:60::/64\n", to: "", want: "segments[1].hosts6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("config lacks %q", tt.from)
			}
			cfg, err := readConfig(writeConfig(t, strings.Replace(base, tt.from, tt.to, 1)), nil, true)
			if err == nil {
				_, err = cfg.Check()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	// The map form with ipv6 alone is fine.
	cfg, err := readConfig(writeConfig(t, strings.Replace(base, hop, `next_hop: {ipv6: "2001:db8:20::1"}`, 1)), nil, true)
	if err == nil {
		_, err = cfg.Check()
	}
	if err != nil {
		t.Errorf("next_hop {ipv6: ...} in an IPv6-only segment: %v", err)
	}
}

// TestMergeDaemonSettingsV6Only: a host of an IPv6-only segment gets ip-masq, ipv6 and
// fixed-cidr-v6 and no bip; a bip already in the file is left as it is.
func TestMergeDaemonSettingsV6Only(t *testing.T) {
	t.Parallel()
	ds := daemonSettings{fixedCIDRv6: netip.MustParsePrefix("2001:db8:b00:7::/64")}
	for _, tt := range []struct{ name, existing, want string }{
		{name: "new file", want: "{\n  \"ip-masq\": false,\n  \"ipv6\": true,\n  \"fixed-cidr-v6\": \"2001:db8:b00:7::/64\"\n}\n"},
		{name: "bip kept", existing: `{"bip":"172.30.0.1/24","ipv6":false}`,
			want: "{\n  \"bip\": \"172.30.0.1/24\",\n  \"ipv6\": true,\n  \"ip-masq\": false,\n  \"fixed-cidr-v6\": \"2001:db8:b00:7::/64\"\n}\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "daemon.json")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, err := mergeDaemonSettings(path, ds)
			if err != nil || res.Bip != "" || !res.Changed {
				t.Fatalf("mergeDaemonSettings() = %+v, %v", res, err)
			}
			got, _ := os.ReadFile(path)
			if diff := cmp.Diff(string(got), tt.want); diff != "" {
				t.Errorf("daemon.json (-got +want):\n%s", diff)
			}
			// Again: nothing to change, nothing written.
			if res, err := mergeDaemonSettings(path, ds); err != nil || res.Changed {
				t.Errorf("second merge = %+v, %v; want unchanged", res, err)
			}
		})
	}
	if _, err := mergeDaemonSettings(filepath.Join(t.TempDir(), "daemon.json"), daemonSettings{}); err == nil {
		t.Error("merge with neither bip nor fixed-cidr-v6 succeeded")
	}
}

// TestHostRegisterV6OnlyRealServer: `host register --address6` without --address, against
// the real server, registers a host of the IPv6-only segment and writes daemon.json without
// bip; `host renew` and `host deregister` work for it; --address6 alone for the dual-stack
// segment is refused naming address, and neither flag at all before anything is sent.
func TestHostRegisterV6OnlyRealServer(t *testing.T) {
	url, _, tokens := startServerFor(t, v6OnlyConfigText())
	tokFile := writeToken(t, tokens["bootstrap"])
	dir := t.TempDir()
	daemon := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemon, []byte(`{"log-driver":"journald"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	out, err := run(t, "host", "register", "--server", url, "--token-file", tokFile, "--name", "s1",
		"--address6", "2001:db8:60::101", "--daemon-json", daemon, "-o", "json")
	if err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
	var res hostRegisterResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, out)
	}
	if res.Host.Address.IsValid() || res.Host.Subnet.IsValid() || res.Host.Docker.Bip.IsValid() || res.Host.Subnet6.String() != "2001:db8:b00::/64" ||
		res.DaemonJSON == nil || res.DaemonJSON.Bip != "" || res.DaemonJSON.FixedCIDRv6 != "2001:db8:b00::/64" {
		t.Errorf("register result = %+v (daemon.json %+v)", res.Host, res.DaemonJSON)
	}
	got, _ := os.ReadFile(daemon)
	want := "{\n  \"log-driver\": \"journald\",\n  \"ip-masq\": false,\n  \"ipv6\": true,\n  \"fixed-cidr-v6\": \"2001:db8:b00::/64\"\n}\n"
	if diff := cmp.Diff(string(got), want); diff != "" {
		t.Errorf("daemon.json (-got +want):\n%s", diff)
	}
	// Again, in text: the same host, daemon.json not rewritten.
	out, err = run(t, "host", "register", "--server", url, "--token-file", tokFile, "--name", "s1", "--address6", "2001:db8:60::101", "--daemon-json", daemon)
	if err != nil || !strings.Contains(out, "already registered s1 (2001:db8:60::101) in IPv6-only segment rack6: subnet6 2001:db8:b00::/64") {
		t.Errorf("register again = %v\n%s", err, out)
	}
	if out, err := run(t, "host", "renew", "--server", url, "--token-file", tokFile, "--name", "s1"); err != nil {
		t.Errorf("host renew = %v\n%s", err, out)
	}
	_, err = run(t, "host", "register", "--server", url, "--token-file", tokFile, "--name", "d1", "--address6", "2001:db8:10::101")
	if err == nil || !strings.Contains(err.Error(), "address") || !strings.Contains(err.Error(), "IPv4 hosts") {
		t.Errorf("--address6 alone for the dual-stack segment = %v", err)
	}
	_, err = run(t, "host", "register", "--server", url, "--token-file", tokFile, "--name", "d1")
	if err == nil || !strings.Contains(err.Error(), "--address") {
		t.Errorf("neither --address nor --address6 = %v", err)
	}
	out, err = run(t, "host", "deregister", "--server", url, "--token-file", tokFile, "--name", "s1")
	if err != nil || !strings.Contains(out, "2001:db8:b00::/64") {
		t.Errorf("host deregister = %v\n%s", err, out)
	}
}
