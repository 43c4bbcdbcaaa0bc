package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/gnmi"
	"github.com/returnpath/returnpath/drivers/ssh"
	"github.com/returnpath/returnpath/internal/apply"
	"github.com/returnpath/returnpath/internal/events"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/httpapi"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/session"
	"github.com/returnpath/returnpath/internal/verify"
	"github.com/returnpath/returnpath/internal/webui"
)

// Main is the running service. main() and the end-to-end test start it the same way.
type Main struct {
	Config  *Config
	Log     *slog.Logger
	Migrate bool // apply migrations at start
	// Reread reads the configuration again, from the file and with the flags and environment
	// the process started with: Reload calls it. nil: the process cannot reload.
	Reread func() (*Config, error)

	Inventory *fabric.Inventory
	Drivers   map[string]drivers.Config
	Factories map[fabric.Platform]drivers.Factory
	Devices   *session.Devices
	DB        *postgres.DB
	Hub       *postgres.Hub // LISTENs for the database's notifications: long-polls, token revocations
	Hosts     *postgres.Hosts
	Changes   *postgres.Changes
	Engine    *apply.Engine
	Events    *events.Dispatcher   // outgoing webhooks
	Webhooks  *postgres.Deliveries // their deliveries
	Verifier  *verify.Verifier
	Monitor   *verify.Monitor
	API       *httpapi.Server
	UI        *webui.UI // the review desk at /ui/; nil when ui.enabled is false

	ln     net.Listener
	server *http.Server
	served chan error

	metricsLn     net.Listener // metrics.listen, when set
	metricsServer *http.Server
	metricsServed chan error

	reloadMu sync.Mutex // one reload at a time (SIGHUP, POST /v1/admin/reload)
}

// writeTimeoutMargin is how much longer than the longest long-poll (httpapi.MaxWait) the
// server gives a response: time to read the host one last time and write it.
const writeTimeoutMargin = 30 * time.Second

// Factories maps every platform to its driver.
func Factories() map[fabric.Platform]drivers.Factory {
	return map[fabric.Platform]drivers.Factory{
		fabric.PlatformFRR:          ssh.FRRFactory(),
		fabric.PlatformLinux:        ssh.LinuxFactory(),
		fabric.PlatformOpenConfig:   gnmi.Factory(),
		fabric.PlatformNokiaSRL:     gnmi.Factory(),
		fabric.PlatformAristaEOS:    ssh.EOSFactory(),
		fabric.PlatformFortiOS:      ssh.FortiOSFactory(),
		fabric.PlatformJuniperJunos: ssh.JunosFactory(),
		fabric.PlatformVyOS:         ssh.VyOSFactory(),
		fabric.PlatformPANOS:        ssh.PANOSFactory(),
		fabric.PlatformCiscoASA:     ssh.ASAFactory(),
		fabric.PlatformCiscoNXOS:    ssh.NXOSFactory(),
		fabric.PlatformCiscoIOSXE:   ssh.IOSXEFactory(),
	}
}

