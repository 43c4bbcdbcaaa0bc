package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/ssh"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// BenchmarkLab1000Hosts registers 1,000 hosts with auto-approval against the lab (FRR switch,
// Linux firewall, the service as its own process) and measures how long after the last
// registration every change is applied and GET /v1/verify reports the fabric in sync. It then
// measures the naive design, each change in its own sessions, on a sample of 50 changes, and
// reports the ratio for 1,000.
//
//	RETURNPATH_REQUIRE_LAB=1 go test -run '^$' -bench BenchmarkLab1000Hosts -benchtime 1x ./internal/e2e/
func BenchmarkLab1000Hosts(b *testing.B) {
	l := labtest.Require(b)
	for b.Loop() {
		ctx := context.Background()
		dbURL := pgtest.URL(b)
		url := "http://" + l.Service.String() + ":8092"
		cfg := fleetConfig(b, l, dbURL, l.Service.String()+":8092")
		svc := startService(b, cfg, url)
		boot := token(b, cfg, "boot", "bootstrap")
		viewer := token(b, cfg, "ci", "viewer")
		db, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			b.Fatal(err)
		}
		const n = 1000
		start := time.Now()
		register(b, url, boot, 0, n)
		registered := time.Now()
		waitApplied(b, db, n, 5*time.Minute)
		applied := time.Since(registered)
		if r := verifyFabric(b, url, viewer); !r.InSync {
			b.Fatalf("not in sync after applying: %+v", r)
		}
		inSync := time.Since(registered)
		b.ReportMetric(registered.Sub(start).Seconds(), "register-s")
		b.ReportMetric(applied.Seconds(), "applied-after-last-s")
		b.ReportMetric(inSync.Seconds(), "verified-after-last-s")

		// The naive design on the same lab: one session per device per change.
		naive := naivePerChange(b, l, 50)
		b.ReportMetric(naive.Seconds()*n/50, "naive-1000-est-s")
		b.ReportMetric(naive.Seconds()*n/50/inSync.Seconds(), "naive/coalesced")

		// One host at a time, auto-approved: POST /v1/hosts to active, and where the time goes.
		var lat []time.Duration
		steps := map[string][]time.Duration{}
		sessionsBefore := sessionSeconds(b, url)

		for i := range 15 {
			t0 := time.Now()
			register(b, url, boot, 5000+i, 1)
			posted := time.Now()
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/hosts/h%d?wait=active&timeout=30s", url, 5000+i), nil)
			req.Header.Set("Authorization", "Bearer "+viewer)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			done := time.Now()
			lat = append(lat, done.Sub(t0))
			for k, d := range oneHostSteps(b, db, fmt.Sprintf("h%d", 5000+i), t0, posted, done) {
				steps[k] = append(steps[k], d)
			}
		}
		// A device's step is mostly its apply session (read, push, read back on the kept
		// session): its mean over the one-host runs, from the service's own histogram.
		for dev, after := range sessionSeconds(b, url) {
			before := sessionsBefore[dev]
			if n := after.count - before.count; n > 0 {
				b.ReportMetric((after.sum-before.sum)/n*1000, "one-host-"+dev+"-session-ms")
			}
		}
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2].Seconds()*1000, "one-host-p50-ms")
		b.ReportMetric(lat[len(lat)-1].Seconds()*1000, "one-host-max-ms")
		for k, ds := range steps {
			slices.Sort(ds)
			b.ReportMetric(ds[len(ds)/2].Seconds()*1000, "one-host-"+k+"-p50-ms")
		}
		b.Logf("1,000 hosts: registered in %s; all applied %s and verified %s after the last registration; naive estimate %.1fs",
			registered.Sub(start).Round(time.Millisecond), applied.Round(time.Millisecond), inSync.Round(time.Millisecond), naive.Seconds()*n/50)
		svc.stop()
		db.Close(ctx)
		cleanDevices(b, l)
	}
}

