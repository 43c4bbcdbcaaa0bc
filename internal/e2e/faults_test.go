package e2e

// Fault injection on the lab (issue #10): PostgreSQL restarted mid-apply, a switch that stalls
// mid-session, a flapping management link. Each test drives the real service binary against
// real FRR and Linux devices and checks the outcome on the devices themselves.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/pgcluster"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// staticdLog follows the route lines FRR's staticd executes on sw1. With "log commands" on,
// staticd logs every configuration line it runs, whoever typed it; the log is read from the
// offset it had when the test started, so earlier tests' lines do not count.
type staticdLog struct {
	path   string
	offset int64
}

func followStaticd(t *testing.T, l *lab.Lab) *staticdLog {
	t.Helper()
	if _, err := l.Vtysh(context.Background(), "sw1", "log commands"); err != nil {
		t.Fatal(err)
	}
	path, err := l.FRRLog("sw1", "staticd")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return &staticdLog{path: path, offset: fi.Size()}
}

// adds returns how many times staticd executed "ip route <prefix> ..." for each prefix of the
// fleet's pool since the test started.
func (s *staticdLog) adds(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(s.offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 2026/12/02 04:25:48 STATIC: [M7Q4P-46WDR] vty[12]@(config)# ip route 172.16.0.0/24 10.10.100.1
		_, cmd, ok := strings.Cut(sc.Text(), "# ")
		if f := strings.Fields(cmd); ok && len(f) >= 3 && f[0] == "ip" && f[1] == "route" && strings.HasPrefix(f[2], "172.") {
			out[f[2]]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkTypedOnce fails the test unless staticd executed exactly n distinct route lines, each
// once: nothing typed twice, nothing missing.
func (s *staticdLog) checkTypedOnce(t *testing.T, n int) {
	t.Helper()
	adds := s.adds(t)
	twice := 0
	for p, k := range adds {
		if k > 1 {
			twice++
			if twice <= 5 {
				t.Errorf("staticd executed the line for %s %d times", p, k)
			}
		}
	}
	if twice > 0 || len(adds) != n {
		t.Errorf("staticd executed route lines for %d prefixes (%d of them more than once), want %d each once", len(adds), twice, n)
	}
}

// waitFirstAdd waits until staticd has executed at least one route line of the test: a
// batch is being pushed to the switch.
func (s *staticdLog) waitFirstAdd(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	buf := make([]byte, 64<<10)
	for {
		f, err := os.Open(s.path)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := f.ReadAt(buf, s.offset)
		f.Close()
		if strings.Contains(string(buf[:n]), "# ip route 172.") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no route line reached staticd within %s", within)
		}
		time.Sleep(time.Millisecond)
	}
}

// blockSSH drops TCP port 22 inside the device's own namespace (never the root namespace's)
// and returns the function that lifts the block; it is also lifted at cleanup.
func blockSSH(t *testing.T, l *lab.Lab, dev string) (unblock func()) {
	t.Helper()
	ctx := context.Background()
	rule := []string{"nft", "add table inet rpfaultblock { chain in { type filter hook input priority 0 ; tcp dport 22 drop ; } ; }"}
	if out, err := l.Exec(ctx, dev, rule...); err != nil {
		t.Fatalf("block %s's ssh: %v %s", dev, err, out)
	}
	var once sync.Once
	unblock = func() {
		once.Do(func() {
			if out, err := l.Exec(ctx, dev, "nft", "delete", "table", "inet", "rpfaultblock"); err != nil {
				t.Errorf("unblock %s's ssh: %v %s", dev, err, out)
			}
		})
	}
	t.Cleanup(unblock)
	return unblock
}

// readyz returns the status of GET /readyz, or 0 when the service does not answer.
func readyz(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// logLines returns the service's JSON log lines whose msg is msg. Call it after the service
// has stopped: its log buffer is written by exec's goroutine while it runs.
func logLines(t *testing.T, svc *service, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(svc.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// swAttempts sums the attempts of sw1's ops: it grows when a session to sw1 records its end.
func swAttempts(t *testing.T, db *pgx.Conn) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT coalesce(sum(attempts), 0) FROM change_ops WHERE device = 'sw1'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPostgresRestartMidApply stops PostgreSQL with an immediate shutdown while a batch of
// 500 routes is being pushed to the switch, and starts it again a few seconds later. The
// session's results could not be recorded, so the service must find out from the device
// what landed: every route ends on each device exactly once, staticd never executes a line
// twice, every change is applied, and /readyz says 503 while the database is away.
func TestPostgresRestartMidApply(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	// A cluster of the test's own: the shared pgtest cluster must not go down under other tests.
	pg, err := pgcluster.Start(ctx, "", pgcluster.Options{Settings: []string{"synchronous_commit=on"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	if err := pg.CreateDatabase(ctx, "rp"); err != nil {
		t.Fatal(err)
	}
	dbURL := pg.URL("rp")
	url := "http://" + l.Service.String() + ":8111"
	cfg := fleetConfig(t, l, dbURL, l.Service.String()+":8111")
	cfg = rewrite(t, cfg, "connect_timeout: 5s", "connect_timeout: 1s")
	svc := startService(t, cfg, url)
	defer svc.stop()
	defer cleanDevices(t, l)
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")
	staticd := followStaticd(t, l)

	// All 500 registered while the switch is unreachable, so that they go out as one batch
	// whose push is long enough to stop PostgreSQL in the middle of it.
	const n = 500
	unblock := blockSSH(t, l, "sw1")
	register(t, url, boot, 0, n)
	unblock()
	staticd.waitFirstAdd(t, 60*time.Second)
	if err := pg.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	atHalt := len(staticd.adds(t))
	resumed := false
	defer func() {
		if !resumed {
			_ = pg.Resume(ctx)
		}
	}()
	if got := readyz(url); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the database is down = %d, want 503", got)
	}
	// The session goes on without the database: it ends, and cannot record what it did.
	deadline := time.Now().Add(30 * time.Second)
	for sshSessions(t, l, "sw1") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the session to sw1 did not end within 30s of the database going away")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// "A few seconds" of outage in all: the fault's length, not a synchronisation.
	time.Sleep(3*time.Second - time.Since(down))
	if err := pg.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	resumed = true
	t.Logf("PostgreSQL halted after staticd took %d of %d route lines; the session ended %d lines later", atHalt, n, len(staticd.adds(t))-atHalt)
	deadline = time.Now().Add(30 * time.Second)
	for readyz(url) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 within 30s of the database's return")
		}
		time.Sleep(50 * time.Millisecond)
	}

	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	waitApplied(t, db, n, 90*time.Second)
	if sw, fw := deviceRoutes(t, l); sw != n || fw != n {
		t.Errorf("sw1 holds %d and fw1 %d routes, want %d each", sw, fw, n)
	}
	// change_ops.attempts also counts the logins refused while sw1 was blocked, so the proof
	// that nothing was typed twice is staticd's own log.
	staticd.checkTypedOnce(t, n)
	if r := verifyFabric(t, url, viewer); !r.InSync {
		t.Errorf("verify: %+v", r)
	}
}

// TestSwitchStallsMidSession stops staticd (SIGSTOP) while a batch is being pushed to the
// switch, for 20 s, with a 4 s op timeout. The timeout must fire (the service logs the
// session's outcome as indeterminate), the outcome be settled by reading the switch back once
// it answers again, every route land exactly once (staticd's own log: no line executed twice)
// and every change end applied. The switch is let go while the service's next session waits
// for its read, as it would be on a real device that recovers at any moment: the stalled
// session's vtysh outlives the dropped SSH connection and types the rest of its batch then.
func TestSwitchStallsMidSession(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8112"
	cfg := fleetConfig(t, l, dbURL, l.Service.String()+":8112")
	const opTimeout = 4 * time.Second
	cfg = rewrite(t, cfg, "connect_timeout: 5s", "connect_timeout: 2s, timeout: "+opTimeout.String())
	svc := startService(t, cfg, url)
	stopped := false
	defer func() {
		if !stopped {
			svc.stop()
		}
	}()
	defer cleanDevices(t, l)
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	staticd := followStaticd(t, l)

	const n = 1000
	unblock := blockSSH(t, l, "sw1")
	register(t, url, boot, 0, n)
	unblock()
	staticd.waitFirstAdd(t, 60*time.Second)
	before := swAttempts(t, db)
	if err := l.Signal("sw1 staticd", syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stalled := time.Now()
	atStop := len(staticd.adds(t))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := l.Signal("sw1 staticd", syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT: %v", err)
			}
		}
	}
	defer resume()
	// While the switch stalls, the push can only end by the op timeout: its session then
	// records its ops (still pending, outcome unknown), which counts one more attempt.
	deadline := stalled.Add(20 * time.Second)
	var recordedAt time.Duration
	for time.Now().Before(deadline) {
		if swAttempts(t, db) > before {
			recordedAt = time.Since(stalled)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	switch {
	case recordedAt == 0:
		t.Errorf("the stalled push to sw1 did not end within 20s (op timeout %s)", opTimeout)
	case recordedAt > opTimeout+5*time.Second:
		t.Errorf("the stalled push to sw1 ended after %s; the op timeout is %s", recordedAt, opTimeout)
	}
	var failed int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM change_ops WHERE status = 'failed'`).Scan(&failed); err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Errorf("%d ops failed while the switch stalled; their outcome was unknown, not failed", failed)
	}
	time.Sleep(time.Until(deadline)) // the rest of the 20 s stall: the fault's length
	// Let the switch go on while a new session waits for its read: the session of the
	// stalled push is still alive on the switch (vtysh holds the rest of the batch), so the
	// read-back races with it. That race is what "resolved by reading back" must survive.
	waitUntil := time.Now().Add(20 * time.Second)
	for sshSessions(t, l, "sw1") == 0 && time.Now().Before(waitUntil) {
		time.Sleep(20 * time.Millisecond)
	}
	resume()
	t.Logf("staticd stopped after %d of %d route lines; the push was given up after %s", atStop, n, recordedAt.Round(time.Millisecond))

	waitApplied(t, db, n, 90*time.Second)
	if sw, fw := deviceRoutes(t, l); sw != n || fw != n {
		t.Errorf("sw1 holds %d and fw1 %d routes, want %d each", sw, fw, n)
	}
	staticd.checkTypedOnce(t, n)
	if r := verifyFabric(t, url, viewer); !r.InSync {
		t.Errorf("verify: %+v", r)
	}
	svc.stop()
	stopped = true
	timedOut := 0
	for _, m := range logLines(t, svc, "apply") {
		if m["device"] == "sw1" && m["kind"] == "indeterminate" && strings.Contains(fmt.Sprint(m["err"]), "deadline exceeded") {
			timedOut++
		}
	}
	if timedOut == 0 {
		t.Errorf("the service did not log sw1's push as indeterminate after its op timeout:\n%s", svc.logs)
	}
}

// TestFlappingManagementLink takes the switch's management link down and up every 2 s (inside
// the switch's namespace) while 200 hosts are registered, 20 a second, and applied. Every
// change must be applied, and the service must not try to log in to the switch more often
// than its backoff allows.
func TestFlappingManagementLink(t *testing.T) {
	l := labtest.Require(t)
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	url := "http://" + l.Service.String() + ":8113"
	cfg := fleetConfig(t, l, dbURL, l.Service.String()+":8113")
	cfg = rewrite(t, cfg, "connect_timeout: 5s", "connect_timeout: 1s, timeout: 3s")
	svc := startService(t, cfg, url)
	defer svc.stop()
	defer cleanDevices(t, l)
	boot, viewer := token(t, cfg, "boot", "bootstrap"), token(t, cfg, "ci", "viewer")
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)

	// Login attempts are counted as new TCP connections to sw1's sshd (conntrack: a SYN sent
	// again for the same attempt is not new): where the service makes them, in the mgmt
	// namespace it runs in, whether or not the link carries them; and where they arrive, in
	// sw1's namespace. Counters only, in lab namespaces, never the root namespace.
	sw := l.Devices["sw1"].Mgmt.Addr().String()
	counters := []struct{ ns, rule string }{
		{ns: "mgmt", rule: "add table inet rpfaultcount { chain out { type filter hook output priority -10 ; ip daddr " + sw + " tcp dport 22 ct state new counter ; } ; }"},
		{ns: "sw1", rule: "add table inet rpfaultcount { chain in { type filter hook input priority -10 ; tcp dport 22 ct state new counter ; } ; }"},
	}
	for _, c := range counters {
		if out, err := l.Exec(ctx, c.ns, "nft", c.rule); err != nil {
			t.Fatalf("count logins in %s: %v %s", c.ns, err, out)
		}
		defer l.Exec(ctx, c.ns, "nft", "delete", "table", "inet", "rpfaultcount") //nolint:errcheck
	}

	const period = 2 * time.Second
	link := func(state string) {
		if out, err := l.Exec(ctx, "sw1", "ip", "link", "set", "dev", "mgmt", state); err != nil {
			t.Errorf("link %s: %v %s", state, err, out)
		}
	}
	// The first phase is down, so that the first sessions fail: the flapping must bite.
	link("down")
	defer link("up")
	start := time.Now()
	stop := make(chan struct{})
	var flapper sync.WaitGroup
	flaps := 0
	flapper.Go(func() {
		up := false
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			up = !up
			if up {
				link("up")
			} else {
				link("down")
			}
			flaps++
		}
	})

	// 200 changes spread over 10 s (the load's shape, not a synchronisation), so that
	// sessions keep starting across several flaps.
	const n, burst = 200, 20
	pace := time.NewTicker(time.Second)
	for first := 0; first < n; first += burst {
		register(t, url, boot, first, burst)
		<-pace.C
	}
	pace.Stop()
	// Converged when sw1 has no op left to do; the flapping stops there. On a loaded machine a
	// session (login, read, push, read-back) can outlast the 2 s a link stays up, every attempt
	// then fails, and the backoff reaches its 30 s cap: what the service owes is to apply
	// everything once the link allows it, within its login budget. So after 90 s of flapping
	// the link stays up, and everything must then be applied within 90 s (the cap, and a
	// session), with the budget counted over the whole run.
	deadline := time.Now().Add(90 * time.Second)
	steady := false
	stopFlapping := func() {
		close(stop)
		flapper.Wait()
		link("up")
		steady = true
	}
	for {
		var left int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM change_ops WHERE device = 'sw1' AND status <> 'applied'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			if steady {
				t.Fatalf("sw1 still has %d ops to do 90 s after the link came up for good", left)
			}
			stopFlapping()
			t.Logf("sw1 still had %d ops to do after 90 s of flapping (%d flaps); the link stays up from now on", left, flaps)
			deadline = time.Now().Add(90 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	converged := time.Since(start)
	if !steady {
		stopFlapping()
	}
	waitApplied(t, db, n, 60*time.Second)

	tried, arrived := nftCounter(t, l, "mgmt", "rpfaultcount"), nftCounter(t, l, "sw1", "rpfaultcount")
	// Sessions that applied something: Record stamps one session's results with one time.
	var sessions int
	if err := db.QueryRow(ctx, `SELECT count(DISTINCT updated_at) FROM change_ops WHERE device = 'sw1' AND status = 'applied'`).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	budget := loginBudget(converged, sessions)
	t.Logf("%d flaps in %s; the service tried %d logins to sw1, %d arrived; %d sessions applied routes; budget %d",
		flaps, converged.Round(time.Millisecond), tried, arrived, sessions, budget)
	// The first phase is down, so some ops met an unreachable switch before they were applied:
	// the flapping bit. (Logins are not bounded below by sessions: a kept-open session serves
	// several, and a SYN retransmitted after the link came up arrives late but still counts.)
	var bitten int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM change_ops WHERE device = 'sw1' AND first_error_at IS NOT NULL`).Scan(&bitten); err != nil {
		t.Fatal(err)
	}
	if bitten == 0 || arrived > tried || arrived == 0 {
		t.Errorf("%d of sw1's ops met an error; counted %d logins tried and %d arrived for %d sessions that applied routes: the flapping did not bite or the counters are wrong", bitten, tried, arrived, sessions)
	}
	if tried > budget {
		t.Errorf("the service tried %d logins to sw1 in %s, more than its backoff allows (%d)", tried, converged.Round(time.Millisecond), budget)
	}
	if sw, fw := deviceRoutes(t, l); sw != n || fw != n {
		t.Errorf("sw1 holds %d and fw1 %d routes, want %d each", sw, fw, n)
	}
	// The link has just come up for good: the switch may miss a first read.
	if r := verifyInSync(t, url, viewer, 30*time.Second); !r.InSync {
		t.Errorf("verify: %+v", r)
	}
}

// loginBudget is the most logins an engine that keeps its per-device backoff may try on one
// device in a run of length d in which s sessions succeeded (applied routes).
//
// The backoff waits 250 ms after a failed session, then doubles (500 ms, 1 s, ...), capped
// at 30 s, and a success starts it over. k failures in a row therefore wait at least
// 250 ms × (2^(k-1) - 1) between them, so a run of failures of length L holds at most
// 1 + log2(1 + L/250 ms) attempts (the cap and the time each failed attempt takes only
// lower this). Every run of failures ends in a success, so there are at most s runs, and
// their lengths add up to at most d; the sum of 1 + log2(1 + L_i/250 ms) is largest when
// the runs are equally long, d/s each. The flap schedule (2 s down, 2 s up) decides where
// the runs fall, but the bound holds for any schedule. The s successes and one login cut by
// the last flap after its results were recorded come on top.
func loginBudget(d time.Duration, s int) int {
	r := float64(max(s, 1))
	failures := r * (1 + math.Log2(1+float64(d)/(r*float64(250*time.Millisecond))))
	return int(failures) + s + 1
}

// nftCounter reads the packets of the one counter in table inet <table> of a lab namespace.
func nftCounter(t *testing.T, l *lab.Lab, ns, table string) int {
	t.Helper()
	out, err := l.Exec(context.Background(), ns, "nft", "list", "table", "inet", table)
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "packets" && i+1 < len(f) {
			n, err := strconv.Atoi(f[i+1])
			if err != nil {
				t.Fatalf("nft counter: %q", out)
			}
			return n
		}
	}
	t.Fatalf("no counter in %s", out)
	return 0
}
