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

// probeInventory is inventory() with a second segment, for a bootstrap token scoped to it.
func probeInventory() *fabric.Inventory {
	inv := inventory()
	inv.Segments = append(inv.Segments, fabric.Segment{Name: "rack2", Hosts: netip.MustParsePrefix("10.10.30.0/24"), Pool: "docker",
		RouteVia: []fabric.Hop{{Device: "sw1", NextHop: fabric.NextHop{Host: true}}},
		Probes:   fabric.ProbeSettings{Targets: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:0"), netip.MustParseAddrPort("198.51.100.2:443")}, MaxAge: 5 * time.Minute}})
	return inv
}

// probeBody is a report of a probe from source to 198.51.100.1; result ok carries an RTT.
func probeBody(target, source, result string) string {
	received, rtt := 0, "null"
	if result == "ok" {
		received, rtt = 3, "1.25"
	}
	return fmt.Sprintf(`{"target":%q,"source":%q,"result":%q,"sent":3,"received":%d,"rtt_ms":%s,"at":"2026-01-02T03:04:05Z"}`,
		target, source, result, received, rtt)
}

func (e *verifyEnv) probeCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM host_probes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRecordProbe: a host's bootstrap token records a probe, which shows as the host's
// last_probe; bad reports are 4xx naming the field at fault and record nothing.
func TestRecordProbe(t *testing.T) {
	t.Parallel()
	inv := probeInventory()
	e := newVerifyEnvFor(t, inv, true)
	scoped, err := e.db.CreateToken(context.Background(), "test", fabric.Token{Name: "rack2-boot", Role: fabric.RoleBootstrap, Segments: []string{"rack2"}}, inv)
	if err != nil {
		t.Fatal(err)
	}
	e.tokens["rack2"] = scoped
	sub1 := netip.MustParsePrefix(e.register(t, "docker-01", "10.10.10.101", true))
	sub2 := netip.MustParsePrefix(e.register(t, "docker-02", "10.10.10.102", false))
	gw1, gw2 := sub1.Addr().Next().String(), sub2.Addr().Next().String()

	bad := []struct {
		name      string
		host      string
		role      fabric.Role
		body      string
		wantCode  int
		wantField string
	}{
		{name: "target inside a pool", host: "docker-01", role: fabric.RoleBootstrap, body: probeBody("10.210.99.1", gw1, "ok"), wantCode: 422, wantField: "target"},
		{name: "target inside a segment", host: "docker-01", role: fabric.RoleBootstrap, body: probeBody("10.10.10.1", gw1, "ok"), wantCode: 422, wantField: "target"},
		{name: "target that does not parse", host: "docker-01", role: fabric.RoleBootstrap, body: probeBody("example.com", gw1, "ok"), wantCode: 422, wantField: "target"},
		{name: "probing for another host's name", host: "docker-01", role: fabric.RoleBootstrap, body: probeBody("198.51.100.1", gw2, "ok"), wantCode: 422, wantField: "source"},
		{name: "result against the counts", host: "docker-01", role: fabric.RoleBootstrap,
			body: strings.Replace(probeBody("198.51.100.1", gw1, "ok"), `"received":3`, `"received":0`, 1), wantCode: 422, wantField: "result"},
		{name: "bootstrap token of another segment", host: "docker-01", role: "rack2", body: probeBody("198.51.100.1", gw1, "ok"), wantCode: 403},
		{name: "viewer token", host: "docker-01", role: fabric.RoleViewer, body: probeBody("198.51.100.1", gw1, "ok"), wantCode: 403},
		{name: "no token", host: "docker-01", body: probeBody("198.51.100.1", gw1, "ok"), wantCode: 401},
		{name: "unknown host", host: "docker-99", role: fabric.RoleBootstrap, body: probeBody("198.51.100.1", gw1, "ok"), wantCode: 404},
		{name: "unknown field", host: "docker-01", role: fabric.RoleBootstrap, body: `{"target":"198.51.100.1","colour":"red"}`, wantCode: 400, wantField: "colour"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, "POST", "/v1/hosts/"+tt.host+"/probes", tt.role, tt.body)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("POST = %d %v, want %d", resp.StatusCode, body, tt.wantCode)
			}
			if tt.wantField != "" && body["field"] != tt.wantField {
				t.Errorf("field = %v, want %s (%v)", body["field"], tt.wantField, body)
			}
		})
	}
	if n := e.probeCount(t); n != 0 {
		t.Fatalf("%d probes recorded after refused reports, want none", n)
	}

	resp, body := e.do(t, "POST", "/v1/hosts/docker-01/probes", fabric.RoleBootstrap, probeBody("198.51.100.1", gw1, "ok"))
	if resp.StatusCode != http.StatusCreated || body["result"] != "ok" || body["rtt_ms"] != 1.25 || body["method"] != "icmp" || body["recorded_by"] != "bootstrap-token" {
		t.Fatalf("POST probe = %d %v, want 201 ok with rtt 1.25", resp.StatusCode, body)
	}
	// The pending host probes too: before approval its probe fails, and that is recorded.
	resp, body = e.do(t, "POST", "/v1/hosts/docker-02/probes", fabric.RoleBootstrap, probeBody("198.51.100.1:443", gw2, "failed"))
	if resp.StatusCode != http.StatusCreated || body["rtt_ms"] != nil || body["method"] != "tcp" || body["target"] != "198.51.100.1:443" {
		t.Fatalf("POST failed probe = %d %v, want 201 with no rtt", resp.StatusCode, body)
	}
	_, host := e.do(t, "GET", "/v1/hosts/docker-01", fabric.RoleViewer, "")
	lp, _ := host["last_probe"].(map[string]any)
	if lp["result"] != "ok" || lp["source"] != gw1 || lp["target"] != "198.51.100.1" {
		t.Errorf("docker-01's last_probe = %v", host["last_probe"])
	}
	_, segs := e.do(t, "GET", "/v1/segments", fabric.RoleBootstrap, "")
	got := map[string]string{}
	for _, it := range segs["items"].([]any) {
		sg := it.(map[string]any)
		got[sg["name"].(string)] = fmt.Sprint(sg["probes"])
	}
	if want := "map[max_age_s:300 targets:[198.51.100.1 198.51.100.2:443]]"; got["rack2"] != want || got["rack1"] != "map[max_age_s:900 targets:[]]" {
		t.Errorf("segments' probes = %v, want rack2 %s and rack1 the defaults", got, want)
	}
	_, list := e.do(t, "GET", "/v1/hosts", fabric.RoleViewer, "")
	for _, it := range list["items"].([]any) {
		h := it.(map[string]any)
		if lp, _ := h["last_probe"].(map[string]any); lp == nil {
			t.Errorf("%s listed without its last_probe", h["name"])
		}
	}
}