// Open validates the configuration, connects to the database, migrates and syncs the
// inventory. It does not listen yet.
func (m *Main) Open(ctx context.Context) error {
	// Every problem of the configuration at once, as config check lists them.
	checked, err := m.Config.Check()
	if err != nil {
		return err
	}
	inv := checked.Inventory
	for _, w := range checked.Warnings {
		m.Log.Warn(w)
	}
	m.Inventory = inv
	m.Drivers = checked.Drivers
	if m.Factories == nil {
		m.Factories = Factories()
	}
	if m.DB, err = postgres.Open(ctx, m.Config.DatabaseURL); err != nil {
		return err
	}
	if m.Migrate {
		if err := m.DB.Migrate(ctx, m.Log); err != nil {
			return err
		}
	}
	policy, err := m.Config.Policy()
	if err != nil {
		return err
	}
	m.Hub = postgres.NewHub(m.DB.Pool.Config().ConnConfig, m.Log)
	m.DB.WatchTokens(m.Hub)
	m.Hosts = postgres.NewHosts(m.DB, inv)
	m.Changes = postgres.NewChanges(m.DB, inv, m.preview, policy)
	m.Hosts.SetChanges(m.Changes)
	m.Hosts.SetPendingCap(m.Config.Limits.PendingPerSegment)
	m.Hosts.SetLeases(m.Config.LeasePolicy())
	m.API = httpapi.New(httpapi.Config{MaxBodyBytes: m.Config.MaxBodyBytes, RegistrationsPerMinute: m.Config.Limits.RegistrationsPerMinute,
		LongPollsPerToken: m.Config.Limits.LongPollsPerToken, LongPolls: m.Config.Limits.LongPolls,
		MetricsSeparate: m.Config.Metrics.Listen != "", MetricsRequireToken: m.Config.Metrics.RequireToken,
	}, inv, m.Hosts, m.DB, m.Log)
	m.API.SetChanges(m.Changes)
	m.API.SetReloader(m)
	m.API.SetHostWatcher(m.Hub)
	// Apply, verify and the drift check share each device's session budget, across processes.
	// Each device's session is kept open between uses for devices[].idle_timeout, holding
	// one of its slots.
	m.Devices = &session.Devices{Configs: m.Drivers, Factories: m.Factories, MaxSessions: m.Config.MaxSessions(), Budget: m.DB,
		Logins: session.NewLoginCounter(), IdleTimeouts: m.Config.IdleTimeouts(), Metrics: session.NewMetrics()}
	m.API.Metrics().Registry.MustRegister(m.Devices.Logins)
	m.API.Metrics().Registry.MustRegister(m.Devices.Metrics.Collectors()...)
	m.Hub.Handle(postgres.ChannelSessionWant, func(e postgres.Event) {
		switch e.Kind {
		case postgres.Notified:
			m.Devices.Yield(e.Payload) // another process waits for a slot this one keeps
		case postgres.Disconnected, postgres.Connected:
			// The slots kept sessions hold die with their database connections.
			m.Devices.Suspend(e.Kind == postgres.Disconnected)
		}
	})
	// A start syncs the inventory as a reload does: a file edited while the service was down
	// files its reroutes now rather than leave the fleet on the old paths.
	synced, err := m.Changes.SyncInventory(ctx, reloadActor, inv, m.preview)
	if err != nil {
		return fmt.Errorf("sync inventory: %w", err)
	}
	for _, w := range synced.Warnings {
		m.Log.Warn(w)
	}
	for _, ch := range synced.Reroutes {
		m.Log.Info("the inventory changed since the last start: filed a reroute change", "change", ch.ID, "segment", ch.Segment, "ops", len(ch.Ops))
	}
	m.Verifier = &verify.Verifier{Inv: inv, Devices: m.Devices, Hosts: m.Hosts, MaxAge: m.Config.Verify.MaxAge}
	m.API.SetVerifier(m.Verifier)
	if m.Config.UI.Enabled {
		if m.UI, err = webui.New(m.Config.uiConfig(), inv, m.DB, m.Changes, m.Hosts, m.Verifier, m.Log); err != nil {
			return err
		}
		// Live pages re-read when a host's state changes or a change ends, and after the
		// listener reconnects (notifications sent meanwhile were lost).
		m.Hub.Handle(postgres.ChannelHost, func(postgres.Event) { m.UI.Notify() })
		m.API.Router().Mount(webui.Prefix, m.UI.Handler())
	}
	if m.Monitor, err = verify.NewMonitor(m.Verifier, m.Config.Drift.Interval, m.API.Metrics().Registry, m.Log); err != nil {
		return err
	}
	hooks, err := m.Config.Webhooks()
	if err != nil {
		return err
	}
	m.Webhooks = postgres.NewDeliveries(m.DB)
	m.API.SetDeliveries(m.Webhooks)
	// The worker runs even with no webhook configured, so that deliveries queued before a
	// webhook was removed from the configuration end as failed rather than wait forever.
	m.Events, err = events.New(events.Config{Webhooks: hooks, RetryDeadline: m.Config.Events.RetryDeadline, BaseURL: m.Config.UI.BaseURL},
		m.DB.Pool, m.Webhooks, m.Log, m.API.Metrics().Registry)
	if err != nil {
		return err
	}
	if m.Config.Drift.Remediate == "propose" || len(hooks) > 0 {
		m.Monitor.OnDrift = m.onDrift
	}
	ac := apply.Config{Concurrency: m.Config.Apply.Concurrency, RetryDeadline: m.Config.Apply.RetryDeadline, BatchSize: m.Config.Apply.BatchSize,
		GatherWindow: m.Config.Apply.GatherWindow,
		// A verification right after a change must read the changed device again.
		AfterSession: m.Verifier.Forget,
		// The drift check runs as a River periodic job: once per interval across all
		// processes, so that two processes never file two remediation proposals.
		Periodic: []apply.Periodic{{Name: "drift_check", Interval: m.Config.Drift.Interval, Run: func(ctx context.Context) error {
			_, err := m.Monitor.Check(ctx)
			return err
		}},
			// The lease reaper runs every minute even with leases off, so that a reload
			// turning them on needs no restart (it does nothing while they are off). River
			// runs it on its leader only, but a leadership handover can overlap a run:
			// Hosts.Reap is safe to run twice at once.
			{Name: "lease_reaper", Interval: leaseReapInterval, RunOnStart: true, Run: m.reapLeases}},
		Register: m.Events.Register, Queues: map[string]river.QueueConfig{events.Queue: m.Events.QueueConfig()}}
	m.Engine, err = apply.New(ac, m.DB.Pool, m.Changes, m.DB, m.Devices, m.Log, m.API.Metrics().Registry)
	if err != nil {
		return err
	}
	m.Changes.SetEnqueuer(m.Engine)
	m.Changes.SetRetryDeadline(m.Engine.RetryDeadline())
	m.Events.SetInserter(m.Engine)
	if len(hooks) > 0 {
		// Without webhooks, registration stays one statement with no transaction around it.
		m.Changes.SetEventSink(m.Events)
	}
	return nil
}

