package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
	"github.com/returnpath/returnpath/internal/session"
	"github.com/returnpath/returnpath/internal/verify"
)

// newAdoptEnv serves the API on real Postgres with the change workflow (four eyes) and a
// verifier over in-memory devices: what POST /v1/segments/{name}/adopt needs.
func newAdoptEnv(t *testing.T) *verifyEnv {
	t.Helper()
	return newAdoptEnvFor(t, inventory())
}

// newAdoptEnvFor is newAdoptEnv serving inventory inv.
func newAdoptEnvFor(t *testing.T, inv *fabric.Inventory) *verifyEnv {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Open(t)
	if err := db.SyncInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	preview := func(_ string, ops []fabric.RouteOp) ([]string, error) { return []string{ops[0].String()}, nil }
	changes := postgres.NewChanges(db, inv, preview, fabric.ApprovalPolicy{FourEyes: true})
	hosts := postgres.NewHosts(db, inv)
	hosts.SetChanges(changes)
	srv := httpapi.New(httpapi.Config{MaxBodyBytes: 4096}, inv, hosts, db, slog.New(slog.DiscardHandler))
	srv.SetChanges(changes)
	e := &verifyEnv{fakes: map[string]*drivertest.Fake{}}
	cfgs := map[string]drivers.Config{}
	var all []*drivertest.Fake
	for _, d := range inv.Devices {
		f := drivertest.NewFake(d.Name)
		e.fakes[d.Name] = f
		all = append(all, f)
		cfgs[d.Name] = drivers.Config{Name: d.Name, Platform: d.Platform, Address: d.Address, VRF: d.VRF, Managed: inv.ManagedPrefixes()}
	}
	fac := drivertest.FakeFactory(all...)
	srv.SetVerifier(&verify.Verifier{Inv: inv, Hosts: hosts, Devices: &session.Devices{Configs: cfgs,
		Factories: map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac, fabric.PlatformLinux: fac}}})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e.env = &env{url: ts.URL, db: db, tokens: map[fabric.Role]string{}, changes: changes}
	for _, role := range []fabric.Role{fabric.RoleViewer, fabric.RoleBootstrap, fabric.RoleReviewer, fabric.RoleAdmin} {
		secret, err := db.CreateToken(ctx, "test", fabric.Token{Name: string(role) + "-token", Role: role, Owner: string(role)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = secret
	}
	return e
}

// plantFleet gives the devices two hosts with complete paths, one whose firewall route is
// missing, and an orphan whose next hop is outside the segment.
func plantFleet(e *verifyEnv) {
	for _, h := range []struct{ subnet, addr string }{{"10.210.1.0/24", "10.10.10.101"}, {"10.210.2.0/24", "10.10.10.102"}, {"10.210.3.0/24", "10.10.10.103"}} {
		e.fakes["sw1"].Plant(rt(h.subnet, h.addr))
		if h.addr != "10.10.10.103" {
			e.fakes["fw1"].Plant(rt(h.subnet, "10.10.20.1"))
		}
	}
	e.fakes["sw1"].Plant(rt("10.210.9.0/24", "10.99.0.1"))
}

// subnets indexes an adopt answer's subnets by subnet.
func subnets(t *testing.T, body map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, s := range body["subnets"].([]any) {
		sm := s.(map[string]any)
		out[sm["subnet"].(string)] = sm
	}
	return out
}

func hostCount(t *testing.T, e *verifyEnv) int {
	t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM hosts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAdoptListsWithoutRegistering(t *testing.T) {
	t.Parallel()
	e := newAdoptEnv(t)
	plantFleet(e)
	for _, body := range []string{`{}`, `{"dry_run":true,"from_devices":true}`} {
		resp, out := e.do(t, "POST", "/v1/segments/rack1/adopt", fabric.RoleReviewer, body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("adopt %s = %d %v", body, resp.StatusCode, out)
		}
		if out["dry_run"] != true {
			t.Errorf("adopt %s: dry_run = %v, want true", body, out["dry_run"])
		}
		subs := subnets(t, out)
		if len(subs) != 3 {
			t.Fatalf("adopt %s: subnets %v, want 3", body, out["subnets"])
		}
		wantAction := "found"
		if strings.Contains(body, "from_devices") {
			wantAction = "would_register"
		}
		for _, s := range subs {
			if s["action"] != wantAction {
				t.Errorf("adopt %s: %s action %v, want %s", body, s["subnet"], s["action"], wantAction)
			}
		}
		if s := subs["10.210.3.0/24"]; s["complete"] != false || len(s["missing"].([]any)) != 1 || s["missing"].([]any)[0] != "fw1" {
			t.Errorf("adopt %s: 10.210.3.0/24 = %v, want incomplete, missing fw1", body, s)
		}
		if s := subs["10.210.1.0/24"]; s["complete"] != true || s["address"] != "10.10.10.101" {
			t.Errorf("adopt %s: 10.210.1.0/24 = %v, want complete via 10.10.10.101", body, s)
		}
		orphans := out["orphans"].([]any)
		if len(orphans) != 1 || orphans[0].(map[string]any)["prefix"] != "10.210.9.0/24" {
			t.Errorf("adopt %s: orphans = %v, want 10.210.9.0/24", body, orphans)
		}
	}
	if n := hostCount(t, e); n != 0 {
		t.Errorf("%d hosts registered by listings and dry runs, want 0", n)
	}
}

func TestAdoptFromDevicesRegisters(t *testing.T) {
	t.Parallel()
	e := newAdoptEnv(t)
	plantFleet(e)
	resp, out := e.do(t, "POST", "/v1/segments/rack1/adopt", fabric.RoleReviewer, `{"from_devices":true}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("adopt = %d %v", resp.StatusCode, out)
	}
	if out["dry_run"] != false {
		t.Errorf("dry_run = %v, want false", out["dry_run"])
	}
	for subnet, s := range subnets(t, out) {
		if s["action"] != "registered" || s["state"] != "pending" || s["change"] == nil {
			t.Errorf("%s = %v, want registered, pending, with its change", subnet, s)
		}
		name := "host-" + strings.ReplaceAll(s["address"].(string), ".", "-")
		if s["host"] != name {
			t.Errorf("%s host = %v, want %s", subnet, s["host"], name)
		}
		resp, h := e.do(t, "GET", "/v1/hosts/"+name, fabric.RoleViewer, "")
		if resp.StatusCode != http.StatusOK || h["subnet"] != subnet || h["address"] != s["address"] {
			t.Errorf("GET host %s = %d %v, want subnet %s", name, resp.StatusCode, h, subnet)
		}
	}
	if n := hostCount(t, e); n != 3 {
		t.Errorf("%d hosts, want 3 (the orphan is never registered)", n)
	}
	// Adopting again finds them registered and registers nothing more.
	_, again := e.do(t, "POST", "/v1/segments/rack1/adopt", fabric.RoleReviewer, `{"from_devices":true}`)
	for subnet, s := range subnets(t, again) {
		if s["action"] != "already_registered" {
			t.Errorf("again: %s action %v, want already_registered", subnet, s["action"])
		}
	}
	if n := hostCount(t, e); n != 3 {
		t.Errorf("%d hosts after adopting again, want 3", n)
	}
}

func TestAdoptHostList(t *testing.T) {
	t.Parallel()
	e := newAdoptEnv(t)
	plantFleet(e)
	body := `{"hosts":[{"name":"web1","address":"10.10.10.101"},{"name":"gone","address":"10.10.10.150"}]}`
	resp, out := e.do(t, "POST", "/v1/segments/rack1/adopt", fabric.RoleAdmin, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("adopt = %d %v", resp.StatusCode, out)
	}
	subs := subnets(t, out)
	if s := subs["10.210.1.0/24"]; s["action"] != "registered" || s["host"] != "web1" {
		t.Errorf("10.210.1.0/24 = %v, want registered as web1", s)
	}
	if s := subs["10.210.2.0/24"]; s["action"] != "not_listed" || s["host"] != nil {
		t.Errorf("10.210.2.0/24 = %v, want not_listed", s)
	}
	un := out["unmatched"].([]any)
	if len(un) != 1 || un[0].(map[string]any)["name"] != "gone" {
		t.Errorf("unmatched = %v, want gone", un)
	}
	if n := hostCount(t, e); n != 1 {
		t.Errorf("%d hosts, want 1", n)
	}
}

func TestAdoptRefusesToRegisterWhenADeviceIsUnread(t *testing.T) {
	t.Parallel()
	e := newAdoptEnv(t)
	plantFleet(e)
	e.fakes["fw1"].Set(drivertest.WithUnreachable(true))
	resp, out := e.do(t, "POST", "/v1/segments/rack1/adopt", fabric.RoleReviewer, `{"from_devices":true}`)
	if resp.StatusCode != http.StatusServiceUnavailable || out["code"] != fabric.EUNAVAILABLE || !strings.Contains(out["detail"].(string), "fw1") {
		t.Errorf("adopt with fw1 unreachable = %d %v, want 503 naming fw1", resp.StatusCode, out)
	}
	if n := hostCount(t, e); n != 0 {
		t.Errorf("%d hosts registered, want 0", n)
	}
	resp, out = e.do(t, "POST", "/v1/segments/rack1/adopt", fabric.RoleReviewer, `{"dry_run":true,"from_devices":true}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dry run = %d %v", resp.StatusCode, out)
	}
	for _, d := range out["devices"].([]any) {
		dm := d.(map[string]any)
		if want := map[string]string{"sw1": "ok", "fw1": "unreachable"}[dm["device"].(string)]; dm["status"] != want {
			t.Errorf("device %v status %v, want %s", dm["device"], dm["status"], want)
		}
	}
}

func TestAdoptBadInput(t *testing.T) {
	t.Parallel()
	e := newAdoptEnv(t)
	plantFleet(e)
	tests := []struct {
		name       string
		path       string
		role       fabric.Role
		body       string
		wantStatus int
		wantField  string
	}{
		{name: "unknown segment", path: "/v1/segments/rack9/adopt", role: fabric.RoleReviewer, body: `{}`, wantStatus: http.StatusNotFound, wantField: "name"},
		{name: "address outside the segment", role: fabric.RoleReviewer, wantStatus: http.StatusUnprocessableEntity, wantField: "hosts[1].address",
			body: `{"hosts":[{"name":"a","address":"10.10.10.101"},{"name":"b","address":"10.10.99.1"}]}`},
		{name: "not an address", role: fabric.RoleReviewer, wantStatus: http.StatusUnprocessableEntity, wantField: "hosts[0].address",
			body: `{"hosts":[{"name":"a","address":"10.10.10.300"}]}`},
		{name: "duplicate address", role: fabric.RoleReviewer, wantStatus: http.StatusUnprocessableEntity, wantField: "hosts[2].address",
			body: `{"hosts":[{"name":"a","address":"10.10.10.101"},{"name":"b","address":"10.10.10.102"},{"name":"c","address":"10.10.10.101"}]}`},
		{name: "duplicate name", role: fabric.RoleReviewer, wantStatus: http.StatusUnprocessableEntity, wantField: "hosts[1].name",
			body: `{"hosts":[{"name":"a","address":"10.10.10.101"},{"name":"A","address":"10.10.10.102"}]}`},
		{name: "bad name", role: fabric.RoleReviewer, wantStatus: http.StatusUnprocessableEntity, wantField: "hosts[0].name",
			body: `{"hosts":[{"name":"a b","address":"10.10.10.101"}]}`},
		{name: "missing name", role: fabric.RoleReviewer, wantStatus: http.StatusUnprocessableEntity, wantField: "hosts[0].name",
			body: `{"hosts":[{"address":"10.10.10.101"}]}`},
		{name: "empty list", role: fabric.RoleReviewer, wantStatus: http.StatusUnprocessableEntity, wantField: "hosts", body: `{"hosts":[]}`},
		{name: "hosts and from_devices", role: fabric.RoleReviewer, wantStatus: http.StatusUnprocessableEntity, wantField: "from_devices",
			body: `{"from_devices":true,"hosts":[{"name":"a","address":"10.10.10.101"}]}`},
		{name: "unknown field", role: fabric.RoleReviewer, wantStatus: http.StatusBadRequest, wantField: "force", body: `{"force":true}`},
		{name: "wrong type", role: fabric.RoleReviewer, wantStatus: http.StatusBadRequest, wantField: "dry_run", body: `{"dry_run":"yes"}`},
		{name: "bootstrap token", role: fabric.RoleBootstrap, wantStatus: http.StatusForbidden, body: `{}`},
		{name: "viewer token", role: fabric.RoleViewer, wantStatus: http.StatusForbidden, body: `{}`},
		{name: "no token", wantStatus: http.StatusUnauthorized, body: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/segments/rack1/adopt"
			}
			resp, out := e.do(t, "POST", path, tt.role, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %v, want %d", resp.StatusCode, out, tt.wantStatus)
			}
			if tt.wantField != "" && out["field"] != tt.wantField {
				t.Errorf("field %v (%v), want %s", out["field"], out["detail"], tt.wantField)
			}
		})
	}
	if n := hostCount(t, e); n != 0 {
		t.Errorf("%d hosts registered by bad requests, want 0", n)
	}
}
