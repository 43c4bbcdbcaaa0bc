package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
	"github.com/returnpath/returnpath/internal/session"
)

// The fleet benchmark's shape (issue 14): 10 Linux devices plus the FRR switch, 10 segments,
// 20,000 hosts registered by 16 clients (FLEET_HOSTS overrides the number of hosts, for a
// quicker look).
const (
	fleetDevices  = 10
	fleetSegments = 10
)

// fleetPool holds the fleet's docker0 subnets: /26s, 131,072 of them.
var fleetPool = netip.MustParsePrefix("10.128.0.0/9")

// fleetHostAddr is host i's uplink address: segment i%10 has hosts 10.(11+s).0.0/16.
func fleetHostAddr(i int) string {
	s, j := i%fleetSegments, i/fleetSegments
	return fmt.Sprintf("10.%d.%d.%d", 11+s, j/250, 1+j%250)
}

// BenchmarkFleet registers 20,000 hosts across 10 segments (16 clients, auto-approved) against
// the FRR switch and 10 Linux devices in lab namespaces, with every device on every segment's
// return path (sw1, then lx01 to lx10), so that each of the 11 devices ends up holding 20,000
// routes. The service runs as its own process (the binary). It reports, per step: registration,
// each device's last op applied (from the start), all routes verified, then a fresh
// GET /v1/verify of all 11 devices, the sessions each device saw (returnpath_device_logins_total)
// and the service's peak RSS (VmHWM).
//
//	RETURNPATH_REQUIRE_LAB=1 go test -run '^$' -bench '^BenchmarkFleet$' -benchtime 1x -timeout 30m ./internal/e2e/
func BenchmarkFleet(b *testing.B) {
	l := labtest.Require(b)
	fleetHosts := envInt(b, "FLEET_HOSTS", 20000)
	for b.Loop() {
		ctx := context.Background()
		fleet, err := l.StartFleet(ctx, fleetDevices)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = fleet.Stop() }) // after a failure; a second Stop does nothing
		dbURL := pgtest.URL(b)
		listen := l.Service.String() + ":8093"
		url := "http://" + listen
		cfg := fleetBenchConfig(b, l, fleet, dbURL, listen)
		svc := startService(b, cfg, url)
		b.Cleanup(svc.stop)
		boot := token(b, cfg, "boot", "bootstrap")
		admin := token(b, cfg, "admin", "admin")
		db, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			b.Fatal(err)
		}

		start := time.Now()
		registerN(b, url, boot, fleetHosts, fleetHostAddr)
		registered := time.Since(start)
		progress("registered %d hosts in %.1f s", fleetHosts, registered.Seconds())
		// Say how far the apply is every 30 s, so that a run stopped early still shows its pace.
		done := make(chan struct{})
		go func() {
			// A connection of its own: a pgx.Conn serves one goroutine.
			conn, err := pgx.Connect(context.Background(), dbURL)
			if err != nil {
				return
			}
			defer conn.Close(context.Background())
			tick := time.NewTicker(30 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					var n int
					_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM changes WHERE status = 'applied'`).Scan(&n)
					progress("%.0f s after the start: %d of %d changes applied", time.Since(start).Seconds(), n, fleetHosts)
				}
			}
		}()
		waitAppliedEvery(b, db, fleetHosts, 20*time.Minute, 100*time.Millisecond)
		close(done)
		applied := time.Since(start)
		perDevice := lastAppliedPerDevice(b, db, start)
		applyLogins, closes := deviceLogins(b, url), sessionCloses(b, url)
		progress("all applied %.1f s after the start; per device %v; logins %v; sessions closed %v", applied.Seconds(), perDevice, applyLogins, closes)

		t0 := time.Now()
		r := verifyFresh(b, url, admin)
		verifyTook := time.Since(t0)
		if !r.InSync || len(r.Devices) != fleetDevices+1 {
			b.Fatalf("fresh verify after applying: in_sync %v, %d devices: %+v", r.InSync, len(r.Devices), r.Devices)
		}
		allLogins := deviceLogins(b, url)
		rss := peakRSS(b, svc.cmd.Process.Pid)
		progress("fresh verify %.2f s (in sync %v); peak RSS %d kB", verifyTook.Seconds(), r.InSync, rss)

		// What the devices themselves hold, counted outside returnpath.
		if lines := switchRouteLines(b, l, fleetPool); len(lines) != fleetHosts {
			b.Fatalf("sw1 holds %d routes of the pool, want %d; %s", len(lines), fleetHosts, explainExtra(b, db, lines))
		}
		for _, d := range fleet.Devices {
			if n := linuxRoutes(b, l, d.Namespace); n != fleetHosts {
				b.Fatalf("%s holds %d routes with proto 202, want %d", d.Name, n, fleetHosts)
			}
		}

		b.ReportMetric(registered.Seconds(), "register-s")
		b.ReportMetric(applied.Seconds(), "all-applied-s")
		b.ReportMetric(applied.Seconds()+verifyTook.Seconds(), "all-verified-s")
		b.ReportMetric(verifyTook.Seconds(), "fresh-verify-s")
		b.ReportMetric(float64(rss)/1024, "peak-rss-MB")
		most := 0
		for _, n := range applyLogins {
			most = max(most, n)
		}
		b.ReportMetric(float64(most), "max-apply-logins/device")
		var lines []string
		for _, d := range r.Devices {
			lines = append(lines, fmt.Sprintf("| %s | %.1f s | %d | %s | %d | %.0f ms |", d.Device,
				perDevice[d.Device].Seconds(), applyLogins[d.Device], closes[d.Device], allLogins[d.Device], d.TookMS))
		}
		b.Logf("%d hosts on %d devices: registered in %.1f s, all applied %.1f s after the first registration, "+
			"fresh verify %.2f s (service's own took_ms %.0f), peak RSS %.0f MB",
			fleetHosts, fleetDevices+1, registered.Seconds(), applied.Seconds(), verifyTook.Seconds(), r.TookMS, float64(rss)/1024)
		// On standard output: a benchmark's log is cut to ten lines without -v.
		fmt.Printf("| device | last op applied (from start) | logins while applying | sessions closed while applying, why | logins incl. verify | verify read+compare |\n|---|---|---|---|---|---|\n%s\n",
			strings.Join(lines, "\n"))

		svc.stop()
		// What ended a session early, in the service's words (a login beyond a device's first
		// follows one): its warnings, the first 20.
		warns := svc.lines("WARN")
		fmt.Printf("%d warnings from the service\n", len(warns))
		for _, w := range warns[:min(len(warns), 20)] {
			fmt.Println(w)
		}
		db.Close(ctx)
		// sw1 is the lab's own: leave it as it was. The fleet goes whole.
		if err := clearSwitch(ctx, l, fleetPool); err != nil {
			b.Fatal(err)
		}
		if err := fleet.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}

// fleetBenchConfig writes the fleet's returnpath.yaml: one pool, 10 segments whose return path
// is sw1 (next hop: the host) and then every fleet device (next hop: the one address each can
// route through), auto-approval, no registration limit.
func fleetBenchConfig(tb testing.TB, l *lab.Lab, f *lab.Fleet, dbURL, listen string) string {
	tb.Helper()
	sw := l.Devices["sw1"]
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\ndatabase_url: %q\nlog_level: warn\n", listen, dbURL)
	fmt.Fprintf(&b, "pools:\n  - {name: docker, prefix: %s, subnet_length: 26}\nsegments:\n", fleetPool)
	for s := range fleetSegments {
		fmt.Fprintf(&b, "  - name: seg%02d\n    hosts: 10.%d.0.0/16\n    pool: docker\n    route_via:\n      - {device: sw1, next_hop: host}\n", s+1, 11+s)
		for _, d := range f.Devices {
			fmt.Fprintf(&b, "      - {device: %s, next_hop: %s}\n", d.Name, lab.FleetNextHop)
		}
	}
	fmt.Fprintf(&b, "devices:\n  - {name: sw1, platform: frr, transport: ssh, address: %q, username: %s, password_file: %q, known_hosts: %q, connect_timeout: 5s}\n",
		sw.Mgmt.String(), sw.Username, sw.PasswordFile, l.KnownHosts)
	for _, d := range f.Devices {
		fmt.Fprintf(&b, "  - {name: %s, platform: linux, transport: ssh, address: %q, username: %s, private_key_file: %q, known_hosts: %q, connect_timeout: 5s, linux: {sudo: true, proto: 202}}\n",
			d.Name, d.Mgmt.String(), d.Username, d.KeyFile, f.KnownHosts)
	}
	b.WriteString(`approval:
  four_eyes: true
  auto_approve: [{action: add}, {action: remove}]
apply:
  retry_deadline: 5m
limits:
  registrations_per_minute: 0 # one token registers the whole fleet at once
`)
	p := filepath.Join(tb.TempDir(), "returnpath.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// registerN registers hosts h0..h<n-1>, host i at addr(i), over HTTP from 16 concurrent
// clients.
func registerN(tb testing.TB, url, tok string, n int, addr func(int) string) {
	tb.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, n)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for range 16 {
		wg.Go(func() {
			for i := range next {
				body := fmt.Sprintf(`{"name":"h%d","address":%q}`, i, addr(i))
				req, _ := http.NewRequest("POST", url+"/v1/hosts", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
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
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// lastAppliedPerDevice returns, per device, when its last op was recorded applied, counted from
// start.
func lastAppliedPerDevice(tb testing.TB, db *pgx.Conn, start time.Time) map[string]time.Duration {
	tb.Helper()
	rows, err := db.Query(context.Background(), `SELECT device, max(updated_at) FROM change_ops WHERE status = 'applied' GROUP BY device`)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]time.Duration{}
	var dev string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&dev, &at}, func() error { out[dev] = at.Sub(start); return nil }); err != nil {
		tb.Fatal(err)
	}
	return out
}

// deviceLogins reads returnpath_device_logins_total{outcome="ok"} per device from /metrics.
func deviceLogins(tb testing.TB, url string) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for dev, v := range deviceMetric(tb, url, "returnpath_device_logins_total", `outcome="ok"`) {
		out[dev] = int(v)
	}
	return out
}

// sessionCloses says per device why the service closed its sessions so far
// (returnpath_device_session_closes_total by cause), e.g. "error 1, idle 1"; "none" when it
// closed none. A login beyond a device's first follows one of these closes.
func sessionCloses(tb testing.TB, url string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, cause := range session.CloseCauses {
		for dev, n := range deviceMetric(tb, url, "returnpath_device_session_closes_total", `cause="`+cause+`"`) {
			if n == 0 {
				continue
			}
			if out[dev] != "" {
				out[dev] += ", "
			}
			out[dev] += fmt.Sprintf("%s %.0f", cause, n)
		}
	}
	for dev := range deviceMetric(tb, url, "returnpath_device_logins_total", `outcome="ok"`) {
		if out[dev] == "" {
			out[dev] = "none"
		}
	}
	return out
}

// deviceMetric reads one metric of the service's /metrics per device: the lines of name whose
// labels contain with (any, when ""), by their device label.
func deviceMetric(tb testing.TB, url, name, with string) map[string]float64 {
	tb.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, with) {
			continue
		}
		_, rest, _ := strings.Cut(line, `device="`)
		dev, _, _ := strings.Cut(rest, `"`)
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			tb.Fatalf("metrics line %q: %v", line, err)
		}
		out[dev] = v
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

type fleetVerifyReport struct {
	InSync  bool    `json:"in_sync"`
	TookMS  float64 `json:"took_ms"`
	Devices []struct {
		Device  string  `json:"device"`
		Status  string  `json:"status"`
		Error   string  `json:"error"`
		TookMS  float64 `json:"took_ms"`
		Missing []any   `json:"missing"`
	} `json:"devices"`
}

// verifyFresh asks GET /v1/verify?fresh=true (every device read now, none from a shared
// reading).
func verifyFresh(tb testing.TB, url, tok string) fleetVerifyReport {
	tb.Helper()
	req, _ := http.NewRequest("GET", url+"/v1/verify?fresh=true", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 && resp.StatusCode != 409 {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("verify: %d %s", resp.StatusCode, b)
	}
	var r fleetVerifyReport
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		tb.Fatal(err)
	}
	return r
}

// peakRSS is the process's peak resident set size in KiB (VmHWM).
func peakRSS(tb testing.TB, pid int) int {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				tb.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb
		}
	}
	tb.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

