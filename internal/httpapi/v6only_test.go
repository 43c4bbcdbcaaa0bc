package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// v6OnlyInventory is dualInventory plus rack6, an IPv6-only segment (hosts6 and pool6, no
// hosts or pool) of pool only6 whose firewall hop has a plain IPv6 next hop.
func v6OnlyInventory() *fabric.Inventory {
	inv := dualInventory()
	inv.Pools = append(inv.Pools, fabric.Pool{Name: "only6", Prefix: netip.MustParsePrefix("2001:db8:b00::/48"), SubnetLength: 64})
	inv.Segments = append(inv.Segments, fabric.Segment{Name: "rack6", Hosts6: netip.MustParsePrefix("2001:db8:60::/64"), Pool6: "only6",
		RouteVia: []fabric.Hop{
			{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
			{Device: "fw1", NextHop: fabric.NextHop{Addr: netip.MustParseAddr("2001:db8:20::1")}},
		}})
	return inv
}

// TestV6OnlyHostOverHTTP registers a host of an IPv6-only segment with address6 alone: 201
// with only the IPv6 family and a docker answer without bip; then reads, lists, renews,
// lists stale hosts and deregisters it. e.do checks every answer against api/openapi.yaml.
func TestV6OnlyHostOverHTTP(t *testing.T) {
	e, now := leaseEnvFor(t, v6OnlyInventory())
	advance := func(d time.Duration) { n := now.Load().Add(d); now.Store(&n) }
	resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"s1","address6":"2001:db8:60::101"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/hosts = %d %v", resp.StatusCode, body)
	}
	want := map[string]string{"segment": "rack6", "address6": "2001:db8:60::101", "subnet6": "2001:db8:b00::/64", "pool6": "only6",
		"gateway": "2001:db8:b00::1"}
	for k, v := range want {
		if fmt.Sprint(body[k]) != v {
			t.Errorf("%s = %v, want %s", k, body[k], v)
		}
	}
	for _, k := range []string{"address", "subnet"} {
		if _, has := body[k]; has {
			t.Errorf("%s = %v, want none for a host of an IPv6-only segment", k, body[k])
		}
	}
	docker, _ := body["docker"].(map[string]any)
	if _, has := docker["bip"]; has || docker["ipv6"] != true || docker["fixed-cidr-v6"] != "2001:db8:b00::/64" || docker["ip-masq"] != false {
		t.Errorf("docker = %v, want no bip, ipv6 true, fixed-cidr-v6 2001:db8:b00::/64, ip-masq false", docker)
	}
	// The same registration again: 200, same allocation.
	if resp, body := e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"s1","address6":"2001:db8:60::101"}`); resp.StatusCode != http.StatusOK || body["subnet6"] != "2001:db8:b00::/64" {
		t.Errorf("POST again = %d %v, want 200 with the same subnet6", resp.StatusCode, body)
	}
	// An IPv4 and a dual-stack host beside it.
	e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"v4","address":"10.10.30.4"}`)
	e.do(t, "POST", "/v1/hosts", fabric.RoleBootstrap, `{"name":"d1","address":"10.10.10.5","address6":"2001:db8:10::5"}`)

	resp, body = e.do(t, "GET", "/v1/hosts/s1", fabric.RoleViewer, "")
	change, _ := body["change"].(map[string]any)
	if resp.StatusCode != http.StatusOK || body["subnet6"] != "2001:db8:b00::/64" || change == nil {
		t.Fatalf("GET s1 = %d %v", resp.StatusCode, body)
	}
	resp, ch := e.do(t, "GET", fmt.Sprintf("/v1/changes/%v", change["id"]), fabric.RoleViewer, "")
	host, _ := ch["host"].(map[string]any)
	ops, _ := ch["ops"].([]any)
	if resp.StatusCode != http.StatusOK || host["subnet6"] != "2001:db8:b00::/64" || host["address"] != nil || len(ops) != 2 {
		t.Errorf("GET change = %d host %v, %d ops; want s1's IPv6 subnet and 2 ops (sw1, fw1)", resp.StatusCode, host, len(ops))
	}
	for _, o := range ops {
		if op := o.(map[string]any); op["prefix"] != "2001:db8:b00::/64" {
			t.Errorf("op %v, want only routes of 2001:db8:b00::/64", op)
		}
	}
	resp, body = e.do(t, "GET", "/v1/hosts?segment=rack6", fabric.RoleViewer, "")
	if items, _ := body["items"].([]any); resp.StatusCode != http.StatusOK || len(items) != 1 {
		t.Errorf("GET /v1/hosts?segment=rack6 = %d %v, want s1 alone", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/v1/hosts", fabric.RoleViewer, "")
	if items, _ := body["items"].([]any); resp.StatusCode != http.StatusOK || len(items) != 3 {
		t.Errorf("GET /v1/hosts = %d %v, want three hosts", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/v1/pools", fabric.RoleViewer, "")
	allocated := map[string]any{}
	items, _ := body["items"].([]any)
	for _, it := range items {
		p := it.(map[string]any)
		allocated[fmt.Sprint(p["name"])] = p["allocated"]
	}
	if resp.StatusCode != http.StatusOK || fmt.Sprint(allocated) != "map[docker:2 docker6:1 only6:1]" {
		t.Errorf("GET /v1/pools = %d, allocated %v; want docker 2, docker6 1, only6 1", resp.StatusCode, allocated)
	}

	// The pool gauges count the IPv6-only host in its pool6 alone.
	mresp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, line := range []string{`returnpath_pool_allocated_subnets{pool="only6"} 1`, `returnpath_pool_allocated_subnets{pool="docker"} 2`} {
		if !strings.Contains(string(metrics), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	advance(71 * time.Minute)
	resp, body = e.do(t, "POST", "/v1/hosts/s1/renew", fabric.RoleBootstrap, "")
	if resp.StatusCode != http.StatusOK || body["subnet6"] != "2001:db8:b00::/64" {
		t.Fatalf("POST /v1/hosts/s1/renew = %d %v", resp.StatusCode, body)
	}
	resp, body = e.do(t, "GET", "/v1/hosts?stale=true", fabric.RoleViewer, "")
	if items, _ := body["items"].([]any); resp.StatusCode != http.StatusOK || len(items) != 2 {
		t.Errorf("GET ?stale=true = %d %v, want v4 and d1, not the renewed s1", resp.StatusCode, body)
	}
	advance(71 * time.Minute)
	resp, body = e.do(t, "GET", "/v1/hosts?stale=true&segment=rack6", fabric.RoleViewer, "")
	if items, _ := body["items"].([]any); resp.StatusCode != http.StatusOK || len(items) != 1 {
		t.Errorf("GET ?stale=true&segment=rack6 = %d %v, want s1", resp.StatusCode, body)
	}
	// Its add was never approved: deregistering releases its subnet at once.
	resp, body = e.do(t, "DELETE", "/v1/hosts/s1", fabric.RoleBootstrap, "")
	if resp.StatusCode/100 != 2 || body["state"] != "removed" {
		t.Fatalf("DELETE s1 = %d %v, want it removed at once", resp.StatusCode, body)
	}
	var free int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM free_subnets WHERE pool = 'only6' AND subnet = '2001:db8:b00::/64'`).Scan(&free); err != nil || free != 1 {
		t.Errorf("only6's free list holds s1's subnet %d times (%v), want once", free, err)
	}
}

// TestBadV6OnlyInput: each bad registration the IPv6-only segments bring is a 422 naming the
// field, with nothing written.
func TestBadV6OnlyInput(t *testing.T) {
	t.Parallel()
	e := newEnvFor(t, v6OnlyInventory())
	tests := []struct {
		name, body, field string
	}{
		{name: "IPv4 address for a v6-only segment", body: `{"name":"a","address":"10.60.0.1","address6":"2001:db8:60::1"}`, field: "address"},
		{name: "address6 alone for a dual-stack segment", body: `{"name":"a","address6":"2001:db8:10::1"}`, field: "address"},
		{name: "no address at all", body: `{"name":"a"}`, field: "address"},
		{name: "empty address, no address6", body: `{"name":"a","address":""}`, field: "address"},
		{name: "address6 in no segment", body: `{"name":"a","address6":"2001:db8:99::1"}`, field: "address6"},
		{name: "subnet without address", body: `{"name":"a","address6":"2001:db8:60::1","subnet":"10.210.9.0/24"}`, field: "subnet"},
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
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM hosts) + (SELECT count(*) FROM changes)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows after bad input = %d, %v; want none", n, err)
	}
}

// TestAdoptRefusesAnIPv6OnlySegment: adopt matches IPv4 routes only, so it refuses an
// IPv6-only segment naming it, before any device is read, and registers nothing.
func TestAdoptRefusesAnIPv6OnlySegment(t *testing.T) {
	t.Parallel()
	e := newAdoptEnvFor(t, v6OnlyInventory())
	for _, body := range []string{`{"dry_run":true}`, `{"from_devices":true}`} {
		resp, out := e.do(t, "POST", "/v1/segments/rack6/adopt", fabric.RoleReviewer, body)
		if resp.StatusCode != http.StatusUnprocessableEntity || out["field"] != "name" {
			t.Errorf("adopt rack6 %s = %d %v, want 422 naming name", body, resp.StatusCode, out)
		}
	}
	if n := hostCount(t, e); n != 0 {
		t.Errorf("%d hosts registered, want 0", n)
	}
}
