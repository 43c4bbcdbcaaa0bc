package ssh

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
)

// TestFRRRejectedLine pushes a batch in which one line is one FRR refuses, through the
// driver's own push, and checks that the refusal carries vtysh's text, lands on that op
// alone, and that the lines around it were applied. FRR 8.4 accepts every well-formed
// static route, so no valid op can provoke a refusal; the bad line is substituted after
// rendering.
func TestFRRRejectedLine(t *testing.T) {
	l := labtest.Require(t)
	ctx := t.Context()
	d, err := OpenFRR(ctx, frrConfig(l))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ops := []route.RouteOp{
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.200.0/24", "10.10.10.101")},
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.201.0/24", "10.10.10.101")},
		{Action: route.ActionAdd, Route: mustRoute("default", "10.210.202.0/24", "10.10.10.102")},
	}
	t.Cleanup(func() {
		c, err := OpenFRR(context.Background(), frrConfig(l))
		if err != nil {
			t.Fatalf("cleanup: %v", err)
		}
		defer c.Close()
		if err := c.Apply(context.Background(), []route.RouteOp{ops[0].Inverse(), ops[2].Inverse()}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	cmds := frrBatch(ops)
	cmds[2] = "ip route 10.210.201.0/33 10.10.10.101" // a prefix length FRR's parser refuses
	if err := d.nd.AcquirePriv("configuration"); err != nil {
		t.Fatal(err)
	}
	transcript, err := d.push(ctx, cmds)
	if err != nil {
		t.Fatal(err)
	}
	err = frrOutcome(d.cfg.Name, ops, cmds, transcript)
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected {
		t.Fatalf("outcome = %v, want rejected", err)
	}
	want := []drivers.Rejection{{Index: 1, Op: ops[1], Output: "% Unknown command: ip route 10.210.201.0/33 10.10.10.101"}}
	if diff := cmp.Diff(de.Rejections, want, routeCmp); diff != "" {
		t.Errorf("rejections (-got +want):\n%s", diff)
	}
	got, err := d.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, []route.Route{ops[0].Route, ops[2].Route}, routeCmp); diff != "" {
		t.Errorf("routes after the batch (-got +want):\n%s", diff)
	}
}

// TestFRRKeyAuth opens vtysh with the lab's client key instead of the password.
func TestFRRKeyAuth(t *testing.T) {
	l := labtest.Require(t)
	cfg := frrConfig(l)
	key, err := os.ReadFile(l.Devices["sw1"].KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password, cfg.PrivateKey = "", drivers.Secret(key)
	d, err := OpenFRR(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Routes(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestAcceptNewHostKey checks that accept-new trusts an unknown key once, records it, and
// that strict checking then accepts the recorded key; a changed key still fails.
func TestAcceptNewHostKey(t *testing.T) {
	l := labtest.Require(t)
	for _, cfg := range []drivers.Config{frrConfig(l), linuxConfig(l)} {
		t.Run(cfg.Name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			cfg.SSH = drivers.SSHConfig{KnownHosts: kh, HostKey: drivers.HostKeyAcceptNew}
			for i := range 2 {
				d, err := Open(t.Context(), cfg)
				if err != nil {
					t.Fatalf("open %d with accept-new: %v", i, err)
				}
				d.Close()
			}
			b, err := os.ReadFile(kh)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), "\n"); n != 1 {
				t.Errorf("known_hosts has %d lines after two opens, want 1:\n%s", n, b)
			}
			cfg.SSH.HostKey = drivers.HostKeyStrict
			d, err := Open(t.Context(), cfg)
			if err != nil {
				t.Fatalf("strict open with the recorded key: %v", err)
			}
			d.Close()
			// A different key for the same address fails even with accept-new.
			other := l.Devices["sw1"].HostKeyFile
			if cfg.Name == "sw1" {
				other = l.Devices["fw1"].HostKeyFile
			}
			pub, err := os.ReadFile(other)
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(string(pub))
			line := cfg.Address.Addr().String() + " " + f[0] + " " + f[1] + "\n"
			if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg.SSH.HostKey = drivers.HostKeyAcceptNew
			_, err = Open(t.Context(), cfg)
			if drivers.KindOf(err) != drivers.KindHostKey {
				t.Fatalf("accept-new with a changed key = %v, want host_key", err)
			}
		})
	}
}

// TestConnectTimeout dials an address on the management network where nothing answers:
// the connect timeout bounds the wait and the error is unreachable.
func TestConnectTimeout(t *testing.T) {
	l := labtest.Require(t)
	cfg := linuxConfig(l)
	cfg.Address = netip.AddrPortFrom(netip.MustParseAddr("198.18.0.250"), 22)
	cfg.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Open(t.Context(), cfg)
	elapsed := time.Since(start)
	if drivers.KindOf(err) != drivers.KindUnreachable {
		t.Fatalf("Open = %v, want unreachable", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Open took %v with a 300ms connect timeout", elapsed)
	}
}

// TestLinuxForeignSameKey plants a foreign route on the very prefix the
// driver then adds: the add is refused with the kernel's text and the foreign route stays.
func TestLinuxForeignSameKey(t *testing.T) {
	l := labtest.Require(t)
	ctx := t.Context()
	h := linuxHarness(t, l, linuxConfig(l))
	foreign := mustRoute("default", "10.210.210.0/24", "10.10.20.1")
	if err := h.Plant(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Remove(context.Background(), foreign) })
	d, err := OpenLinux(ctx, linuxConfig(l))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ours := mustRoute("default", "10.210.210.0/24", "10.10.20.3")
	err = d.Apply(ctx, []route.RouteOp{{Action: route.ActionAdd, Route: ours}})
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected || len(de.Rejections) != 1 || !strings.Contains(de.Rejections[0].Output, "File exists") {
		t.Fatalf("Apply over a foreign route = %v, want one rejection with File exists", err)
	}
	all, err := h.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	drivertest.SortRoutes(all)
	found := false
	for _, r := range all {
		if r == ours {
			t.Errorf("our route %s was installed over the foreign one", ours)
		}
		found = found || r == foreign
	}
	if !found {
		t.Errorf("foreign route %s is gone", foreign)
	}
}

var routeCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// TestCancelMidBatch cancels the caller's context while a 5,000-route batch is on its way
// and checks the contract on what came back against what the device then holds: unreachable
// only if nothing landed, nil only if everything did, otherwise indeterminate. FRR commits
// the bulk-load wrapper's lines at its end, so the cancel there is timed (its batch takes
// seconds); on Linux it fires as soon as the first route shows up.
func TestCancelMidBatch(t *testing.T) {
	l := labtest.Require(t)
	for _, tc := range []struct {
		cfg drivers.Config
		nh  netip.Addr
	}{{frrConfig(l), frrNH}, {linuxConfig(l), linuxNH}} {
		t.Run(tc.cfg.Name, func(t *testing.T) {
			ops := benchOps(benchRoutes, route.ActionAdd, tc.nh)
			t.Cleanup(func() { removeAll(t, tc.cfg, quiescentRoutes(t, l, tc.cfg)) })
			d, err := Open(t.Context(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cfg.Platform == route.PlatformFRR {
				time.AfterFunc(300*time.Millisecond, cancel)
			} else {
				probe, err := Open(t.Context(), tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer probe.Close()
				go func() {
					for ctx.Err() == nil {
						if rs, err := probe.Routes(ctx); err == nil && len(rs) > 0 {
							cancel()
							return
						}
						time.Sleep(5 * time.Millisecond) // polling the device
					}
				}()
			}
			err = d.Apply(ctx, ops)
			landed := len(quiescentRoutes(t, l, tc.cfg))
			t.Logf("Apply = %v; %d of %d routes landed", err, landed, len(ops))
			switch k := drivers.KindOf(err); {
			case err == nil:
				if landed != len(ops) {
					t.Errorf("Apply = nil but %d of %d routes landed", landed, len(ops))
				}
			case k == drivers.KindUnreachable:
				if landed != 0 {
					t.Errorf("Apply = unreachable but %d routes landed", landed)
				}
			case k != drivers.KindIndeterminate:
				t.Errorf("Apply cancelled mid-batch: kind %s, want indeterminate", k)
			}
		})
	}
}

// quiescentRoutes waits until the device is done with a dropped session and returns its
// routes. vtysh keeps reading the lines that reached it after the session dropped and
// commits the bulk-load wrapper's pending lines when it exits, so on FRR this waits for the
// namespace's vtysh processes to be gone; then, on both platforms, until two reads agree.
func quiescentRoutes(t *testing.T, l *lab.Lab, cfg drivers.Config) []route.Route {
	if cfg.Platform == route.PlatformFRR {
		ns := l.Devices[cfg.Name].Namespace
		// The dropped session's vtysh still works through the lines that reached its pipe
		// (about 2,000 of them), each a round trip to staticd and zebra: about a second on an
		// idle machine, many times that when make test loads both cores. The bound only
		// stops a hung test; the contract checked is the state once the device is quiet.
		const bound = 5 * time.Minute
		start := time.Now()
		// pgrep fails when no process matches: the dropped session's vtysh has exited.
		for _, err := l.Exec(context.Background(), cfg.Name, "pgrep", "-f", "vtysh -N "+ns+" "); err == nil; _, err = l.Exec(context.Background(), cfg.Name, "pgrep", "-f", "vtysh -N "+ns+" ") {
			if time.Since(start) > bound {
				ps, _ := l.Exec(context.Background(), cfg.Name, "pgrep", "-a", "-f", "vtysh -N "+ns+" ")
				t.Fatalf("vtysh of the dropped session still runs after %v:\n%s", bound, ps)
			}
			time.Sleep(100 * time.Millisecond) // polling the device
		}
		t.Logf("the dropped session's vtysh exited %v after the call returned", time.Since(start).Round(time.Millisecond))
	}
	d, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	defer d.Close()
	var rs []route.Route
	for prev := -1; ; prev = len(rs) {
		if rs, err = d.Routes(context.Background()); err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(rs) == prev {
			return rs
		}
		time.Sleep(300 * time.Millisecond) // polling the device for quiescence
	}
}

// removeAll deletes rs through a fresh session.
func removeAll(t *testing.T, cfg drivers.Config, rs []route.Route) {
	d, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	defer d.Close()
	del := make([]route.RouteOp, len(rs))
	for i, r := range rs {
		del[i] = route.RouteOp{Action: route.ActionDelete, Route: r}
	}
	if err := d.Apply(context.Background(), del); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// TestFRRIPv6 adds, reads back and deletes IPv6 routes (configuration; the lab has no IPv6
// next hop to install them through), next to an IPv4 one in the same batch.
func TestFRRIPv6(t *testing.T) {
	l := labtest.Require(t)
	ctx := t.Context()
	cfg := frrConfig(l)
	cfg.Managed = append(cfg.Managed, netip.MustParsePrefix("2001:db8:100::/48"))
	d, err := OpenFRR(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rs := []route.Route{
		mustRoute("default", "10.210.220.0/24", "10.10.10.101"),
		mustRoute("default", "2001:db8:100:1::/64", "2001:db8::1"),
		mustRoute("blue", "2001:db8:100:2::/64", "fe80::1"),
	}
	add := make([]route.RouteOp, len(rs))
	for i, r := range rs {
		add[i] = route.RouteOp{Action: route.ActionAdd, Route: r}
	}
	if err := d.Apply(ctx, add); err != nil {
		t.Fatal(err)
	}
	got, err := d.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	drivertest.SortRoutes(got)
	want := append([]route.Route(nil), rs...)
	drivertest.SortRoutes(want)
	if diff := cmp.Diff(got, want, routeCmp); diff != "" {
		t.Errorf("Routes (-got +want):\n%s", diff)
	}
	del := make([]route.RouteOp, len(rs))
	for i, op := range add {
		del[i] = op.Inverse()
	}
	if err := d.Apply(ctx, del); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Routes(ctx); err != nil || len(got) != 0 {
		t.Errorf("Routes after delete = %v, %v; want none", got, err)
	}
}
