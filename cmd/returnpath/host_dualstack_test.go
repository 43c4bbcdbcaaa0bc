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

// TestMergeDaemonSettingsIPv6: a dual-stack host's daemon.json gains "ipv6": true and
// "fixed-cidr-v6", --allow-direct-routing adds "allow-direct-routing": true, other keys and
// their order are kept, and a file that already says all of it is not rewritten.
func TestMergeDaemonSettingsIPv6(t *testing.T) {
	t.Parallel()
	v6 := netip.MustParsePrefix("2001:db8:a00:7::/64")
	tests := []struct {
		name     string
		existing string // "" : no file
		ds       daemonSettings
		want     string
		changed  bool
	}{
		{
			name: "dual stack into a new file", ds: daemonSettings{bip: testBip, fixedCIDRv6: v6}, changed: true,
			want: "{\n  \"bip\": \"10.210.7.1/24\",\n  \"ip-masq\": false,\n  \"ipv6\": true,\n  \"fixed-cidr-v6\": \"2001:db8:a00:7::/64\"\n}\n",
		},
		{
			name: "allow-direct-routing only", ds: daemonSettings{bip: testBip, allowDirectRouting: true}, changed: true,
			existing: `{"log-driver":"journald"}`,
			want:     "{\n  \"log-driver\": \"journald\",\n  \"bip\": \"10.210.7.1/24\",\n  \"ip-masq\": false,\n  \"allow-direct-routing\": true\n}\n",
		},
		{
			name: "old IPv6 subnet replaced in place, other keys kept", ds: daemonSettings{bip: testBip, fixedCIDRv6: v6, allowDirectRouting: true}, changed: true,
			existing: `{"fixed-cidr-v6":"fd00:1::/64","log-driver":"journald","ipv6":false,"bip":"10.210.7.1/24","ip-masq":false}`,
			want: "{\n  \"fixed-cidr-v6\": \"2001:db8:a00:7::/64\",\n  \"log-driver\": \"journald\",\n  \"ipv6\": true,\n  \"bip\": \"10.210.7.1/24\",\n" +
				"  \"ip-masq\": false,\n  \"allow-direct-routing\": true\n}\n",
		},
		{
			name: "already right: not rewritten", ds: daemonSettings{bip: testBip, fixedCIDRv6: v6, allowDirectRouting: true},
			existing: `{"bip":"10.210.7.1/24","ip-masq":false,"ipv6":true,"fixed-cidr-v6":"2001:db8:a00:7::/64","allow-direct-routing":true}`,
			want:     `{"bip":"10.210.7.1/24","ip-masq":false,"ipv6":true,"fixed-cidr-v6":"2001:db8:a00:7::/64","allow-direct-routing":true}`,
		},
		{
			name: "IPv4-only host leaves IPv6 keys alone", ds: daemonSettings{bip: testBip},
			existing: `{"bip":"10.210.7.1/24","ip-masq":false,"ipv6":true,"fixed-cidr-v6":"fd00:1::/64"}`,
			want:     `{"bip":"10.210.7.1/24","ip-masq":false,"ipv6":true,"fixed-cidr-v6":"fd00:1::/64"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "daemon.json")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, err := mergeDaemonSettings(path, tt.ds)
			if err != nil {
				t.Fatalf("mergeDaemonSettings() = %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(got), tt.want); diff != "" {
				t.Errorf("daemon.json (-got +want):\n%s", diff)
			}
			if res.Changed != tt.changed || res.AllowDirectRouting != tt.ds.allowDirectRouting {
				t.Errorf("result = %+v, want changed %v", res, tt.changed)
			}
			if tt.ds.fixedCIDRv6.IsValid() && res.FixedCIDRv6 != tt.ds.fixedCIDRv6.String() {
				t.Errorf("result fixed-cidr-v6 = %q, want %s", res.FixedCIDRv6, tt.ds.fixedCIDRv6)
			}
		})
	}
}

// TestHostRegisterDualStackRealServer: `host register --address6 --allow-direct-routing`
// against the real server writes both families and allow-direct-routing into daemon.json;
// --allow-direct-routing without --daemon-json is refused before anything is sent.
func TestHostRegisterDualStackRealServer(t *testing.T) {
	url, _, tokens := startServerFor(t, dualConfigText())
	tokFile := writeToken(t, tokens["bootstrap"])
	dir := t.TempDir()
	daemon := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemon, []byte(`{"log-driver":"journald"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	out, err := run(t, "host", "register", "--server", url, "--token-file", tokFile, "--name", "d1", "--address", "10.10.10.101",
		"--address6", "2001:db8:10::101", "--allow-direct-routing", "--daemon-json", daemon, "-o", "json")
	if err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
	var res hostRegisterResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, out)
	}
	if res.Host.Subnet6.String() != "2001:db8:a00::/64" || res.DaemonJSON == nil || res.DaemonJSON.FixedCIDRv6 != "2001:db8:a00::/64" || !res.DaemonJSON.AllowDirectRouting {
		t.Errorf("register result = %+v", res)
	}
	got, _ := os.ReadFile(daemon)
	want := "{\n  \"log-driver\": \"journald\",\n  \"bip\": \"10.210.0.1/24\",\n  \"ip-masq\": false,\n  \"ipv6\": true,\n" +
		"  \"fixed-cidr-v6\": \"2001:db8:a00::/64\",\n  \"allow-direct-routing\": true\n}\n"
	if diff := cmp.Diff(string(got), want); diff != "" {
		t.Errorf("daemon.json (-got +want):\n%s", diff)
	}
	_, err = run(t, "host", "register", "--server", url, "--token-file", tokFile, "--name", "d2", "--address", "10.10.10.102", "--allow-direct-routing")
	if err == nil || !strings.Contains(err.Error(), "--allow-direct-routing") {
		t.Errorf("--allow-direct-routing without --daemon-json = %v", err)
	}
	_, err = run(t, "host", "register", "--server", url, "--token-file", tokFile, "--name", "d2", "--address", "10.10.10.102", "--address6", "10.10.10.102")
	if err == nil || !strings.Contains(err.Error(), "--address6") {
		t.Errorf("--address6 with an IPv4 address = %v", err)
	}
}
