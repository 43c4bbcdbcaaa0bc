package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// testHub is a started hub whose events the test can wait for, and whose connection attempts
// it can make fail (down) to keep the listener away.
type testHub struct {
	*postgres.Hub
	events  chan postgres.Event
	down    atomic.Bool   // while true, the hub cannot connect
	refused chan struct{} // one per connection attempt refused while down
}

// startHub starts a hub on db's database. setup runs before Start (e.g. db.WatchTokens).
func startHub(t *testing.T, db *postgres.DB, setup func(*postgres.Hub)) *testHub {
	t.Helper()
	th := &testHub{events: make(chan postgres.Event, 1000), refused: make(chan struct{}, 1000)}
	cfg := db.Pool.Config().ConnConfig
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if th.down.Load() {
			select {
			case th.refused <- struct{}{}:
			default:
			}
			return nil, errors.New("test: the listener is kept down")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	th.Hub = postgres.NewHub(cfg, slog.New(slog.DiscardHandler))
	if setup != nil {
		setup(th.Hub)
	}
	// Registered last: when the test sees an event, every other handler has run.
	for _, ch := range []string{postgres.ChannelHost, postgres.ChannelTokens} {
		th.Handle(ch, func(e postgres.Event) {
			if e.Kind != postgres.Notified && ch != postgres.ChannelHost {
				return // connection events once, not once per channel
			}
			select {
			case th.events <- e:
			default: // never block the hub; a test that needs more events has failed anyway
			}
		})
	}
	th.Start(context.Background())
	t.Cleanup(th.Close)
	th.waitFor(t, postgres.Connected)
	return th
}

// waitFor waits for the next event of kind, skipping others.
func (th *testHub) waitFor(t *testing.T, kind postgres.EventKind) postgres.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-th.events:
			if e.Kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no hub event of kind %d within 10s", kind)
		}
	}
}