// TestVerifyProbes: with probes=true, an active host whose last probe failed, is older than
// probes.max_age or never came fails the verification though its routes are in place; the
// metrics count probes by result and the hosts failing.
func TestVerifyProbes(t *testing.T) {
	t.Parallel()
	e := newVerifyEnv(t, true)
	sub := netip.MustParsePrefix(e.register(t, "docker-01", "10.10.10.101", true))
	e.fakes["sw1"].Plant(rt(sub.String(), "10.10.10.101"))
	e.fakes["fw1"].Plant(rt(sub.String(), "10.10.20.1"))
	gw := sub.Addr().Next().String()
	verdict := func(t *testing.T) (inSync any, status any) {
		t.Helper()
		resp, body := e.do(t, "GET", "/v1/verify?probes=true", fabric.RoleViewer, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/verify?probes=true = %d %v", resp.StatusCode, body)
		}
		hosts, _ := body["hosts"].([]any)
		if len(hosts) != 1 {
			t.Fatalf("hosts = %v, want docker-01 alone", body["hosts"])
		}
		return body["in_sync"], hosts[0].(map[string]any)["status"]
	}
	if in, st := verdict(t); in != false || st != "none" {
		t.Errorf("never probed: in_sync %v status %v, want false none", in, st)
	}
	now := strings.Replace(probeBody("198.51.100.1", gw, "ok"), "2026-01-02T03:04:05Z", nowRFC3339(), 1)
	if resp, body := e.do(t, "POST", "/v1/hosts/docker-01/probes", fabric.RoleBootstrap, now); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST probe = %d %v", resp.StatusCode, body)
	}
	if in, st := verdict(t); in != true || st != "ok" {
		t.Errorf("fresh ok probe: in_sync %v status %v, want true ok", in, st)
	}
	// Without probes=true the data plane is not judged.
	if _, body := e.do(t, "GET", "/v1/verify", fabric.RoleViewer, ""); body["hosts"] != nil {
		t.Errorf("hosts without probes=true: %v", body["hosts"])
	}
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE host_probes SET probed_at = now() - interval '16 minutes'`); err != nil {
		t.Fatal(err)
	}
	if in, st := verdict(t); in != false || st != "stale" {
		t.Errorf("16-minute-old probe: in_sync %v status %v, want false stale", in, st)
	}
	failed := strings.Replace(probeBody("198.51.100.1", gw, "failed"), "2026-01-02T03:04:05Z", nowRFC3339(), 1)
	if resp, body := e.do(t, "POST", "/v1/hosts/docker-01/probes", fabric.RoleBootstrap, failed); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST probe = %d %v", resp.StatusCode, body)
	}
	if in, st := verdict(t); in != false || st != "failed" {
		t.Errorf("failed probe: in_sync %v status %v, want false failed", in, st)
	}
	if resp, body := e.do(t, "GET", "/v1/verify?probes=maybe", fabric.RoleViewer, ""); resp.StatusCode != 422 || body["field"] != "probes" {
		t.Errorf("probes=maybe = %d %v, want 422 naming probes", resp.StatusCode, body)
	}

	mresp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	b, _ := io.ReadAll(mresp.Body)
	for _, want := range []string{`returnpath_probes_total{result="ok"} 1`, `returnpath_probes_total{result="failed"} 1`, "returnpath_hosts_probe_failing 1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func nowRFC3339() string { return time.Now().UTC().Format(time.RFC3339) }
