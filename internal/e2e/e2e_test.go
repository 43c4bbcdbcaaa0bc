// Package e2e runs the returnpath binary against the network-namespace lab: real FRR and a
// real Linux firewall over SSH, a real PostgreSQL, the service as a separate process that can
// be killed. The test binary itself runs inside the lab's management namespace.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

func TestMain(m *testing.M) {
	code := labtest.Main(m, lab.Options{SecondSwitch: true}) // sw2 for TestHAStage; the other tests leave it alone
	pgtest.Cleanup()
	if binPath != "" { // built by this process (the one that ran the tests, inside the lab)
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/returnpath once per test binary.
func binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rp-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "returnpath")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/returnpath").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// fleetConfig writes a returnpath.yaml for the lab with room for many hosts: one segment of a
// /16 of host addresses behind sw1 and fw1, a /12 pool of /24s, and auto-approval of adds and
// removals so that the apply engine works without a reviewer.
func fleetConfig(tb testing.TB, l *lab.Lab, dbURL, listen string) string {
	tb.Helper()
	return fleetConfigVia(tb, l, dbURL, listen, "10.10.20.1")
}

// fleetConfigVia is fleetConfig with the firewall's next hop for the fleet's subnets.
func fleetConfigVia(tb testing.TB, l *lab.Lab, dbURL, listen, fwNextHop string) string {
	tb.Helper()
	sw, fw := l.Devices["sw1"], l.Devices["fw1"]
	cfg := fmt.Sprintf(`listen: %q
database_url: %q
log_level: warn
pools:
  - {name: docker, prefix: 172.16.0.0/12, subnet_length: 24}
segments:
  - name: fleet
    hosts: 10.10.0.0/16
    pool: docker
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: %s}
devices:
  - {name: sw1, platform: frr, transport: ssh, address: %q, username: %s, password_file: %q, known_hosts: %q, connect_timeout: 5s}
  - {name: fw1, platform: linux, transport: ssh, address: %q, username: %s, private_key_file: %q, known_hosts: %q, connect_timeout: 5s, linux: {sudo: true, proto: 202}}
approval:
  four_eyes: true
  auto_approve: [{action: add}, {action: remove}]
apply:
  retry_deadline: 2m
limits:
  registrations_per_minute: 0 # one token registers the whole fleet at once
`, listen, dbURL, fwNextHop, sw.Mgmt.String(), sw.Username, sw.PasswordFile, l.KnownHosts, fw.Mgmt.String(), fw.Username, fw.KeyFile, l.KnownHosts)
	p := filepath.Join(tb.TempDir(), "returnpath.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// service is a `returnpath serve` process.
type service struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
}

func startService(tb testing.TB, cfg, url string) *service {
	tb.Helper()
	s := &service{url: url, logs: &bytes.Buffer{}}
	s.cmd = exec.Command(binary(tb), "serve", "--config", cfg)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	// A failed test shows the service's errors (a 500 names only its request_id) and its last
	// 20 warnings (a flapping device warns at every session). Cleanups run after the test's
	// deferred stop; stopping again is harmless.
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		s.stop()
		warns := s.lines("WARN")
		for _, line := range append(s.lines("ERROR"), warns[max(0, len(warns)-20):]...) {
			tb.Log("service: " + line)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			s.kill()
			tb.Fatalf("service not ready after 30s:\n%s", s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lines returns the service's log lines of level ("ERROR", "WARN"), leaving out the warning
// every lab service gives for serving plain HTTP. Call it once the service has stopped: its
// log buffer is written by exec's goroutine while it runs.
func (s *service) lines(level string) []string {
	var out []string
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"level":"`+level+`"`) && !strings.Contains(line, "plain HTTP") {
			out = append(out, line)
		}
	}
	return out
}

// kill sends SIGKILL: no shutdown, no cleanup, as a crash would.
func (s *service) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func (s *service) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

func token(tb testing.TB, cfg, name, role string) string {
	tb.Helper()
	// Each reviewer is its own person: four eyes compares owners.
	out, err := exec.Command(binary(tb), "token", "create", "--config", cfg, "--name", name, "--role", role, "--owner", name).CombinedOutput()
	if err != nil {
		tb.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// register registers hosts h<first>..h<first+n-1> over HTTP from 16 concurrent clients.
func register(tb testing.TB, url, tok string, first, n int) {
	tb.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, n)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				body := fmt.Sprintf(`{"name":"h%d","address":"10.10.%d.%d"}`, i, 100+i/250, 1+i%250)
				req, _ := http.NewRequest("POST", url+"/v1/hosts", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 && resp.StatusCode != 200 {
					errs <- fmt.Errorf("h%d: %d %s", i, resp.StatusCode, b)
				}
			}
		})
	}
	for i := first; i < first+n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Error(err)
	}
}

func countChanges(tb testing.TB, db *pgx.Conn) map[string]int {
	tb.Helper()
	rows, err := db.Query(context.Background(), `SELECT status, count(*) FROM changes GROUP BY status`)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	var s string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&s, &n}, func() error { out[s] = n; return nil })
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func waitApplied(tb testing.TB, db *pgx.Conn, want int, within time.Duration) {
	tb.Helper()
	waitAppliedEvery(tb, db, want, within, 20*time.Millisecond)
}

// waitAppliedEvery is waitApplied with a polling interval suited to the wait's length.
func waitAppliedEvery(tb testing.TB, db *pgx.Conn, want int, within, every time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		by := countChanges(tb, db)
		if by["applied"] == want {
			return
		}
		if by["failed"]+by["rolled_back"] > 0 || time.Now().After(deadline) {
			tb.Fatalf("changes: %v, want %d applied", by, want)
		}
		time.Sleep(every)
	}
}

type verifyReport struct {
	InSync  bool `json:"in_sync"`
	Devices []struct {
		Device     string `json:"device"`
		Status     string `json:"status"`
		Missing    []any  `json:"missing"`
		Unexpected []any  `json:"unexpected"`
	} `json:"devices"`
}

// verifyInSync asks GET /v1/verify until the fabric is in sync or within runs out (a device
// that has just come back may fail a first read, and verify keeps that reading for
// verify.max_age), and returns the last report.
func verifyInSync(tb testing.TB, url, tok string, within time.Duration) verifyReport {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		r := verifyFabric(tb, url, tok)
		if r.InSync || time.Now().After(deadline) {
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func verifyFabric(tb testing.TB, url, tok string) verifyReport {
	tb.Helper()
	req, _ := http.NewRequest("GET", url+"/v1/verify", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var r verifyReport
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		tb.Fatal(err)
	}
	return r
}

// deviceRoutes counts the pool's routes the devices hold, as the devices themselves say.
func deviceRoutes(tb testing.TB, l *lab.Lab) (sw, fw int) {
	tb.Helper()
	ctx := context.Background()
	out, err := l.Vtysh(ctx, "sw1", "show running-config staticd")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "ip route 172.") {
			sw++
		}
	}
	b, err := l.Exec(ctx, "fw1", "ip", "route", "show", "proto", "202")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "172.") {
			fw++
		}
	}
	return sw, fw
}

// TestKillMidApplyThenRestart SIGKILLs the service while it is applying a batch of changes,
// starts it again, and checks that everything converges: every change applied, each route on
// each device exactly once, verify in sync.
func TestKillMidApplyThenRestart(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8091"
	cfg := fleetConfig(t, l, dbURL, l.Service.String()+":8091")
	svc := startService(t, cfg, url)
	boot := token(t, cfg, "boot", "bootstrap")
	viewer := token(t, cfg, "ci", "viewer")
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)

	const n = 200
	register(t, url, boot, 0, n)
	// Kill as soon as the first device's ops are applied and the second's are not.
	deadline := time.Now().Add(60 * time.Second)
	var applied, pending int
	for {
		if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'applied'), count(*) FILTER (WHERE status = 'pending') FROM change_ops`).Scan(&applied, &pending); err != nil {
			t.Fatal(err)
		}
		if applied > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	svc.kill()
	t.Logf("killed with %d ops applied and %d pending", applied, pending)
	if pending == 0 {
		t.Log("everything was applied before the kill; the restart is then only a no-op check")
	}
	svc = startService(t, cfg, url)
	defer svc.stop()
	waitApplied(t, db, n, 90*time.Second)
	sw, fw := deviceRoutes(t, l)
	if sw != n || fw != n {
		t.Errorf("devices hold sw1 %d and fw1 %d routes, want %d each", sw, fw, n)
	}
	if r := verifyFabric(t, url, viewer); !r.InSync {
		t.Errorf("verify after the restart: %+v", r)
	}
	// Clean the devices for the next test: deregistering is the product's way.
	for i := range n {
		req, _ := http.NewRequest("DELETE", fmt.Sprintf("%s/v1/hosts/h%d", url, i), nil)
		req.Header.Set("Authorization", "Bearer "+boot)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	waitApplied(t, db, 2*n, 90*time.Second)
	if sw, fw := deviceRoutes(t, l); sw != 0 || fw != 0 {
		t.Errorf("after deregistering all: sw1 %d, fw1 %d routes left", sw, fw)
	}
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

func readAll(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

func writeAll(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }
