package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/ssh"
	"github.com/returnpath/returnpath/internal/events"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/postgres"
)

// BenchmarkRegisterWithSlowWebhook compares POST /v1/hosts (16 concurrent clients, as
// BenchmarkRegisterHosts) with no webhook, with a change.pending webhook whose receiver answers
// at once, and with one whose receiver takes 10 s: with a webhook each registration also queues
// its delivery in its transaction; the receiver's speed must not matter.
//
//	go test -run '^$' -bench BenchmarkRegisterWithSlowWebhook -benchtime 1x ./internal/httpapi/
func BenchmarkRegisterWithSlowWebhook(b *testing.B) {
	c := durableCluster(b)
	for _, tc := range []struct {
		name  string
		hook  bool
		delay time.Duration // the receiver's answer time
	}{{name: "no-webhook"}, {name: "fast-webhook", hook: true}, {name: "slow-webhook-10s", hook: true, delay: 10 * time.Second}} {
		b.Run(tc.name, func(b *testing.B) {
			db := createDB(b, c, "bench_hook_"+strings.ReplaceAll(tc.name, "-", "_"))
			inv := benchInventory()
			ctx := context.Background()
			if err := db.SyncInventory(ctx, inv); err != nil {
				b.Fatal(err)
			}
			secret, err := db.CreateToken(ctx, "bench", fabric.Token{Name: "bench", Role: fabric.RoleBootstrap}, nil)
			if err != nil {
				b.Fatal(err)
			}
			swCfg := drivers.Config{Name: "sw1", Platform: fabric.PlatformFRR, VRF: "default", Managed: inv.ManagedPrefixes()}
			preview := func(_ string, ops []fabric.RouteOp) ([]string, error) { return ssh.FRRPreview(swCfg, ops) }
			hosts := postgres.NewHosts(db, inv)
			changes := postgres.NewChanges(db, inv, preview, fabric.ApprovalPolicy{FourEyes: true})
			hosts.SetChanges(changes)
			if tc.hook {
				startWebhook(b, db, changes, tc.delay)
			}
			srv := httpapi.New(httpapi.Config{}, inv, hosts, db, slog.New(slog.DiscardHandler))
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
			const perRun = 3000
			for b.Loop() {
				lat, took := drive(b, client, ts.URL, secret, perRun, 0)
				slices.Sort(lat)
				pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
				b.ReportMetric(float64(len(lat))/took.Seconds(), "registrations/s")
				b.ReportMetric(pct(0.50), "p50-ms")
				b.ReportMetric(pct(0.99), "p99-ms")
				b.ReportMetric(pct(1), "max-ms")
			}
			if tc.hook {
				var queued int
				if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&queued); err != nil || queued < perRun {
					b.Fatalf("%d deliveries queued (%v), want at least %d", queued, err, perRun)
				}
			}
		})
	}
}

// startWebhook connects a webhook whose receiver answers after delay, with its workers
// running, to changes.
func startWebhook(b *testing.B, db *postgres.DB, changes *postgres.Changes, delay time.Duration) {
	b.Helper()
	rcv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}))
	b.Cleanup(rcv.Close)
	hook := events.Webhook{Name: "slow", URL: rcv.URL, Format: events.FormatJSON, Secret: drivers.Secret("bench"),
		RootCAs:      rcv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		Subscription: fabric.Subscription{Events: []fabric.EventKind{fabric.EventChangePending}}}
	d, err := events.New(events.Config{Webhooks: []events.Webhook{hook}}, db.Pool, postgres.NewDeliveries(db),
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	workers := river.NewWorkers()
	if err := d.Register(workers); err != nil {
		b.Fatal(err)
	}
	rc, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Logger: slog.New(slog.DiscardHandler),
		Queues: map[string]river.QueueConfig{events.Queue: d.QueueConfig()}, Workers: workers,
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 250 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	if err := rc.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = rc.StopAndCancel(ctx)
	})
	d.SetInserter(rc)
	changes.SetEventSink(d)
}
