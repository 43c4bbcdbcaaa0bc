package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi/apitest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// withFW2 puts a firewall fw2 outside fw1 on rack1's return path: the segment's hosts need
// one more route each, on fw2 alone.
func withFW2(cfg string) string {
	cfg = strings.Replace(cfg, "        next_hop: 10.10.20.1\ndevices:\n",
		"        next_hop: 10.10.20.1\n      - device: fw2\n        next_hop: 10.10.30.1\ndevices:\n", 1)
	return strings.Replace(cfg, "approval:\n", `  - name: fw2
    platform: linux
    address: 198.18.0.13
    username: netops
    password_env: RETURNPATH_TEST_SW1_PASSWORD
    known_hosts: /dev/null
approval:
`, 1)
}

// withoutFW1Hop takes fw1 off rack1's return path; the device stays configured.
func withoutFW1Hop(cfg string) string {
	return strings.Replace(cfg, "      - device: fw1\n        next_hop: 10.10.20.1\n", "", 1)
}

// reloadable is a Main started as serve starts it, with in-memory devices, reading its
// configuration from a file the test rewrites.
type reloadable struct {
	*Main
	path  string
	logs  *syncBuffer
	fakes map[string]*drivertest.Fake
}

func startReloadable(t *testing.T, path string) *reloadable {
	t.Helper()
	cfg, err := loadConfig(path, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	r := &reloadable{path: path, logs: &syncBuffer{}, fakes: map[string]*drivertest.Fake{}}
	var all []*drivertest.Fake
	for _, name := range []string{"sw1", "fw1", "fw2"} {
		r.fakes[name] = drivertest.NewFake(name)
		all = append(all, r.fakes[name])
	}
	fac := drivertest.FakeFactory(all...)
	r.Main = &Main{Config: cfg, Log: slog.New(slog.NewJSONHandler(r.logs, nil)), Migrate: true,
		Reread:    func() (*Config, error) { return loadConfig(path, nil, true) },
		Factories: map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac, fabric.PlatformLinux: fac}}
	ctx := context.Background()
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// reloadSetup writes testConfig for a fresh database and starts a reloadable Main on it.
func reloadSetup(t *testing.T) (*reloadable, string) {
	t.Helper()
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	cfg := strings.ReplaceAll(testConfig, "%DB%", pgtest.URL(t))
	return startReloadable(t, writeConfig(t, cfg)), cfg
}

func (r *reloadable) rewrite(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(r.path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// insertHosts records n hosts h<first>.. in rack1 in the given state, as registrations that
// went through would have left them (10.10.10.<100+i>, 10.210.<i>.0/24).
func insertHosts(t *testing.T, db execer, first, n int, state fabric.HostState) {
	t.Helper()
	_, err := db.Exec(context.Background(), `
		INSERT INTO hosts (name, address, segment, pool, subnet, state, created_by, created_at, updated_at)
		SELECT 'h' || i, ('10.10.10.' || (100 + i))::inet, 'rack1', 'docker', ('10.210.' || i || '.0/24')::cidr, $3, 'test', now(), now()
		FROM generate_series($1::int, $2::int) i`, first, first+n-1, string(state))
	if err != nil {
		t.Fatal(err)
	}
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// storedPath is rack1's return path as the database holds it.
func storedPath(t *testing.T, m *Main) string {
	t.Helper()
	var via string
	if err := m.DB.Pool.QueryRow(context.Background(), `SELECT route_via::text FROM segments WHERE name = 'rack1'`).Scan(&via); err != nil {
		t.Fatal(err)
	}
	return via
}

func changeCount(t *testing.T, m *Main) int {
	t.Helper()
	var n int
	if err := m.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM changes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitChangeFinal(t *testing.T, m *Main, id int64) fabric.Change {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := m.Changes.Change(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status.Final() || time.Now().After(deadline) {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadReroutesANewFirewall: fw2 joins rack1's path while 50 hosts are active (and
// others pending and removed). One reload files one reroute change with exactly 50 adds, all
// on fw2; it goes through review and the apply engine like any change, and only fw2 is
// touched. Reloading the same file again files nothing.
func TestReloadReroutesANewFirewall(t *testing.T) {
	r, cfg := reloadSetup(t)
	ctx := context.Background()
	insertHosts(t, r.DB.Pool, 1, 50, fabric.HostActive)
	insertHosts(t, r.DB.Pool, 51, 2, fabric.HostPending)
	insertHosts(t, r.DB.Pool, 53, 1, fabric.HostRemoved)
	r.rewrite(t, withFW2(cfg))

	res, err := r.Reload(ctx, reloadActor)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Reroutes) != 1 || len(res.Changed) != 1 || res.Changed[0] != "rack1" {
		t.Fatalf("reload = changed %v, %d reroutes; want rack1 and one reroute", res.Changed, len(res.Reroutes))
	}
	ch := res.Reroutes[0]
	if ch.Kind != fabric.ChangeReroute || ch.Segment != "rack1" || ch.Status != fabric.ChangePending || ch.Host != nil || ch.RequestedBy != fabric.ActorReload {
		t.Errorf("reroute = kind %s segment %q status %s host %v by %s", ch.Kind, ch.Segment, ch.Status, ch.Host, ch.RequestedBy)
	}
	subnets := map[netip.Prefix]bool{}
	for _, o := range ch.Ops {
		if o.Device != "fw2" || o.Op.Action != fabric.ActionAdd || o.Op.Route.NextHop != netip.MustParseAddr("10.10.30.1") || o.Stage != 0 {
			t.Errorf("op %+v, want an add on fw2 via 10.10.30.1 in stage 0", o)
		}
		subnets[o.Op.Route.Prefix] = true
	}
	if len(ch.Ops) != 50 || len(subnets) != 50 {
		t.Fatalf("%d ops for %d subnets, want 50 adds, one per active host", len(ch.Ops), len(subnets))
	}
	if _, ok := r.Devices.Lookup("fw2"); !ok {
		t.Error("the apply engine does not know fw2 after the reload")
	}
	if !strings.Contains(storedPath(t, r.Main), "fw2") {
		t.Errorf("stored path %s lacks fw2", storedPath(t, r.Main))
	}
	again, err := r.Reload(ctx, reloadActor)
	if err != nil || len(again.Reroutes) != 0 || len(again.Changed) != 0 {
		t.Errorf("second reload of the same file = %d reroutes, changed %v, %v; want nothing", len(again.Reroutes), again.Changed, err)
	}

	// The review flow: four eyes, the plan hash, the engine.
	if _, err := r.Changes.Approve(ctx, fabric.Actor{Name: "alice", Role: fabric.RoleReviewer}, ch.ID, "stale"); fabric.ErrorCode(err) != fabric.ECONFLICT {
		t.Errorf("approve with a wrong plan hash = %v, want a conflict", err)
	}
	if _, err := r.Changes.Approve(ctx, fabric.Actor{Name: "alice", Role: fabric.RoleReviewer}, ch.ID, ch.PlanHash); err != nil {
		t.Fatal(err)
	}
	if c := waitChangeFinal(t, r.Main, ch.ID); c.Status != fabric.ChangeApplied {
		t.Fatalf("reroute ended %s: %s", c.Status, c.Reason)
	}
	if got := len(r.fakes["fw2"].AllRoutes()); got != 50 {
		t.Errorf("fw2 holds %d routes, want 50", got)
	}
	for _, d := range []string{"sw1", "fw1"} {
		if ops := r.fakes[d].Applied(); len(ops) != 0 {
			t.Errorf("%s got %d ops, want none", d, len(ops))
		}
	}
}

// TestReloadRefusesABadFile: a file that does not validate, at any depth (syntax, unknown
// key, inventory, device credentials), changes nothing: no change filed, the stored and the
// running inventory stay, and the refusal is logged. Each bad file also adds fw2 to the path,
// so that a reload that skipped a check would file a reroute.
func TestReloadRefusesABadFile(t *testing.T) {
	r, cfg := reloadSetup(t)
	insertHosts(t, r.DB.Pool, 1, 5, fabric.HostActive)
	good := withFW2(cfg)
	tests := []struct {
		name, from, to string
		wantField      string
	}{
		{name: "yaml syntax", from: "pools:\n", to: "pools:\n  - [\n"},
		{name: "unknown key", from: "approval:\n", to: "colour: red\napproval:\n", wantField: "colour"},
		{name: "unknown device on the path", from: "      - device: fw2\n", to: "      - device: fw9\n", wantField: "segments[0].route_via[2].device"},
		{name: "bad next hop", from: "next_hop: 10.10.30.1", to: "next_hop: 10.10.30.300", wantField: "segments[0].route_via[2].next_hop"},
		{name: "missing device secret", from: "    address: 198.18.0.13\n    username: netops\n    password_env: RETURNPATH_TEST_SW1_PASSWORD",
			to: "    address: 198.18.0.13\n    username: netops\n    password_env: RETURNPATH_TEST_NOPE", wantField: "devices[2].password_env"},
		{name: "bad log level", from: "approval:\n", to: "log_level: loud\napproval:\n", wantField: "log_level"},
	}
	inv, path := r.Inventory, storedPath(t, r.Main)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.from) {
				t.Fatalf("config lacks %q", tt.from)
			}
			r.rewrite(t, strings.Replace(good, tt.from, tt.to, 1))
			_, err := r.Reload(context.Background(), reloadActor)
			var fe *fabric.Error
			if !errors.As(err, &fe) || fe.Code != fabric.EINVALID || fe.Field != tt.wantField {
				t.Errorf("Reload = %#v, want invalid naming %q", err, tt.wantField)
			}
			if n := changeCount(t, r.Main); n != 0 {
				t.Errorf("%d changes filed, want none", n)
			}
			if got := storedPath(t, r.Main); got != path {
				t.Errorf("stored path %s, want %s", got, path)
			}
			if r.Inventory != inv {
				t.Error("the running inventory was replaced")
			}
			if _, ok := r.Devices.Lookup("fw2"); ok {
				t.Error("the apply engine knows fw2")
			}
		})
	}
	if !strings.Contains(r.logs.String(), "reload refused") {
		t.Errorf("no refusal in the logs:\n%s", r.logs)
	}
	r.rewrite(t, good) // the same file, fixed, goes through
	if res, err := r.Reload(context.Background(), reloadActor); err != nil || len(res.Reroutes) != 1 {
		t.Errorf("reload of the fixed file = %v, %v", res, err)
	}
}

// TestReloadRemovingADeviceFilesDeletes: fw1 leaves rack1's path. The reroute deletes fw1's
// routes of the active hosts and of the host being removed (whose own change, replanned on
// the new path, would leave it), none of the pending host's. While it is pending, another
// change of rack1's path is refused; removing fw1 from devices while its routes remain is
// refused too.
func TestReloadRemovingADeviceFilesDeletes(t *testing.T) {
	r, cfg := reloadSetup(t)
	ctx := context.Background()
	insertHosts(t, r.DB.Pool, 1, 3, fabric.HostActive)
	insertHosts(t, r.DB.Pool, 4, 1, fabric.HostRemoving)
	insertHosts(t, r.DB.Pool, 5, 1, fabric.HostPending)

	noFW1 := strings.Replace(withoutFW1Hop(cfg), `  - name: fw1
    platform: linux
    address: 198.18.0.12:22
    username: netops
    password_env: RETURNPATH_TEST_SW1_PASSWORD
    known_hosts: /dev/null
`, "", 1)
	r.rewrite(t, noFW1)
	if _, err := r.Reload(ctx, reloadActor); fabric.ErrorCode(err) != fabric.ECONFLICT || !strings.Contains(err.Error(), "fw1") {
		t.Errorf("reload dropping fw1 with routes on it = %v, want a conflict naming fw1", err)
	}
	if n := changeCount(t, r.Main); n != 0 {
		t.Fatalf("%d changes filed by a refused reload", n)
	}

	r.rewrite(t, withoutFW1Hop(cfg))
	res, err := r.Reload(ctx, reloadActor)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Reroutes) != 1 {
		t.Fatalf("%d reroutes, want 1", len(res.Reroutes))
	}
	var got []string
	for _, o := range res.Reroutes[0].Ops {
		got = append(got, fmt.Sprintf("%s %s %s via %s", o.Op.Action, o.Device, o.Op.Route.Prefix, o.Op.Route.NextHop))
	}
	want := []string{
		"delete fw1 10.210.1.0/24 via 10.10.20.1",
		"delete fw1 10.210.2.0/24 via 10.10.20.1",
		"delete fw1 10.210.3.0/24 via 10.10.20.1",
		"delete fw1 10.210.4.0/24 via 10.10.20.1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r.rewrite(t, strings.Replace(withoutFW1Hop(cfg), "        next_hop: host\ndevices:\n",
		"        next_hop: host\n      - device: fw1\n        next_hop: 10.10.20.9\ndevices:\n", 1))
	if _, err := r.Reload(ctx, reloadActor); fabric.ErrorCode(err) != fabric.ECONFLICT {
		t.Errorf("reload changing rack1 again while its reroute is pending = %v, want a conflict", err)
	}
	if n := changeCount(t, r.Main); n != 1 {
		t.Errorf("%d changes, want the one reroute", n)
	}
}

// TestReloadTwoProcessesFileOnce: two serve processes on one database reload the same new
// file at the same time; the reroute is filed once, and both run the new inventory.
func TestReloadTwoProcessesFileOnce(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	cfg := strings.ReplaceAll(testConfig, "%DB%", pgtest.URL(t))
	path := writeConfig(t, cfg)
	a := startReloadable(t, path)
	b := startReloadable(t, path)
	insertHosts(t, a.DB.Pool, 1, 50, fabric.HostActive)
	a.rewrite(t, withFW2(cfg))

	var wg sync.WaitGroup
	results := make([]fabric.ReloadResult, 2)
	errs := make([]error, 2)
	for i, p := range []*reloadable{a, b} {
		wg.Go(func() { results[i], errs[i] = p.Reload(context.Background(), reloadActor) })
	}
	wg.Wait()
	filed := 0
	for i := range results {
		if errs[i] != nil {
			t.Errorf("process %d: %v", i, errs[i])
		}
		filed += len(results[i].Reroutes)
	}
	if filed != 1 || changeCount(t, a.Main) != 1 {
		t.Errorf("%d reroutes reported, %d changes stored; want one of each", filed, changeCount(t, a.Main))
	}
	for i, p := range []*reloadable{a, b} {
		if _, ok := p.Inventory.Device("fw2"); !ok {
			t.Errorf("process %d does not run the new inventory", i)
		}
	}
}

// TestReloadAPI: POST /v1/admin/reload is for admins; a bad file is a 422 problem naming the
// key; a good one answers what it filed and which keys need a restart. The admin who reloaded
// answers for the reroute: four eyes keep them from approving it.
func TestReloadAPI(t *testing.T) {
	r, cfg := reloadSetup(t)
	ctx := context.Background()
	insertHosts(t, r.DB.Pool, 1, 3, fabric.HostActive)
	token := func(name string, role fabric.Role) string {
		s, err := r.DB.CreateToken(ctx, "test", fabric.Token{Name: name, Role: role, Owner: name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	admin, reviewer := token("root", fabric.RoleAdmin), token("alice", fabric.RoleReviewer)
	client := apitest.Client(t) // checks every exchange against api/openapi.yaml
	post := func(path, tok, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+r.Addr()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
		return resp.StatusCode, out
	}

	r.rewrite(t, withFW2(cfg))
	if code, p := post("/v1/admin/reload", reviewer, ""); code != http.StatusForbidden || p["code"] != fabric.EFORBIDDEN {
		t.Errorf("reviewer reload = %d %v, want 403", code, p)
	}
	if n := changeCount(t, r.Main); n != 0 {
		t.Fatalf("a refused caller filed %d changes", n)
	}
	r.rewrite(t, strings.Replace(withFW2(cfg), "next_hop: 10.10.30.1", "next_hop: nowhere", 1))
	if code, p := post("/v1/admin/reload", admin, ""); code != http.StatusUnprocessableEntity || p["field"] != "segments[0].route_via[2].next_hop" {
		t.Errorf("reload of a bad file = %d %v, want 422 naming the key", code, p)
	}
	r.rewrite(t, strings.Replace(withFW2(cfg), "approval:\n", "log_level: debug\napproval:\n", 1))
	code, res := post("/v1/admin/reload", admin, "")
	if code != http.StatusOK {
		t.Fatalf("reload = %d %v", code, res)
	}
	reroutes, _ := res["reroutes"].([]any)
	if len(reroutes) != 1 || fmt.Sprint(res["restart_required"]) != "[log_level]" {
		t.Fatalf("reload answer = %v, want one reroute and log_level needing a restart", res)
	}
	rc := reroutes[0].(map[string]any)
	if rc["kind"] != "reroute" || rc["segment"] != "rack1" || rc["requested_by"] != "root" {
		t.Errorf("reroute = %v", rc)
	}
	id := int64(rc["id"].(float64))
	approve := fmt.Sprintf(`{"plan_hash":%q}`, rc["plan_hash"])
	if code, p := post(fmt.Sprintf("/v1/changes/%d/approve", id), admin, approve); code != http.StatusForbidden {
		t.Errorf("the reloading admin's own approval = %d %v, want 403 (four eyes)", code, p)
	}
	if code, p := post(fmt.Sprintf("/v1/changes/%d/approve", id), reviewer, approve); code != http.StatusOK || p["status"] != "approved" {
		t.Errorf("another reviewer's approval = %d %v", code, p)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/v1/changes?status=approved", r.Addr()), nil)
	req.Header.Set("Authorization", "Bearer "+reviewer)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"kind":"reroute"`) {
		t.Errorf("GET /v1/changes = %s, want the reroute", b)
	}
}

// TestSIGHUPReloadsServe runs `returnpath serve` as a process of its own (this test binary
// re-executed as the command, main() and all) and sends it SIGHUP after fw2 joined rack1's
// path in its file: the process reloads rather than dies, and files one reroute with one add
// per active host, all on fw2.
func TestSIGHUPReloadsServe(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	ctx := context.Background()
	url := pgtest.URL(t)
	cfg := strings.ReplaceAll(testConfig, "%DB%", url)
	path := writeConfig(t, cfg)
	cmd := exec.Command(os.Args[0], "serve", "--config", path)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs, logged, drained := &syncBuffer{}, make(chan struct{}, 1), make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			select {
			case logged <- struct{}{}:
			default:
			}
		}
	}()
	stopped := false
	stop := func() error {
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-drained
		return cmd.Wait()
	}
	defer func() {
		if !stopped {
			_ = stop()
		}
	}()
	waitLog := func(msg string) {
		t.Helper()
		deadline := time.NewTimer(60 * time.Second)
		defer deadline.Stop()
		for !strings.Contains(logs.String(), msg) {
			select {
			case <-logged:
			case <-drained:
				t.Fatalf("the process ended before logging %s:\n%s", msg, logs)
			case <-deadline.C:
				t.Fatalf("no %s in the logs after 60s:\n%s", msg, logs)
			}
		}
	}
	waitLog(`"msg":"serving"`)

	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	insertHosts(t, db, 1, 50, fabric.HostActive)
	if err := os.WriteFile(path, []byte(withFW2(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(`"msg":"configuration reloaded"`)

	var changes, ops, fw2Adds int
	var kind, segment string
	err = db.QueryRow(ctx, `SELECT count(DISTINCT c.id), min(c.kind), min(c.segment), count(o.id),
		count(o.id) FILTER (WHERE o.device = 'fw2' AND o.action = 'add' AND o.next_hop = '10.10.30.1')
		FROM changes c LEFT JOIN change_ops o ON o.change_id = c.id`).Scan(&changes, &kind, &segment, &ops, &fw2Adds)
	if err != nil {
		t.Fatal(err)
	}
	if changes != 1 || kind != "reroute" || segment != "rack1" || ops != 50 || fw2Adds != 50 {
		t.Errorf("after SIGHUP: %d changes (%s of %s) with %d ops, %d of them adds on fw2; want one reroute of rack1 with 50 adds on fw2",
			changes, kind, segment, ops, fw2Adds)
	}
	if err := stop(); err != nil {
		t.Errorf("serve after SIGHUP and SIGTERM: %v (a SIGHUP that is not handled ends the process)\n%s", err, logs)
	}
}

// TestReloadPendingChanges: what becomes of changes pending at reload time. A pending add is
// left pending and planned again on the new path when approved (the reviewer is shown the new
// plan first); a pending remediate change on a rerouted device, planned from the old intent,
// is rejected as superseded.
func TestReloadPendingChanges(t *testing.T) {
	r, cfg := reloadSetup(t)
	ctx := context.Background()
	insertHosts(t, r.DB.Pool, 1, 2, fabric.HostActive)
	h, _, err := r.Hosts.Register(ctx, fabric.Actor{Name: "boot", Role: fabric.RoleBootstrap},
		fabric.Registration{Name: "late", Address: netip.MustParseAddr("10.10.10.200")})
	if err != nil {
		t.Fatal(err)
	}
	addID, _, _, _ := r.Changes.HostChange(ctx, h.ID)
	add, err := r.Changes.Change(ctx, addID)
	if err != nil {
		t.Fatal(err)
	}
	rem, err := r.Changes.Remediate(ctx, fabric.Actor{Name: "alice", Role: fabric.RoleReviewer}, []fabric.DeviceOp{{Device: "fw1",
		Op: fabric.RouteOp{Action: fabric.ActionAdd, Route: fabric.Route{VRF: "default", Prefix: netip.MustParsePrefix("10.210.1.0/24"), NextHop: netip.MustParseAddr("10.10.20.1")}}}})
	if err != nil {
		t.Fatal(err)
	}
	r.rewrite(t, withFW2(cfg))
	res, err := r.Reload(ctx, reloadActor)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Reroutes) != 1 || len(res.Reroutes[0].Ops) != 2 {
		t.Fatalf("reroutes = %+v, want one moving the two active hosts (not the pending one)", res.Reroutes)
	}
	if fmt.Sprint(res.Superseded) != fmt.Sprint([]int64{rem.ID}) {
		t.Errorf("superseded = %v, want [%d]", res.Superseded, rem.ID)
	}
	if c, _ := r.Changes.Change(ctx, rem.ID); c.Status != fabric.ChangeRejected || !strings.HasPrefix(c.Reason, "superseded") {
		t.Errorf("remediate change after the reload: %s %q, want rejected as superseded", c.Status, c.Reason)
	}
	reviewer := fabric.Actor{Name: "carol", Role: fabric.RoleReviewer}
	_, err = r.Changes.Approve(ctx, reviewer, addID, add.PlanHash)
	var stale *fabric.StalePlanError
	if !errors.As(err, &stale) {
		t.Fatalf("approving the add with the plan shown before the reload = %v, want a stale plan", err)
	}
	var devices []string
	for _, o := range stale.Change.Ops {
		devices = append(devices, o.Device)
	}
	if strings.Join(devices, ",") != "sw1,fw1,fw2" {
		t.Errorf("the add's new plan is on %v, want sw1, fw1, fw2", devices)
	}
	if _, err := r.Changes.Approve(ctx, reviewer, addID, stale.Change.PlanHash); err != nil {
		t.Errorf("approving the new plan: %v", err)
	}
}