// leaseReapInterval is how often the lease reaper looks for stale hosts: leases.ttl is at
// least a minute, so a host is reaped at most a minute after its grace ends.
const leaseReapInterval = time.Minute

// reapLeases files the removal of every active host whose lease is stale, and logs each.
func (m *Main) reapLeases(ctx context.Context) error {
	reaped, err := m.Hosts.Reap(ctx)
	for _, r := range reaped {
		m.Log.Info("lease expired: filed the host's removal", "host", r.Host, "change", r.Change, "status", r.Status)
	}
	return err
}

// onDrift tells the webhooks of drift the periodic check found, and proposes its remediation
// when drift.remediate is propose.
func (m *Main) onDrift(ctx context.Context, rep verify.Report) {
	e := fabric.Event{Kind: fabric.EventDriftFound, At: rep.CheckedAt}
	for _, d := range rep.Devices {
		if d.Status == verify.StatusDrift {
			e.Drift = append(e.Drift, fabric.DeviceDrift{Device: d.Device, Missing: len(d.Missing), Unexpected: len(d.Unexpected),
				WrongNextHop: len(d.WrongNextHop)})
		}
	}
	if err := m.Events.Emit(ctx, []fabric.Event{e}); err != nil {
		m.Log.Warn("drift.found webhooks", "err", err)
	}
	if m.Config.Drift.Remediate == "propose" {
		m.proposeRemediation(ctx, rep)
	}
}

// driftActor files remediation changes found by the periodic drift check.
var driftActor = fabric.Actor{Name: fabric.ActorDriftCheck, Role: fabric.RoleReviewer}