func switchPrefixes(tb testing.TB, l *lab.Lab, pool netip.Prefix) []netip.Prefix {
	tb.Helper()
	var ps []netip.Prefix
	for _, line := range switchRouteLines(tb, l, pool) {
		ps = append(ps, netip.MustParsePrefix(strings.Fields(line)[2]))
	}
	return ps
}

// switchRouteLines returns sw1's static route lines whose prefix lies in pool.
func switchRouteLines(tb testing.TB, l *lab.Lab, pool netip.Prefix) []string {
	tb.Helper()
	out, err := l.Vtysh(context.Background(), "sw1", "show running-config staticd")
	if err != nil {
		tb.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		// A route line is "ip route PREFIX NEXTHOP": vtysh's answer to a 20,000-line
		// show, through a pipe, once held the start of a line ("ip route 10.142.75.128/26 10.")
		// before the whole line, so a line counts only with a next hop that parses.
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "ip" && f[1] == "route" {
			p, err := netip.ParsePrefix(f[2])
			if _, nerr := netip.ParseAddr(f[3]); err == nil && nerr == nil && inPool(pool, p) {
				lines = append(lines, strings.TrimSpace(line))
			}
		}
	}
	return lines
}

// explainExtra says which of sw1's route lines are not one host's route: prefixes held twice,
// and prefixes no live host holds, with what the registry says of them.
func explainExtra(tb testing.TB, db *pgx.Conn, lines []string) string {
	tb.Helper()
	byPrefix := map[string][]string{}
	for _, line := range lines {
		p := strings.Fields(line)[2]
		byPrefix[p] = append(byPrefix[p], line)
	}
	var out []string
	for p, ls := range byPrefix {
		var hosts []string
		rows, err := db.Query(context.Background(), `SELECT name || ' ' || address || ' ' || state FROM hosts WHERE subnet = $1::cidr`, p)
		if err == nil {
			hosts, _ = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if len(ls) > 1 || len(hosts) != 1 {
			out = append(out, fmt.Sprintf("%q: hosts %q", ls, hosts))
		}
	}
	return fmt.Sprintf("%d prefixes; not one line for one host: %s", len(byPrefix), strings.Join(out, "; "))
}

// linuxRoutes counts the routes returnpath manages (proto 202) in a Linux device's namespace.
func linuxRoutes(tb testing.TB, l *lab.Lab, ns string) int {
	tb.Helper()
	out, err := l.Exec(context.Background(), ns, "ip", "-4", "route", "show", "proto", "202")
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Count(string(out), "\n")
}

// clearSwitch removes every static route inside pool from sw1 in one bulk load.
func clearSwitch(ctx context.Context, l *lab.Lab, pool netip.Prefix) error {
	out, err := l.Vtysh(ctx, "sw1", "show running-config staticd")
	if err != nil {
		return err
	}
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "ip" && f[1] == "route" {
			if p, err := netip.ParsePrefix(f[2]); err == nil && inPool(pool, p) {
				lines = append(lines, "no "+strings.TrimSpace(line))
			}
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return l.VtyshBulk(ctx, "sw1", lines)
}

// inPool reports whether p lies inside pool (and is not, say, a default route that merely
// overlaps it).
func inPool(pool, p netip.Prefix) bool {
	return p.Bits() >= pool.Bits() && pool.Contains(p.Addr())
}

// progress prints a step's figures as soon as it is done: a long benchmark cut short (by
// -timeout or by hand) still shows the steps it finished.
func progress(format string, args ...any) {
	fmt.Printf("fleet: "+format+"\n", args...)
}