// terminateListeners ends every listener's backend on db's database, as a DBA or a failover would.
func terminateListeners(t *testing.T, db *postgres.DB) {
	t.Helper()
	var n int
	err := db.Pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'returnpath-listener'`).Scan(&n)
	if err != nil || n == 0 {
		t.Fatalf("terminate listeners: %d terminated, %v", n, err)
	}
}

func notify(t *testing.T, db *postgres.DB, channel, payload string) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		t.Fatal(err)
	}
}

func woken(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func waitWoken(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not woken within 10s", what)
	}
}

func TestHubDispatchesByChannelAndPayload(t *testing.T) {
	t.Parallel()
	db := pgtest.Open(t)
	hub := startHub(t, db, nil)
	d1 := hub.Subscribe(postgres.ChannelHost, "d1")
	defer d1.Close()
	d2 := hub.Subscribe(postgres.ChannelHost, "d2")
	defer d2.Close()
	tokenD1 := hub.Subscribe(postgres.ChannelTokens, "d1")
	defer tokenD1.Close()
	closed := hub.Subscribe(postgres.ChannelHost, "d1")
	closed.Close()

	// Notifications arrive in commit order and are dispatched in order: once the marker is
	// seen, every earlier notification has been dispatched.
	notify(t, db, postgres.ChannelHost, "d1")
	notify(t, db, postgres.ChannelHost, "d1") // coalesces with the first
	notify(t, db, "not_ours", "d2")
	notify(t, db, postgres.ChannelHost, "marker")
	if e := hub.waitFor(t, postgres.Notified); e.Channel != postgres.ChannelHost || e.Payload != "d1" {
		t.Errorf("first event = %+v, want d1 on %s", e, postgres.ChannelHost)
	}
	for e := hub.waitFor(t, postgres.Notified); e.Payload != "marker"; e = hub.waitFor(t, postgres.Notified) {
	}
	if !woken(d1.C) {
		t.Error("the d1 subscription was not woken")
	}
	if woken(d1.C) {
		t.Error("two notifications gave two wakes: they should coalesce")
	}
	if woken(d2.C) || woken(tokenD1.C) || woken(closed.C) {
		t.Error("a subscription was woken for another payload, another channel, or after Close")
	}
	if !hub.Connected() {
		t.Error("Connected() = false while listening")
	}
}

// TestHubReconnectsAndResyncs drops the listener's connection (pg_terminate_backend), keeps it
// from reconnecting for a few attempts, then lets it back: subscribers are told to resync, and
// notifications flow again.
func TestHubReconnectsAndResyncs(t *testing.T) {
	t.Parallel()
	db := pgtest.Open(t)
	hub := startHub(t, db, nil)
	sub := hub.Subscribe(postgres.ChannelHost, "d1")
	defer sub.Close()

	hub.down.Store(true)
	terminateListeners(t, db)
	hub.waitFor(t, postgres.Disconnected)
	if hub.Connected() {
		t.Error("Connected() = true after the connection dropped")
	}
	// Missed while away: nobody listens.
	notify(t, db, postgres.ChannelHost, "d1")
	for i := range 2 {
		select {
		case <-hub.refused:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d reconnection attempts in 10s, want at least 2", i)
		}
	}
	if woken(sub.C) {
		t.Fatal("woken while disconnected")
	}
	hub.down.Store(false)
	hub.waitFor(t, postgres.Connected)
	waitWoken(t, sub.C, "resync after reconnect")

	notify(t, db, postgres.ChannelHost, "d1")
	waitWoken(t, sub.C, "notification after reconnect")
}

// TestHostNotifications checks migration 0005's triggers: a host's name is notified when its
// state changes and when its change reaches a final status, never on INSERT.
func TestHostNotifications(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, hosts := newHosts(t, "10.210.0.0/16")
	changes := postgres.NewChanges(db, inventory("10.210.0.0/16"), func(_ string, ops []fabric.RouteOp) ([]string, error) {
		return make([]string, len(ops)), nil
	}, fabric.ApprovalPolicy{FourEyes: true})
	hosts.SetChanges(changes)
	listener, err := pgx.Connect(ctx, db.Pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+postgres.ChannelHost); err != nil {
		t.Fatal(err)
	}
	// heard returns the payloads notified since the last call.
	heard := func() []string {
		t.Helper()
		notify(t, db, postgres.ChannelHost, "~marker")
		var got []string
		for {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := listener.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("waiting for the marker: %v", err)
			}
			if n.Payload == "~marker" {
				return got
			}
			got = append(got, n.Payload)
		}
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	reviewer := fabric.Actor{Name: "rita", Role: fabric.RoleReviewer}
	var d2Change int64

	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{name: "registration inserts a host and its change", want: nil, do: func() {
			for _, r := range []fabric.Registration{{Name: "d1", Address: addr("10.10.10.101")}, {Name: "d2", Address: addr("10.10.10.102")}} {
				if _, _, err := hosts.Register(ctx, bob, r); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Pool.QueryRow(ctx, `SELECT c.id FROM changes c JOIN hosts h ON h.id = c.host_id WHERE h.name = 'd2'`).Scan(&d2Change); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a change moves to a status that is not final", want: nil, do: func() {
			exec(`UPDATE changes SET status = 'applying' FROM hosts WHERE hosts.id = changes.host_id AND hosts.name = 'd1'`)
		}},
		{name: "a host row changes but not its state", want: nil, do: func() {
			exec(`UPDATE hosts SET updated_at = now(), state = state`)
		}},
		{name: "a change is rejected", want: []string{"d2"}, do: func() {
			if _, err := changes.Reject(ctx, reviewer, d2Change, "not this one"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a change is applied and its host becomes active in one transaction", want: []string{"d1"}, do: func() {
			exec(`WITH c AS (UPDATE changes SET status = 'applied' FROM hosts WHERE hosts.id = changes.host_id AND hosts.name = 'd1')
				UPDATE hosts SET state = 'active' WHERE name = 'd1'`)
		}},
		{name: "a host is removed", want: []string{"d1"}, do: func() {
			if _, err := hosts.Remove(ctx, bob, "d1"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a remediate change (no host) ends", want: nil, do: func() {
			exec(`INSERT INTO changes (kind, status, requested_by, requested_owner, plan_hash, created_at, updated_at)
				VALUES ('remediate', 'applying', 'drift-check', 'drift-check', 'h', now(), now())`)
			exec(`UPDATE changes SET status = 'applied' WHERE kind = 'remediate'`)
		}},
	}
	for _, st := range steps {
		st.do()
		if got := heard(); !slices.Equal(got, st.want) {
			t.Errorf("%s: notified %q, want %q", st.name, got, st.want)
		}
	}
}