// proposeRemediation files a remediate change (pending review unless the approval policy
// auto-approves remediation) for drift the periodic check found, unless one is already open.
func (m *Main) proposeRemediation(ctx context.Context, rep verify.Report) {
	open, _, err := m.Changes.List(ctx, fabric.ChangeFilter{Status: fabric.ChangePending, Limit: 1000})
	if err != nil {
		m.Log.Warn("drift remediation", "err", err)
		return
	}
	for _, c := range open {
		if c.Kind == fabric.ChangeRemediate {
			return // one proposal at a time: review that one first
		}
	}
	c, err := m.Changes.Remediate(ctx, driftActor, httpapi.RemediationOps(rep))
	if err != nil {
		m.Log.Warn("drift remediation", "err", err)
		return
	}
	m.Log.Info("drift found: filed a remediate change", "change", c.ID, "ops", len(c.Ops), "status", c.Status)
}

// preview renders ops for a device with its platform's driver and the settings in force,
// without contacting it.
func (m *Main) preview(device string, ops []fabric.RouteOp) ([]string, error) {
	return previewWith(m.Devices.Lookup, m.Factories)(device, ops)
}

// Listen binds the configured address (":0" picks a free port), and metrics.listen when set,
// and starts serving.
func (m *Main) Listen(ctx context.Context) error {
	ln, err := net.Listen("tcp", m.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if m.Config.Metrics.Listen != "" {
		if m.metricsLn, err = net.Listen("tcp", m.Config.Metrics.Listen); err != nil {
			ln.Close()
			return fmt.Errorf("metrics.listen: %w", err)
		}
	}
	m.ln = ln
	m.server = m.httpServer(ctx, m.API.Handler(),
		// Long-polls (?wait=) hold responses for up to httpapi.MaxWait.
		httpapi.MaxWait+writeTimeoutMargin)
	if err := m.Engine.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		if m.metricsLn != nil {
			m.metricsLn.Close()
		}
		return fmt.Errorf("start apply engine: %w", err)
	}
	m.Hub.Start(ctx)
	m.served = make(chan error, 1)
	tlsOn := m.Config.TLS.CertFile != ""
	if tlsOn {
		m.server.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	} else if !loopback(ln.Addr()) {
		m.Log.Warn("serving plain HTTP on a non-loopback address: tokens cross the network in clear text; set tls.cert_file and tls.key_file", "addr", ln.Addr().String())
	}
	go func() {
		var err error
		if tlsOn {
			err = m.server.ServeTLS(ln, m.Config.TLS.CertFile, m.Config.TLS.KeyFile)
		} else {
			err = m.server.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		m.served <- err
	}()
	m.Log.Info("serving", "addr", ln.Addr().String(), "tls", tlsOn)
	if m.metricsLn != nil {
		m.serveMetrics(ctx, tlsOn)
	}
	return nil
}

func (m *Main) httpServer(ctx context.Context, h http.Handler, writeTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// serveMetrics serves /metrics alone on metrics.listen, with the API's TLS settings.
func (m *Main) serveMetrics(ctx context.Context, tlsOn bool) {
	m.metricsServer = m.httpServer(ctx, m.API.MetricsHandler(), 30*time.Second)
	m.metricsServed = make(chan error, 1)
	if tlsOn {
		m.metricsServer.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	} else if m.Config.Metrics.RequireToken && !loopback(m.metricsLn.Addr()) {
		m.Log.Warn("serving /metrics over plain HTTP on a non-loopback address with metrics.require_token: the scraper's token crosses the network in clear text", "addr", m.metricsLn.Addr().String())
	}
	go func() {
		var err error
		if tlsOn {
			err = m.metricsServer.ServeTLS(m.metricsLn, m.Config.TLS.CertFile, m.Config.TLS.KeyFile)
		} else {
			err = m.metricsServer.Serve(m.metricsLn)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		m.metricsServed <- err
	}()
	m.Log.Info("serving /metrics", "addr", m.metricsLn.Addr().String(), "tls", tlsOn, "require_token", m.Config.Metrics.RequireToken)
}

func loopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsLoopback()
}

// Addr is the address the service listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// MetricsAddr is the address /metrics is served on when metrics.listen is set, else "".
func (m *Main) MetricsAddr() string {
	if m.metricsLn == nil {
		return ""
	}
	return m.metricsLn.Addr().String()
}

// Close shuts down gracefully: stop accepting, finish requests in flight, close the database.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.server != nil {
		errs = append(errs, m.server.Shutdown(ctx))
		errs = append(errs, <-m.served)
	}
	if m.metricsServer != nil {
		errs = append(errs, m.metricsServer.Shutdown(ctx))
		errs = append(errs, <-m.metricsServed)
	}
	if m.Engine != nil && m.server != nil {
		errs = append(errs, m.Engine.Stop(ctx))
	}
	if m.Devices != nil {
		// Log out of every device session kept open, before the database their slots
		// live on closes.
		errs = append(errs, m.Devices.Close(ctx))
	}
	if m.Hub != nil {
		m.Hub.Close()
	}
	if m.DB != nil {
		m.DB.Close()
	}
	return errors.Join(errs...)
}

