package fabric_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
)

func adoptInput(inv *fabric.Inventory, routes map[string][]fabric.Route, known ...fabric.Host) fabric.AdoptInput {
	return fabric.AdoptInput{Segment: inv.Segments[0], Pool: inv.Pools[0], Devices: inv.Devices, Routes: routes, Known: known}
}

func art(prefix, nextHop string) fabric.Route {
	return fabric.Route{VRF: "default", Prefix: pfx(prefix), NextHop: addr(nextHop)}
}

func TestAdopt(t *testing.T) {
	t.Parallel()
	const fwHop = "10.10.20.1"
	tests := []struct {
		name          string
		inv           func() *fabric.Inventory
		routes        map[string][]fabric.Route
		known         []fabric.Host
		wantAdoptions []fabric.Adoption
		wantOrphans   []fabric.Orphan
	}{
		{
			name: "complete path",
			routes: map[string][]fabric.Route{
				"sw1": {art("10.210.7.0/24", "10.10.10.107"), art("10.210.1.0/24", "10.10.10.101")},
				"fw1": {art("10.210.1.0/24", fwHop), art("10.210.7.0/24", fwHop)},
			},
			wantAdoptions: []fabric.Adoption{
				{Subnet: pfx("10.210.1.0/24"), Address: addr("10.10.10.101"), Present: []string{"sw1", "fw1"}},
				{Subnet: pfx("10.210.7.0/24"), Address: addr("10.10.10.107"), Present: []string{"sw1", "fw1"}},
			},
		},
		{
			name: "firewall misses one: incomplete path",
			routes: map[string][]fabric.Route{
				"sw1": {art("10.210.1.0/24", "10.10.10.101")},
				"fw1": {},
			},
			wantAdoptions: []fabric.Adoption{{Subnet: pfx("10.210.1.0/24"), Address: addr("10.10.10.101"), Present: []string{"sw1"}, Missing: []string{"fw1"}}},
		},
		{
			name: "routes outside the pool and in other VRFs are none of adopt's business",
			routes: map[string][]fabric.Route{
				"sw1": {art("192.168.5.0/24", "10.10.10.5"), {VRF: "blue", Prefix: pfx("10.210.3.0/24"), NextHop: addr("10.10.10.103")}},
				"fw1": {art("0.0.0.0/0", "203.0.113.254")},
			},
		},
		{
			name: "firewall only: host unknown",
			routes: map[string][]fabric.Route{
				"sw1": {},
				"fw1": {art("10.210.4.0/24", fwHop)},
			},
			wantOrphans: []fabric.Orphan{{Device: "fw1", Prefix: pfx("10.210.4.0/24"), NextHop: addr(fwHop), Reason: "no host-facing device routes it to a host, so its host is unknown"}},
		},
		{
			name: "next hop outside the segment, wrong firewall next hop, wrong length",
			routes: map[string][]fabric.Route{
				"sw1": {art("10.210.1.0/24", "10.10.99.1"), art("10.210.2.0/25", "10.10.10.102"), art("10.210.3.0/24", "10.10.10.255")},
				"fw1": {art("10.210.5.0/24", "10.10.20.9")},
			},
			wantOrphans: []fabric.Orphan{
				{Device: "sw1", Prefix: pfx("10.210.1.0/24"), NextHop: addr("10.10.99.1"), Reason: "next hop 10.10.99.1 is not a host address of segment rack1 (10.10.10.0/24)"},
				{Device: "sw1", Prefix: pfx("10.210.2.0/25"), NextHop: addr("10.10.10.102"), Reason: "not a /24 subnet of pool docker (10.210.0.0/16)"},
				{Device: "sw1", Prefix: pfx("10.210.3.0/24"), NextHop: addr("10.10.10.255"), Reason: "next hop 10.10.10.255 is not a host address of segment rack1 (10.10.10.0/24)"},
				{Device: "fw1", Prefix: pfx("10.210.5.0/24"), NextHop: addr("10.10.20.9"), Reason: "next hop 10.10.20.9, but segment rack1 routes via 10.10.20.1 on this device"},
			},
		},
		{
			name: "redundant switches disagree on the host",
			inv:  haInventory,
			routes: map[string][]fabric.Route{
				"sw1": {art("10.210.1.0/24", "10.10.10.101")},
				"sw2": {art("10.210.1.0/24", "10.10.10.102")},
				"fw1": {art("10.210.1.0/24", fwHop)},
			},
			wantOrphans: []fabric.Orphan{
				{Device: "fw1", Prefix: pfx("10.210.1.0/24"), NextHop: addr(fwHop), Reason: "conflicting next hops on the host-facing devices: 10.10.10.101, 10.10.10.102"},
				{Device: "sw1", Prefix: pfx("10.210.1.0/24"), NextHop: addr("10.10.10.101"), Reason: "conflicting next hops on the host-facing devices: 10.10.10.101, 10.10.10.102"},
				{Device: "sw2", Prefix: pfx("10.210.1.0/24"), NextHop: addr("10.10.10.102"), Reason: "conflicting next hops on the host-facing devices: 10.10.10.101, 10.10.10.102"},
			},
		},
		{
			name: "redundant pair: one member misses it",
			inv:  haInventory,
			routes: map[string][]fabric.Route{
				"sw1": {art("10.210.1.0/24", "10.10.10.101")},
				"sw2": {},
				"fw1": {art("10.210.1.0/24", fwHop)},
			},
			wantAdoptions: []fabric.Adoption{{Subnet: pfx("10.210.1.0/24"), Address: addr("10.10.10.101"), Present: []string{"sw1", "fw1"}, Missing: []string{"sw2"}}},
		},
		{
			name: "one host, two subnets",
			routes: map[string][]fabric.Route{
				"sw1": {art("10.210.1.0/24", "10.10.10.101"), art("10.210.2.0/24", "10.10.10.101")},
			},
			wantOrphans: []fabric.Orphan{
				{Device: "sw1", Prefix: pfx("10.210.1.0/24"), NextHop: addr("10.10.10.101"), Reason: "host 10.10.10.101 is the next hop of several subnets (10.210.1.0/24, 10.210.2.0/24): a host has one"},
				{Device: "sw1", Prefix: pfx("10.210.2.0/24"), NextHop: addr("10.10.10.101"), Reason: "host 10.10.10.101 is the next hop of several subnets (10.210.1.0/24, 10.210.2.0/24): a host has one"},
			},
		},
		{
			name: "unreadable device is neither present nor missing",
			routes: map[string][]fabric.Route{
				"sw1": {art("10.210.1.0/24", "10.10.10.101")},
			},
			wantAdoptions: []fabric.Adoption{{Subnet: pfx("10.210.1.0/24"), Address: addr("10.10.10.101"), Present: []string{"sw1"}}},
		},
		{
			name: "already registered: same host, another host, or the host with another subnet",
			routes: map[string][]fabric.Route{
				"sw1": {art("10.210.1.0/24", "10.10.10.101"), art("10.210.2.0/24", "10.10.10.102"), art("10.210.8.0/24", "10.10.10.108")},
				"fw1": {art("10.210.1.0/24", fwHop), art("10.210.2.0/24", fwHop)},
			},
			known: []fabric.Host{
				{Name: "web1", Address: addr("10.10.10.101"), Subnet: pfx("10.210.1.0/24"), State: fabric.HostActive},
				{Name: "db1", Address: addr("10.10.10.50"), Subnet: pfx("10.210.2.0/24"), State: fabric.HostActive},
				{Name: "app8", Address: addr("10.10.10.108"), Subnet: pfx("10.210.80.0/24"), State: fabric.HostPending},
				{Name: "old", Address: addr("10.10.10.109"), Subnet: pfx("10.210.9.0/24"), State: fabric.HostRemoved},
			},
			wantAdoptions: []fabric.Adoption{{Subnet: pfx("10.210.1.0/24"), Address: addr("10.10.10.101"), Present: []string{"sw1", "fw1"}, Host: "web1"}},
			wantOrphans: []fabric.Orphan{
				{Device: "fw1", Prefix: pfx("10.210.2.0/24"), NextHop: addr(fwHop), Reason: "registered to host db1 at 10.10.10.50"},
				{Device: "sw1", Prefix: pfx("10.210.2.0/24"), NextHop: addr("10.10.10.102"), Reason: "registered to host db1 at 10.10.10.50"},
				{Device: "sw1", Prefix: pfx("10.210.8.0/24"), NextHop: addr("10.10.10.108"), Reason: "host app8 at 10.10.10.108 is registered with subnet 10.210.80.0/24"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := labInventory()
			if tt.inv != nil {
				inv = tt.inv()
			}
			got := fabric.Adopt(adoptInput(inv, tt.routes, tt.known...))
			if diff := cmp.Diff(got.Adoptions, tt.wantAdoptions, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("Adoptions (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(got.Orphans, tt.wantOrphans, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("Orphans (-got +want):\n%s", diff)
			}
		})
	}
}

func TestAdoptedHostName(t *testing.T) {
	t.Parallel()
	if got, want := fabric.AdoptedHostName(addr("10.10.10.101")), "host-10-10-10-101"; got != want {
		t.Errorf("AdoptedHostName = %q, want %q", got, want)
	}
	if _, err := fabric.NormalizeHostName(fabric.AdoptedHostName(addr("10.10.10.101"))); err != nil {
		t.Errorf("the adopted name is not a valid host name: %v", err)
	}
}