// naivePerChange applies k changes the naive way: for each, a session to the switch to add its
// route, then a session to the firewall, each opened and closed for that change alone. It
// cleans up after itself and returns the time the k changes took.
func naivePerChange(b *testing.B, l *lab.Lab, k int) time.Duration {
	b.Helper()
	ctx := context.Background()
	pool := []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
	sw, fw := l.Devices["sw1"], l.Devices["fw1"]
	swCfg := drivers.Config{Name: "sw1", Platform: fabric.PlatformFRR, Address: sw.Mgmt, VRF: "default", Managed: pool,
		Username: sw.Username, Password: drivers.Secret(sw.Password), ConnectTimeout: 5 * time.Second, OpTimeout: 30 * time.Second,
		SSH: drivers.SSHConfig{KnownHosts: l.KnownHosts, HostKey: drivers.HostKeyStrict}}
	key, err := os.ReadFile(fw.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	fwCfg := drivers.Config{Name: "fw1", Platform: fabric.PlatformLinux, Address: fw.Mgmt, VRF: "default", Managed: pool,
		Username: fw.Username, PrivateKey: drivers.Secret(key), ConnectTimeout: 5 * time.Second, OpTimeout: 30 * time.Second,
		SSH: drivers.SSHConfig{KnownHosts: l.KnownHosts, HostKey: drivers.HostKeyStrict}, Linux: drivers.LinuxConfig{Sudo: true, Proto: 202}}
	push := func(cfg drivers.Config, f drivers.Factory, op fabric.RouteOp) {
		d, err := f.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		if _, err := d.Routes(ctx); err != nil { // read first, as the engine does
			b.Fatal(err)
		}
		if err := d.Apply(ctx, []fabric.RouteOp{op}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Routes(ctx); err != nil { // and read back
			b.Fatal(err)
		}
	}
	start := time.Now()
	for i := range k {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 31, byte(i), 0}), 24)
		push(swCfg, ssh.FRRFactory(), fabric.RouteOp{Action: fabric.ActionAdd, Route: fabric.Route{VRF: "default", Prefix: p, NextHop: netip.MustParseAddr("10.10.10.101")}})
		push(fwCfg, ssh.LinuxFactory(), fabric.RouteOp{Action: fabric.ActionAdd, Route: fabric.Route{VRF: "default", Prefix: p, NextHop: netip.MustParseAddr("10.10.20.1")}})
	}
	took := time.Since(start)
	// Clean up in two batched sessions.
	var swOps, fwOps []fabric.RouteOp
	for i := range k {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 31, byte(i), 0}), 24)
		swOps = append(swOps, fabric.RouteOp{Action: fabric.ActionDelete, Route: fabric.Route{VRF: "default", Prefix: p, NextHop: netip.MustParseAddr("10.10.10.101")}})
		fwOps = append(fwOps, fabric.RouteOp{Action: fabric.ActionDelete, Route: fabric.Route{VRF: "default", Prefix: p, NextHop: netip.MustParseAddr("10.10.20.1")}})
	}
	for _, x := range []struct {
		cfg drivers.Config
		f   drivers.Factory
		ops []fabric.RouteOp
	}{{swCfg, ssh.FRRFactory(), swOps}, {fwCfg, ssh.LinuxFactory(), fwOps}} {
		d, err := x.f.Open(ctx, x.cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Apply(ctx, x.ops); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
	return took
}

// cleanDevices removes every pool route from the lab devices, so that runs do not see each
// other's routes.
func cleanDevices(tb testing.TB, l *lab.Lab) {
	tb.Helper()
	ctx := context.Background()
	for _, sw := range []string{"sw1", "sw2"} {
		if _, ok := l.Devices[sw]; !ok {
			continue
		}
		// Tests defer this before their service stops, so its engine may still be removing
		// routes (a host deleted at the end): a route gone between the read and the removal
		// is read again, not an error.
		for attempt := 1; ; attempt++ {
			out, err := l.Vtysh(ctx, sw, "show running-config staticd")
			if err != nil {
				tb.Fatal(err)
			}
			var cmds []string
			for _, line := range splitLines(out) {
				if len(line) > 13 && line[:13] == "ip route 172." {
					cmds = append(cmds, "no "+line)
				}
			}
			if len(cmds) == 0 {
				break
			}
			_, err = l.Vtysh(ctx, sw, cmds...)
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "non-existent route") || attempt == 5 {
				tb.Fatal(err)
			}
		}
	}
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "flush", "proto", "202"); err != nil {
		tb.Fatal(err)
	}
}

// oneHostSteps splits one auto-approved host's way from POST to active into its steps, from
// the change's own record (its events and its ops' times) and the client's clock (the same
// machine's): post (the POST's round trip), pickup (change filed to its first device session
// started: the engine's wake-up, job fetch and session), one step per device in apply order
// (previous step to the device's op recorded applied: push and read-back, and for later
// stages the next job's pickup), finish (last op to the change's applied event) and notify
// (applied to the long-poll's answer at the client).
func oneHostSteps(b *testing.B, db *pgx.Conn, host string, t0, posted, done time.Time) map[string]time.Duration {
	b.Helper()
	ctx := context.Background()
	var filed, applying, applied time.Time
	var id int64
	if err := db.QueryRow(ctx, `
		SELECT c.id, c.created_at,
		       (SELECT min(at) FROM change_events WHERE change_id = c.id AND what = 'applying'),
		       (SELECT max(at) FROM change_events WHERE change_id = c.id AND what = 'applied')
		FROM changes c JOIN hosts h ON h.id = c.host_id
		WHERE h.name = $1 AND h.state = 'active' AND c.kind = 'add'`, host).Scan(&id, &filed, &applying, &applied); err != nil {
		b.Fatalf("%s: its change's record: %v", host, err)
	}
	rows, err := db.Query(ctx, `SELECT device, max(updated_at) FROM change_ops
		WHERE change_id = $1 AND NOT rollback AND status = 'applied' GROUP BY device ORDER BY 2`, id)
	if err != nil {
		b.Fatal(err)
	}
	type dev struct {
		Name string
		At   time.Time
	}
	devs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dev])
	if err != nil {
		b.Fatal(err)
	}
	steps := map[string]time.Duration{"post": posted.Sub(t0), "pickup": applying.Sub(filed), "notify": done.Sub(applied)}
	prev := applying
	for _, d := range devs {
		steps[d.Name] = d.At.Sub(prev)
		prev = d.At
	}
	steps["finish"] = applied.Sub(prev)
	return steps
}

// sessionTotals is one device's returnpath_apply_session_seconds histogram: sum and count.
type sessionTotals struct{ sum, count float64 }

// sessionSeconds reads the service's apply-session histogram per device from /metrics.
func sessionSeconds(b *testing.B, url string) map[string]sessionTotals {
	b.Helper()
	sums := deviceMetric(b, url, "returnpath_apply_session_seconds_sum", "")
	counts := deviceMetric(b, url, "returnpath_apply_session_seconds_count", "")
	out := map[string]sessionTotals{}
	for dev, sum := range sums {
		out[dev] = sessionTotals{sum: sum, count: counts[dev]}
	}
	return out
}
