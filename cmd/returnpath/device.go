package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/session"
)

// checkDatabaseTimeout is how long device check waits for the database to answer.
const checkDatabaseTimeout = 5 * time.Second

type deviceCheckOptions struct {
	all     bool
	output  string
	timeout time.Duration
	wait    time.Duration // for a free session slot
}

func newDeviceCmd() *cobra.Command { return deviceCommand(Factories) }

// deviceCommand builds `returnpath device`; factories gives the drivers (tests pass in-memory
// or in-process devices).
func deviceCommand(factories func() map[fabric.Platform]drivers.Factory) *cobra.Command {
	dev := &cobra.Command{
		Use:   "device",
		Short: "Talk to the configured devices directly, without the server",
	}
	var o deviceCheckOptions
	check := &cobra.Command{
		Use:   "check NAME | --all [--config FILE] [-o text|json]",
		Short: "Log in to a device and show what returnpath sees there, changing nothing: exit 0 ok, 2 when it cannot",
		Long: `Reads the configuration file (no server needed), opens a session to the device the way
the service does (within the device's max_sessions budget when the database is reachable; when
it is not, with a warning and without the budget) and prints, changing nothing on the device:
the platform's version line, the routes returnpath owns there, a preview of one add and one
delete of an example route in the device's VRF (rendered only, never sent), and the time the
session took to open and one read took.

Exit status: 0 when every device checked is fine, 2 when one could not be reached, refused the
credentials, failed host key checking or failed otherwise (the output names the error kind and
the driver's text). With --all every configured device is checked, one after another.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.all && len(args) > 0:
				return usageError("device check: give a device name or --all, not both")
			case !o.all && len(args) != 1:
				return usageError("device check: give one device name, or --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return usageError("%v", err)
			}
			o.output = format
			return runDeviceCheck(cmd, args, o, factories)
		},
	}
	f := check.Flags()
	f.BoolVar(&o.all, "all", false, "check every configured device, one after another")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
	f.DurationVar(&o.wait, "wait", 30*time.Second, "how long to wait for a free session slot of a device (max_sessions) before reporting it busy")
	f.String("database-url", "", "PostgreSQL URL for the session budget (overrides database_url)")
	addOutputFlags(check)
	dev.AddCommand(check)
	return dev
}

// checkReport is what device check prints with -o json.
type checkReport struct {
	OK       bool          `json:"ok"`
	Budget   checkBudget   `json:"session_budget"`
	Warnings []string      `json:"warnings,omitempty"`
	Devices  []deviceCheck `json:"devices"`
}

// checkBudget says whether the per-device session budget was enforced.
type checkBudget struct {
	Enforced bool   `json:"enforced"`
	Reason   string `json:"reason,omitempty"` // why not
}

// deviceCheck is the result for one device.
type deviceCheck struct {
	Device      string        `json:"device"`
	Platform    string        `json:"platform"`
	Address     string        `json:"address"`
	MaxSessions int           `json:"max_sessions"`
	OK          bool          `json:"ok"`
	FailedAt    string        `json:"failed_at,omitempty"`  // session, version, read or preview
	ErrorKind   string        `json:"error_kind,omitempty"` // a driver error kind, or "busy"
	Error       string        `json:"error,omitempty"`      // the driver's text
	Version     *string       `json:"version"`              // null: the driver does not report one
	Routes      []checkRoute  `json:"routes"`
	Preview     *checkPreview `json:"preview,omitempty"`
	OpenMS      float64       `json:"open_ms"`
	ReadMS      float64       `json:"read_ms"`
}

type checkRoute struct {
	VRF     string `json:"vrf"`
	Prefix  string `json:"prefix"`
	NextHop string `json:"next_hop"`
}

func (r checkRoute) String() string { return r.Prefix + " via " + r.NextHop + " vrf " + r.VRF }

func toCheckRoute(r fabric.Route) checkRoute {
	return checkRoute{VRF: r.VRF, Prefix: r.Prefix.String(), NextHop: r.NextHop.String()}
}

// checkPreview is the native rendering of one add and one delete of an example route.
type checkPreview struct {
	Example checkRoute `json:"example"`
	Add     []string   `json:"add"`
	Delete  []string   `json:"delete"`
}

func runDeviceCheck(cmd *cobra.Command, args []string, o deviceCheckOptions, factories func() map[fabric.Platform]drivers.Factory) error {
	switch o.output {
	case "text", "json":
	default:
		return usageError("--output: want text or json, got %q", o.output)
	}
	cfg, err := loadConfig(configFlag(cmd), cmd.Flags(), true)
	if err != nil {
		return exitCode{code: exitUnverified, err: err}
	}
	if err := cfg.Validate(); err != nil {
		return exitCode{code: exitUnverified, err: err}
	}
	inv, _, err := cfg.Inventory()
	if err != nil {
		return exitCode{code: exitUnverified, err: err}
	}
	dcs, err := cfg.DriverConfigs(inv)
	if err != nil {
		return exitCode{code: exitUnverified, err: err}
	}
	var names []string
	if o.all {
		for _, d := range inv.Devices {
			names = append(names, d.Name)
		}
	} else {
		if _, ok := inv.Device(args[0]); !ok {
			var known []string
			for _, d := range inv.Devices {
				known = append(known, d.Name)
			}
			return usageError("no device %q in the configuration (devices: %s)", term(args[0]), strings.Join(known, ", "))
		}
		names = args
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()

	devs := &session.Devices{Configs: dcs, Factories: factories(), MaxSessions: cfg.MaxSessions()}
	report := checkReport{OK: true, Budget: checkBudget{Enforced: true}}
	db, err := openBudget(ctx, cfg.DatabaseURL)
	if err != nil {
		report.Budget = checkBudget{Reason: "database unreachable"}
		w := fmt.Sprintf("database unreachable (%v): checking without the per-device session budget (max_sessions)", err)
		report.Warnings = append(report.Warnings, w)
		tprintf(cmd.ErrOrStderr(), "returnpath: warning: %s\n", w)
	} else {
		defer db.Close()
		devs.Budget = db
	}

	failed := 0
	for _, name := range names {
		c := checkDevice(ctx, inv, devs, name, o.wait)
		if !c.OK {
			failed++
			report.OK = false
		}
		report.Devices = append(report.Devices, c)
	}
	if err := writeDeviceChecks(cmd.OutOrStdout(), o.output, report); err != nil {
		return exitCode{code: exitUnverified, err: err}
	}
	if failed > 0 {
		if len(names) == 1 {
			d := report.Devices[0]
			return exitCode{code: exitUnverified, err: fmt.Errorf("device %s: check failed (%s)", d.Device, d.ErrorKind)}
		}
		return exitCode{code: exitUnverified, err: fmt.Errorf("%d of %d devices failed the check", failed, len(names))}
	}
	return nil
}

// openBudget connects to the database that holds the session budget's advisory locks, and
// checks that it answers.
func openBudget(ctx context.Context, url string) (*postgres.DB, error) {
	if url == "" {
		return nil, errors.New("database_url is empty")
	}
	db, err := postgres.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, checkDatabaseTimeout)
	defer cancel()
	if err := db.Pool.Ping(pctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Where a device check stopped.
const (
	stageSession = "session"
	stageVersion = "version"
	stageRead    = "read"
	stagePreview = "preview"
)

// checkDevice opens one session to the device, reads it and renders the preview. It never
// calls Apply.
func checkDevice(ctx context.Context, inv *fabric.Inventory, devs *session.Devices, name string, wait time.Duration) deviceCheck {
	dev, _ := inv.Device(name)
	addr := dev.Address.String()
	if dev.Address.Port() == 0 {
		addr = dev.Address.Addr().String() // the transport's default port
	}
	c := deviceCheck{Device: name, Platform: string(dev.Platform), Address: addr, MaxSessions: devs.Max(name), Routes: []checkRoute{}}
	fail := func(stage, kind string, err error) deviceCheck {
		c.OK, c.FailedAt, c.ErrorKind, c.Error = false, stage, kind, err.Error()
		return c
	}
	actx, cancel := context.WithTimeout(ctx, wait)
	lease, err := devs.Acquire(actx, name)
	cancel()
	if session.IsBusy(err) {
		return fail(stageSession, "busy", err)
	}
	if err != nil {
		return fail(stageSession, drivers.KindOf(err).String(), err)
	}
	defer lease.Release()

	start := time.Now()
	d, err := lease.Open(ctx)
	c.OpenMS = millis(time.Since(start))
	if err != nil {
		return fail(stageSession, drivers.KindOf(err).String(), err)
	}
	defer d.Close()

	if v, ok := d.(drivers.Versioner); ok {
		line, err := v.Version(ctx)
		if err != nil {
			return fail(stageVersion, drivers.KindOf(err).String(), err)
		}
		c.Version = &line
	}

	start = time.Now()
	routes, err := d.Routes(ctx)
	c.ReadMS = millis(time.Since(start))
	if err != nil {
		return fail(stageRead, drivers.KindOf(err).String(), err)
	}
	slices.SortFunc(routes, compareRoutes)
	for _, r := range routes {
		c.Routes = append(c.Routes, toCheckRoute(r))
	}

	if ex, ok := exampleRoute(inv, dev); ok {
		p := &checkPreview{Example: toCheckRoute(ex)}
		_, f, err := devs.Config(name)
		if err == nil && f.Preview == nil {
			err = errors.New("the driver renders no preview")
		}
		if err == nil {
			p.Add, err = f.Preview(lease.Config, []fabric.RouteOp{{Action: fabric.ActionAdd, Route: ex}})
		}
		if err == nil {
			p.Delete, err = f.Preview(lease.Config, []fabric.RouteOp{{Action: fabric.ActionDelete, Route: ex}})
		}
		if err != nil {
			return fail(stagePreview, drivers.KindOf(err).String(), err)
		}
		c.Preview = p
	}
	c.OK = true
	return c
}

func compareRoutes(a, b fabric.Route) int {
	if c := strings.Compare(a.VRF, b.VRF); c != 0 {
		return c
	}
	if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
		return c
	}
	if c := a.Prefix.Bits() - b.Prefix.Bits(); c != 0 {
		return c
	}
	return a.NextHop.Compare(b.NextHop)
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// exampleRoute is the route device check previews on dev: the last subnet of the pool of the
// first segment whose return path has dev, via that hop's next hop (for next_hop: host, the
// segment's first host address), in dev's VRF. A device on no return path has none.
func exampleRoute(inv *fabric.Inventory, dev fabric.Device) (fabric.Route, bool) {
	for _, seg := range inv.Segments {
		for _, hop := range seg.RouteVia {
			if !slices.Contains(hop.Members(), dev.Name) {
				continue
			}
			poolName, hosts := seg.Pool, seg.Hosts
			if poolName == "" { // an IPv6-only segment
				poolName, hosts = seg.Pool6, seg.Hosts6
			}
			pool, ok := inv.Pool(poolName)
			if !ok {
				return fabric.Route{}, false
			}
			subnet, ok := pool.Subnet(pool.Size() - 1)
			if !ok {
				return fabric.Route{}, false
			}
			vrf := dev.VRF
			if vrf == "" {
				vrf = fabric.DefaultVRF
			}
			return fabric.Route{VRF: vrf, Prefix: subnet, NextHop: hop.NextHop.Resolve(hosts.Addr().Next())}, true
		}
	}
	return fabric.Route{}, false
}

func writeDeviceChecks(w io.Writer, format string, r checkReport) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	for i, c := range r.Devices {
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeDeviceCheck(w, c, r.Budget)
	}
	if len(r.Devices) > 1 {
		ok := 0
		for _, c := range r.Devices {
			if c.OK {
				ok++
			}
		}
		fmt.Fprintf(w, "\n%d of %d devices ok\n", ok, len(r.Devices))
	}
	return nil
}

// writeDeviceCheck prints one device's result for a person. Everything that came from the
// device or the configuration goes through term.
func writeDeviceCheck(w io.Writer, c deviceCheck, b checkBudget) {
	tprintf(w, "device %s (%s at %s)\n", c.Device, c.Platform, c.Address)
	if b.Enforced {
		fmt.Fprintf(w, "  session budget: max_sessions %d, one slot held for this check\n", c.MaxSessions)
	} else {
		tprintf(w, "  session budget: not enforced (%s)\n", b.Reason)
	}
	failed := func() { tprintf(w, "  FAILED (%s): %s\n", c.ErrorKind, c.Error) }
	if c.FailedAt == stageSession {
		if c.OpenMS > 0 {
			fmt.Fprintf(w, "  session:  not opened after %s\n", msText(c.OpenMS))
		}
		failed()
		return
	}
	fmt.Fprintf(w, "  session:  opened in %s\n", msText(c.OpenMS))
	if c.Version != nil {
		tprintf(w, "  version:  %s\n", *c.Version)
	} else if c.FailedAt != stageVersion {
		fmt.Fprintln(w, "  version:  not reported by this driver")
	}
	if c.FailedAt == stageVersion || c.FailedAt == stageRead {
		failed()
		return
	}
	fmt.Fprintf(w, "  read:     routes read in %s\n", msText(c.ReadMS))
	fmt.Fprintf(w, "  routes returnpath owns: %d\n", len(c.Routes))
	for _, r := range c.Routes {
		tprintf(w, "    %s\n", r)
	}
	switch {
	case c.FailedAt == stagePreview:
		failed()
		return
	case c.Preview == nil:
		fmt.Fprintln(w, "  preview:  none (the device is on no segment's route_via)")
	default:
		tprintf(w, "  preview of an example change, rendered only, never sent (%s):\n", c.Preview.Example)
		for _, l := range c.Preview.Add {
			tprintf(w, "    add:    %s\n", l)
		}
		for _, l := range c.Preview.Delete {
			tprintf(w, "    delete: %s\n", l)
		}
	}
	fmt.Fprintln(w, "  OK: nothing was changed on the device")
}
