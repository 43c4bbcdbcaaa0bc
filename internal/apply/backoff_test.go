package apply_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/ssh"
	"github.com/returnpath/returnpath/internal/apply"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
	"github.com/returnpath/returnpath/internal/session"
)

// closingListener accepts TCP connections on loopback and closes each at once: a device
// whose sshd is broken. It counts the accepts, i.e. the login attempts.
type closingListener struct {
	ln      net.Listener
	accepts atomic.Int64
	mu      sync.Mutex
	at      []time.Time
}

func listenAndClose(t *testing.T) *closingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &closingListener{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepts.Add(1)
			c.mu.Lock()
			c.at = append(c.at, time.Now())
			c.mu.Unlock()
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *closingListener) addr() netip.AddrPort { return netip.MustParseAddrPort(c.ln.Addr().String()) }

// engineFor starts an engine on db whose sw1 is the real FRR SSH driver pointed at swAddr (fw1
// stays a Fake), with the given retry deadline.
func engineFor(t *testing.T, db *postgres.DB, swAddr netip.AddrPort, deadline time.Duration) (*postgres.Hosts, *postgres.Changes) {
	t.Helper()
	inv := inventory()
	inv.Devices[0].Address = swAddr
	if err := db.SyncInventory(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]drivers.Config{}
	for _, d := range inv.Devices {
		cfgs[d.Name] = drivers.Config{Name: d.Name, Platform: d.Platform, Address: d.Address, VRF: d.VRF, Managed: inv.ManagedPrefixes(),
			Username: "netops", Password: "x", ConnectTimeout: 2 * time.Second, OpTimeout: 2 * time.Second}
	}
	sw := cfgs["sw1"]
	sw.SSH.HostKey, sw.SSH.KnownHosts = drivers.HostKeyAcceptNew, filepath.Join(t.TempDir(), "known_hosts")
	cfgs["sw1"] = sw
	factories := map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: ssh.FRRFactory(), fabric.PlatformLinux: drivertest.FakeFactory(drivertest.NewFake("fw1"))}
	preview := func(dev string, ops []fabric.RouteOp) ([]string, error) {
		return drivertest.FakePreview(cfgs[dev], ops)
	}
	changes := postgres.NewChanges(db, inv, preview, autoAll)
	hosts := postgres.NewHosts(db, inv)
	hosts.SetChanges(changes)
	eng, err := apply.New(apply.Config{RetryDeadline: deadline, KickInterval: time.Minute}, db.Pool, changes, db,
		&session.Devices{Configs: cfgs, Factories: factories, Budget: db}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	changes.SetEnqueuer(eng)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	})
	return hosts, changes
}

// TestBackoffHoldsPerDevice: a switch whose sshd closes every connection at once, 10 changes
// waiting for it, and two engines (two processes) on one database. Login attempts must follow
// one backoff schedule for the device (250 ms doubling) until the retry deadline, not one per
// change or per process: within a 3 s deadline that is at most 5 logins (at 0, 0.25, 0.75,
// 1.75 and 3.75 s); the first wave of the engine made 48. No more than one apply job waits
// per device meanwhile.
func TestBackoffHoldsPerDevice(t *testing.T) {
	t.Parallel()
	db := pgtest.Open(t)
	sw := listenAndClose(t)
	hosts, changes := engineFor(t, db, sw.addr(), 3*time.Second)
	engineFor(t, db, sw.addr(), 3*time.Second) // a second process
	ctx := context.Background()
	const n = 10
	ids := make([]int64, 0, n)
	for i := range n {
		h, _, err := hosts.Register(ctx, boot, fabric.Registration{Name: fmt.Sprintf("b%d", i), Address: addr(fmt.Sprintf("10.10.10.%d", 10+i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.Change.ID)
	}
	maxQueued := 0
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			var queued int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'returnpath_apply_device' AND args->>'device' = 'sw1'
				AND state IN ('available', 'scheduled', 'retryable', 'pending')`).Scan(&queued); err != nil {
				t.Fatal(err)
			}
			maxQueued = max(maxQueued, queued)
			c, err := changes.Change(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if c.Status.Final() {
				if c.Status != fabric.ChangeRolledBack {
					t.Errorf("change %d: %s (%s), want rolled_back", id, c.Status, c.Reason)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("change %d still %s", id, c.Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	got := sw.accepts.Load()
	sw.mu.Lock()
	var gaps []string
	for i := 1; i < len(sw.at); i++ {
		gaps = append(gaps, sw.at[i].Sub(sw.at[i-1]).Round(10*time.Millisecond).String())
	}
	sw.mu.Unlock()
	t.Logf("%d logins; gaps %v; at most %d jobs queued for sw1", got, gaps, maxQueued)
	if got < 2 || got > 6 {
		t.Errorf("%d login attempts to the switch for %d changes within a 3s deadline, want 2 to 6 (one backoff schedule per device)", got, n)
	}
	if maxQueued > 1 {
		t.Errorf("up to %d apply jobs were queued for sw1 at once, want at most 1", maxQueued)
	}
}
