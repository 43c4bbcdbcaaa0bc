package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
)

// dualInventory is inventory() with an IPv6 family on rack1 (hosts6, pool6 of /64s, a per-family
// next hop on fw1) and an IPv4-only segment rack2.
func dualInventory() *fabric.Inventory {
	inv := inventory()
	inv.Pools = append(inv.Pools, fabric.Pool{Name: "docker6", Prefix: netip.MustParsePrefix("2001:db8:a00::/48"), SubnetLength: 64})
	seg := &inv.Segments[0]
	seg.Hosts6, seg.Pool6 = netip.MustParsePrefix("2001:db8:10::/64"), "docker6"
	seg.RouteVia[1].NextHop.Addr6 = netip.MustParseAddr("2001:db8:20::1")
	inv.Segments = append(inv.Segments, fabric.Segment{Name: "rack2", Hosts: netip.MustParsePrefix("10.10.30.0/24"), Pool: "docker",
		RouteVia: []fabric.Hop{{Device: "sw1", NextHop: fabric.NextHop{Host: true}}}})
	return inv
}

// TestRegisterDualStackOverHTTP registers a dual-stack host: 201 with both families, the
// docker answer holding ipv6 and fixed-cidr-v6, checked against api/openapi.yaml by e.do.
func TestRegisterDualStackOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnvFor(t, dualInventory())
	resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d1","address":"10.10.10.101","address6":"2001:db8:10::101"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/hosts = %d %v", resp.StatusCode, body)
	}
	want := map[string]string{"address": "10.10.10.101", "subnet": "10.210.0.0/24", "address6": "2001:db8:10::101",
		"subnet6": "2001:db8:a00::/64", "pool6": "docker6"}
	for k, v := range want {
		if fmt.Sprint(body[k]) != v {
			t.Errorf("%s = %v, want %s", k, body[k], v)
		}
	}
	docker, _ := body["docker"].(map[string]any)
	if docker["bip"] != "10.210.0.1/24" || docker["ipv6"] != true || docker["fixed-cidr-v6"] != "2001:db8:a00::/64" || docker["ip-masq"] != false {
		t.Errorf("docker = %v, want bip, ipv6 true and fixed-cidr-v6 2001:db8:a00::/64", docker)
	}
	// A requested subnet6 is honoured.
	resp, body = e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d2","address":"10.10.10.102","address6":"2001:db8:10::102","subnet6":"2001:db8:a00:ff::/64"}`)
	if resp.StatusCode != http.StatusCreated || body["subnet6"] != "2001:db8:a00:ff::/64" {
		t.Errorf("POST with subnet6 = %d %v", resp.StatusCode, body)
	}
	// An IPv4-only host of the same segment has no IPv6 keys at all.
	resp, body = e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d3","address":"10.10.10.103"}`)
	docker, _ = body["docker"].(map[string]any)
	if _, has := body["subnet6"]; resp.StatusCode != http.StatusCreated || has || docker["ipv6"] != nil || docker["fixed-cidr-v6"] != nil {
		t.Errorf("IPv4-only POST = %d %v", resp.StatusCode, body)
	}
	resp, got := e.do(t, "GET", "/v1/hosts/d1", fabric.RoleViewer, "")
	if resp.StatusCode != http.StatusOK || got["subnet6"] != "2001:db8:a00::/64" {
		t.Errorf("GET d1 = %d %v", resp.StatusCode, got)
	}
}

// TestBadDualStackInput sends each bad IPv6 input the issue lists that reaches the API: a 422
// naming the field, and nothing written.
func TestBadDualStackInput(t *testing.T) {
	t.Parallel()
	e := newEnvFor(t, dualInventory())
	tests := []struct {
		name, body, field string
	}{
		{name: "subnet6 with host bits", body: `{"name":"a","address":"10.10.10.1","address6":"2001:db8:10::1","subnet6":"2001:db8:a00::5/64"}`, field: "subnet6"},
		{name: "subnet6 /129", body: `{"name":"a","address":"10.10.10.1","address6":"2001:db8:10::1","subnet6":"2001:db8:a00::/129"}`, field: "subnet6"},
		{name: "subnet6 of the wrong length", body: `{"name":"a","address":"10.10.10.1","address6":"2001:db8:10::1","subnet6":"2001:db8:a00::/80"}`, field: "subnet6"},
		{name: "subnet6 outside pool6", body: `{"name":"a","address":"10.10.10.1","address6":"2001:db8:10::1","subnet6":"2001:db8:b00::/64"}`, field: "subnet6"},
		{name: "subnet6 IPv4", body: `{"name":"a","address":"10.10.10.1","address6":"2001:db8:10::1","subnet6":"10.210.9.0/24"}`, field: "subnet6"},
		{name: "subnet6 without address6", body: `{"name":"a","address":"10.10.10.1","subnet6":"2001:db8:a00::/64"}`, field: "subnet6"},
		{name: "v6 address in a v4-only segment", body: `{"name":"a","address":"10.10.30.1","address6":"2001:db8:10::1"}`, field: "address6"},
		{name: "address6 outside hosts6", body: `{"name":"a","address":"10.10.10.1","address6":"2001:db8:99::1"}`, field: "address6"},
		{name: "link-local address6", body: `{"name":"a","address":"10.10.10.1","address6":"fe80::1"}`, field: "address6"},
		{name: "link-local address6 with zone", body: `{"name":"a","address":"10.10.10.1","address6":"fe80::1%eth0"}`, field: "address6"},
		{name: "multicast address6", body: `{"name":"a","address":"10.10.10.1","address6":"ff02::1"}`, field: "address6"},
		{name: "IPv4 as address6", body: `{"name":"a","address":"10.10.10.1","address6":"10.10.10.1"}`, field: "address6"},
		{name: "address6 not an address", body: `{"name":"a","address":"10.10.10.1","address6":"2001:db8:10::1::"}`, field: "address6"},
		{name: "IPv6 as address", body: `{"name":"a","address":"2001:db8:10::1"}`, field: "address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, tt.body)
			if resp.StatusCode != http.StatusUnprocessableEntity || body["field"] != tt.field {
				t.Errorf("status %d field %v, want 422 naming %s: %v", resp.StatusCode, body["field"], tt.field, body["detail"])
			}
		})
	}
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM hosts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("hosts after bad input = %d, %v; want none", n, err)
	}
}
