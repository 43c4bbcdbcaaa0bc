package main

import (
	"context"
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/fabric"
)

// reloadActor files the reroute changes of a SIGHUP and of a start with an edited file. Any
// reviewer may approve them: no person asked for them.
var reloadActor = fabric.Actor{Name: fabric.ActorReload, Role: fabric.RoleAdmin}

// configKeyRE matches the key a configuration error starts with, e.g.
// "segments[0].route_via[1].device: no device named ...".
var configKeyRE = regexp.MustCompile(`^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): (.+)$`)

// reloadError makes a configuration error an EINVALID *fabric.Error naming the key at fault,
// for the API's 422 (the configuration's own messages start with the key). A file with
// several problems names the first one's key and lists them all in the message.
func reloadError(err error) error {
	var ce *ConfigError
	if errors.As(err, &ce) && len(ce.Problems) > 0 {
		first := reloadError(ce.Problems[0]).(*fabric.Error)
		if len(ce.Problems) > 1 {
			first.Message = ce.Error()
		}
		return first
	}
	var fe *fabric.Error
	if errors.As(err, &fe) {
		return &fabric.Error{Code: fabric.EINVALID, Field: fe.Field, Message: fe.Message}
	}
	if m := configKeyRE.FindStringSubmatch(err.Error()); m != nil {
		return fabric.FieldErrorf(fabric.EINVALID, m[1], "%s", m[2])
	}
	return fabric.Errorf(fabric.EINVALID, "%s", err.Error())
}

// liveKeys are the configuration keys a reload applies; every other key of serve's takes
// effect at the next start. server and token are the client commands'.
var liveKeys = []string{"pools", "segments", "devices", "server", "token", "leases"}

// restartKeys lists the top-level keys whose values differ between running and next, other
// than those a reload applies.
func restartKeys(running, next *Config) []string {
	var out []string
	a, b := reflect.ValueOf(running).Elem(), reflect.ValueOf(next).Elem()
	for i := range a.NumField() {
		if !a.Type().Field(i).IsExported() {
			continue // the file's path and problems, not a setting
		}
		key, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("mapstructure"), ",")
		if slices.Contains(liveKeys, key) {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	return out
}

// previewWith renders ops for a device with the given settings and its platform's driver,
// without contacting it.
func previewWith(lookup func(device string) (drivers.Config, bool), factories map[fabric.Platform]drivers.Factory) fabric.PreviewFunc {
	return func(device string, ops []fabric.RouteOp) ([]string, error) {
		cfg, ok := lookup(device)
		if !ok {
			return nil, fabric.Errorf(fabric.ENOTFOUND, "device %s is not configured", device)
		}
		f, ok := factories[cfg.Platform]
		if !ok {
			return nil, fabric.Errorf(fabric.EINTERNAL, "no driver for platform %s", cfg.Platform)
		}
		return f.Preview(cfg, ops)
	}
}

// Reload re-reads the configuration file (Reread), validates it whole, syncs its inventory
// into the database, files a reroute change for every segment whose return path changed and
// has live hosts (postgres.Changes.SyncInventory), and only then swaps the new inventory and
// device settings into every component: apply, verify, registrations, the API. A file that
// does not validate, or an inventory the database refuses, changes nothing: the running
// configuration stays, the refusal is logged, and the error (EINVALID naming the key for a
// bad file) is returned. SIGHUP and POST /v1/admin/reload both end here; one reload runs at
// a time.
func (m *Main) Reload(ctx context.Context, a fabric.Actor) (fabric.ReloadResult, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	res, err := m.reload(ctx, a)
	if err != nil {
		m.Log.Error("reload refused; the running configuration stays", "by", a.Name, "err", err)
		return fabric.ReloadResult{}, err
	}
	for _, w := range res.Warnings {
		m.Log.Warn(w)
	}
	ids := make([]int64, 0, len(res.Reroutes))
	for _, c := range res.Reroutes {
		ids = append(ids, c.ID)
	}
	m.Log.Info("configuration reloaded", "by", a.Name, "changed_segments", res.Changed, "reroute_changes", ids,
		"superseded", res.Superseded, "restart_required", res.RestartRequired)
	return res, nil
}

func (m *Main) reload(ctx context.Context, a fabric.Actor) (fabric.ReloadResult, error) {
	if m.Reread == nil {
		return fabric.ReloadResult{}, fabric.Errorf(fabric.EUNAVAILABLE, "this process was not started from a configuration file")
	}
	cfg, err := m.Reread()
	if err != nil {
		return fabric.ReloadResult{}, reloadError(err)
	}
	c, err := cfg.Check()
	if err != nil {
		return fabric.ReloadResult{}, reloadError(err)
	}
	lookup := func(d string) (drivers.Config, bool) { dc, ok := c.Drivers[d]; return dc, ok }
	synced, err := m.Changes.SyncInventory(ctx, a, c.Inventory, previewWith(lookup, m.Factories))
	if err != nil {
		return fabric.ReloadResult{}, err
	}
	m.swap(cfg, c)
	res := fabric.ReloadResult{InventorySync: synced, RestartRequired: restartKeys(m.Config, cfg)}
	res.Warnings = append(c.Warnings, synced.Warnings...)
	return res, nil
}

// swap puts a synced inventory and its device settings in force in every component.
func (m *Main) swap(cfg *Config, c *Checked) {
	m.Devices.SetConfigs(c.Drivers, cfg.MaxSessions())
	m.Devices.SetIdleTimeouts(cfg.IdleTimeouts())
	m.Hosts.SetInventory(c.Inventory)
	m.Hosts.SetLeases(cfg.LeasePolicy())
	m.Changes.SetInventory(c.Inventory)
	m.API.SetInventory(c.Inventory)
	m.Verifier.SetInventory(c.Inventory)
	if m.UI != nil {
		m.UI.SetInventory(c.Inventory)
	}
	m.Inventory, m.Drivers = c.Inventory, c.Drivers
}

// wait serves until ctx ends or the server stops, reloading on every value from hup.
func (m *Main) wait(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			m.Log.Info("shutting down")
			return
		case err := <-m.served:
			m.served <- err
			return
		case <-hup:
			m.Log.Info("SIGHUP: reloading the configuration")
			_, _ = m.Reload(ctx, reloadActor) // Reload logs what it did or why it refused
		}
	}
}
