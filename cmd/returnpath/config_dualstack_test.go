package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
)

// dualConfig is testConfig with an IPv6 family on rack1: pool6, hosts6 and fw1's next hop in
// the per-family form.
func dualConfig() string {
	return strings.Replace(dualConfigText(), `"%DB%"`, `"postgres:///x"`, 1)
}

// dualConfigText is dualConfig with the database URL left as %DB%.
func dualConfigText() string {
	c := testConfig
	c = strings.Replace(c, "segments:\n", "  - name: docker6\n    prefix: 2001:db8:a00::/48\n    subnet_length: 64\nsegments:\n", 1)
	c = strings.Replace(c, "    pool: docker\n", "    pool: docker\n    hosts6: 2001:db8:10::/64\n    pool6: docker6\n", 1)
	return strings.Replace(c, "next_hop: 10.10.20.1", "next_hop: {ipv4: 10.10.20.1, ipv6: \"2001:db8:20::1\"}", 1)
}

// TestConfigDualStack: the next_hop map form gives a hop one fixed next hop per family, the
// segment gets hosts6 and pool6, and the plain form stays valid beside it.
func TestConfigDualStack(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	cfg, err := loadConfig(writeConfig(t, dualConfig()), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	checked, err := cfg.Check()
	if err != nil {
		t.Fatal(err)
	}
	seg := checked.Inventory.Segments[0]
	if seg.Hosts6 != netip.MustParsePrefix("2001:db8:10::/64") || seg.Pool6 != "docker6" {
		t.Errorf("segment = hosts6 %v pool6 %q", seg.Hosts6, seg.Pool6)
	}
	want := fabric.NextHop{Addr: netip.MustParseAddr("10.10.20.1"), Addr6: netip.MustParseAddr("2001:db8:20::1")}
	if got := seg.RouteVia[1].NextHop; got != want {
		t.Errorf("fw1 next hop = %v, want %v", got, want)
	}
	if got := seg.RouteVia[0].NextHop; !got.Host {
		t.Errorf("sw1 next hop = %v, want host", got)
	}
	pool6, ok := checked.Inventory.Pool("docker6")
	if !ok || pool6.Prefix != netip.MustParsePrefix("2001:db8:a00::/48") || pool6.SubnetLength != 64 {
		t.Errorf("pool docker6 = %+v, %v", pool6, ok)
	}
	if out, err := run(t, "config", "check", "--config", writeConfig(t, dualConfig())); err != nil || !strings.Contains(out, "ok: 2 pools, 1 segments, 2 devices") {
		t.Errorf("config check = %v %s", err, out)
	}
}

// TestConfigDualStackErrorsNameTheKey: each bad dual-stack setting is refused naming its key.
func TestConfigDualStackErrorsNameTheKey(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	base := dualConfig()
	hop := `next_hop: {ipv4: 10.10.20.1, ipv6: "2001:db8:20::1"}`
	fw1 := "segments[0].route_via[1].next_hop"
	tests := []struct {
		name, from, to, want string
	}{
		{name: "ipv6 key holding IPv4", from: hop, to: "next_hop: {ipv4: 10.10.20.1, ipv6: 10.10.20.2}", want: fw1},
		{name: "ipv4 key holding IPv6", from: hop, to: `next_hop: {ipv4: "2001:db8:20::2", ipv6: "2001:db8:20::1"}`, want: fw1},
		{name: "ipv6 not an address", from: hop, to: `next_hop: {ipv4: 10.10.20.1, ipv6: "2001:db8:20::1::"}`, want: fw1},
		{name: "empty map", from: hop, to: "next_hop: {}", want: fw1},
		{name: "unknown family key", from: hop, to: `next_hop: {ipv4: 10.10.20.1, ipv7: "2001:db8:20::1"}`, want: "ipv7"},
		{name: "link-local ipv6", from: hop, to: `next_hop: {ipv4: 10.10.20.1, ipv6: "fe80::1"}`, want: fw1},
		{name: "multicast ipv6", from: hop, to: `next_hop: {ipv4: 10.10.20.1, ipv6: "ff02::1"}`, want: fw1},
		{name: "IPv6 hosts without an IPv6 next hop", from: hop, to: "next_hop: 10.10.20.1", want: fw1},
		{name: "hosts6 with host bits", from: "hosts6: 2001:db8:10::/64", to: "hosts6: 2001:db8:10::5/64", want: "segments[0].hosts6"},
		{name: "hosts6 /129", from: "hosts6: 2001:db8:10::/64", to: "hosts6: 2001:db8:10::/129", want: "segments[0].hosts6"},
		{name: "hosts6 IPv4", from: "hosts6: 2001:db8:10::/64", to: "hosts6: 10.10.40.0/24", want: "segments[0].hosts6"},
		{name: "pool6 unknown", from: "pool6: docker6", to: "pool6: nope", want: "segments[0].pool6"},
		{name: "pool6 names the IPv4 pool", from: "pool6: docker6", to: "pool6: docker", want: "segments[0].pool6"},
		{name: "pool6 without hosts6", from: "    hosts6: 2001:db8:10::/64\n", to: "", want: "segments[0].hosts6"},
		{name: "IPv6 subnet_length out of range", from: "subnet_length: 64", to: "subnet_length: 48", want: "pools[1].subnet_length"},
		{name: "IPv6 pool with host bits", from: "prefix: 2001:db8:a00::/48", to: "prefix: 2001:db8:a00::1/48", want: "pools[1].prefix"},
		{name: "IPv6-only segment with an ipv4 next hop", from: "    hosts: 10.10.10.0/24\n    pool: docker\n", to: "", want: fw1},
		{name: "IPv6 pools overlapping", from: "segments:\n", to: "  - name: other6\n    prefix: 2001:db8:a00::/56\n    subnet_length: 64\nsegments:\n", want: "pools[2].prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("dual config lacks %q", tt.from)
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
}