func newLogger(level string) *slog.Logger { return newLoggerTo(os.Stderr, level) }

// newLoggerTo logs JSON lines to w. A time.Duration is written as a Go duration string
// ("1.5s"), never as the JSON handler's bare nanoseconds: our own lines log durations as
// took_ms, and this covers the rest (River's, and any line that forgets).
func newLoggerTo(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.StringValue(a.Value.Duration().String())
		}
		return a
	}}))
}

func newServeCmd() *cobra.Command {
	var noMigrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API service",
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Undecodable keys are listed by Open with every other problem.
			cfg, err := readConfig(configFlag(cmd), cmd.Flags(), true)
			if err != nil {
				return err
			}
			// Registered before anything else: a SIGHUP's default action would end the process.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			m := &Main{Config: cfg, Log: newLogger(cfg.LogLevel), Migrate: !noMigrate,
				Reread: func() (*Config, error) { return loadConfig(configFlag(cmd), cmd.Flags(), true) }}
			ctx := cmd.Context()
			if err := m.Open(ctx); err != nil {
				if m.DB != nil {
					m.DB.Close()
				}
				return err
			}
			if err := m.Listen(ctx); err != nil {
				m.DB.Close()
				return err
			}
			m.wait(ctx, hup)
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return m.Close(sctx)
		},
	}
	cmd.Flags().String("listen", "", "listen address (overrides listen)")
	cmd.Flags().String("database-url", "", "PostgreSQL URL (overrides database_url)")
	cmd.Flags().BoolVar(&noMigrate, "no-migrate", false, "do not apply migrations at start (then /readyz fails until 'returnpath migrate' runs)")
	return cmd
}

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configFlag(cmd), cmd.Flags(), false)
			if err != nil {
				return err
			}
			db, err := postgres.Open(cmd.Context(), cfg.DatabaseURL)
			if err != nil {
				return err
			}
			defer db.Close()
			return db.Migrate(cmd.Context(), newLogger(cfg.LogLevel))
		},
	}
	cmd.Flags().String("database-url", "", "PostgreSQL URL (overrides database_url)")
	return cmd
}

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Inspect the configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Validate the configuration file and print warnings: exit 0 when valid, 1 listing every problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := readConfig(configFlag(cmd), nil, true)
			if err != nil {
				return exitCode{code: 1, err: err}
			}
			checked, err := cfg.Check()
			if err != nil {
				return exitCode{code: 1, err: err}
			}
			inv := checked.Inventory
			for _, w := range checked.Warnings {
				fmt.Fprintln(cmd.OutOrStdout(), "warning:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %d pools, %d segments, %d devices\n", len(inv.Pools), len(inv.Segments), len(inv.Devices))
			return nil
		},
	})
	return cmd
}
