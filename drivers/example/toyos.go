// Package toyos is an example returnpath driver written outside the returnpath module, for a
// made-up platform, ToyOS. It imports only returnpath's public packages: drivers (the
// contract), drivers/route (the value types) and, in its test, drivers/drivertest (the
// conformance suite). See docs/drivers.md in the returnpath repository.
//
// ToyOS marks the routes returnpath made with "tag returnpath", so the driver reads and
// deletes only those; it applies line by line, so a refused line leaves the others applied.
package toyos

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Platform is the name devices of this platform carry in the configuration.
const Platform route.Platform = "toyos"

// tag marks the routes the driver made.
const tag = "returnpath"

// Driver is an open session to one ToyOS device.
type Driver struct {
	cfg  drivers.Config
	sess *session
}

var _ drivers.Driver = (*Driver)(nil)

// Factory returns the factory of platform toyos, whose sessions reach the device named by
// Config.Name among devs. A real driver would dial Config.Address instead.
func Factory(devs ...*Device) drivers.Factory {
	return drivers.Factory{
		Open: func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
			for _, d := range devs {
				if d.name == cfg.Name {
					return Open(ctx, d, cfg)
				}
			}
			return nil, drivers.Errorf(drivers.KindUnreachable, cfg.Name, "connect", "no route to host %s", cfg.Address)
		},
		Preview: Preview,
	}
}

// Open logs in to dev.
func Open(ctx context.Context, dev *Device, cfg drivers.Config) (*Driver, error) {
	if err := ctx.Err(); err != nil {
		return nil, &drivers.Error{Kind: drivers.KindUnreachable, Device: cfg.Name, Op: "connect", Err: err}
	}
	sess, err := dev.login(cfg.Username, cfg.Password.Reveal())
	if errors.Is(err, errLogin) {
		// The error names the user, never the password.
		return nil, drivers.Errorf(drivers.KindAuth, cfg.Name, "connect", "login as %q refused", cfg.Username)
	}
	if err != nil {
		return nil, &drivers.Error{Kind: drivers.KindUnreachable, Device: cfg.Name, Op: "connect", Err: err}
	}
	return &Driver{cfg: cfg, sess: sess}, nil
}

// Render returns the ToyOS line for op. It builds the line from typed values only: op has
// passed Validate, so the VRF name holds no space or newline and the addresses print as
// addresses; nothing a user typed reaches the device as free text.
func Render(op route.RouteOp) string {
	verb := "add"
	if op.Action == route.ActionDelete {
		verb = "del"
	}
	return "route " + verb + " vrf " + op.Route.VRF + " " + op.Route.Prefix.String() + " via " + op.Route.NextHop.String() + " tag " + tag
}

// Preview renders ops as they would be sent, one line per op. It is pure.
func Preview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := check(cfg, ops); err != nil {
		return nil, err
	}
	lines := make([]string, len(ops))
	for i, op := range ops {
		lines[i] = Render(op)
	}
	return lines, nil
}

// check refuses a batch before anything is sent when an op is invalid or lies outside the
// managed prefixes. KindInternal: the caller has a bug, and retrying will not help.
func check(cfg drivers.Config, ops []route.RouteOp) error {
	for i, op := range ops {
		if err := op.Validate(); err != nil {
			return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "op %d (%s): %w", i, op, err)
		}
		if !route.Managed(op.Route.Prefix, cfg.Managed) {
			return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "op %d (%s): prefix outside the managed prefixes", i, op)
		}
	}
	return nil
}

// Routes returns the routes tagged as returnpath's inside the managed prefixes.
func (d *Driver) Routes(ctx context.Context) ([]route.Route, error) {
	if err := ctx.Err(); err != nil {
		return nil, &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "read", Err: err}
	}
	out, err := d.sess.Exec("show routes")
	if err != nil {
		// A read changes nothing: it is safe to retry.
		return nil, &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "read", Err: err}
	}
	rs, err := ParseRoutes(out)
	if err != nil {
		return nil, &drivers.Error{Kind: drivers.KindInternal, Device: d.cfg.Name, Op: "read", Err: err}
	}
	mine := rs[:0]
	for _, r := range rs {
		if route.Managed(r.Prefix, d.cfg.Managed) {
			mine = append(mine, r)
		}
	}
	return mine, nil
}

// ParseRoutes parses "show routes" and returns the routes tagged returnpath.
func ParseRoutes(out string) ([]route.Route, error) {
	var rs []route.Route
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 && len(f) != 7 || f[0] != "vrf" || f[3] != "via" {
			return nil, errors.New("unexpected line in show routes: " + strings.TrimSpace(line))
		}
		if len(f) != 7 || f[5] != "tag" || f[6] != tag {
			continue // not ours
		}
		p, err := netip.ParsePrefix(f[2])
		if err != nil {
			return nil, err
		}
		nh, err := netip.ParseAddr(f[4])
		if err != nil {
			return nil, err
		}
		rs = append(rs, route.Route{VRF: f[1], Prefix: p, NextHop: nh})
	}
	return rs, nil
}

// Apply sends ops line by line. A refused line is listed in the error's Rejections with the
// device's text; the other lines stay applied, as the drivers.Driver contract says. Deleting
// a route that is not there is not an error: the device is already as wanted.
func (d *Driver) Apply(ctx context.Context, ops []route.RouteOp) error {
	if err := check(d.cfg, ops); err != nil {
		return err
	}
	var rejected []drivers.Rejection
	for i, op := range ops {
		if err := ctx.Err(); err != nil {
			kind := drivers.KindIndeterminate
			if i == 0 {
				kind = drivers.KindUnreachable // nothing was sent
			}
			return &drivers.Error{Kind: kind, Device: d.cfg.Name, Op: "apply", Err: err}
		}
		out, err := d.sess.Exec(Render(op))
		if err != nil {
			// The line may or may not have reached the device: the caller must re-read it.
			return &drivers.Error{Kind: drivers.KindIndeterminate, Device: d.cfg.Name, Op: "apply", Err: err}
		}
		switch {
		case out == "":
		case op.Action == route.ActionDelete && out == "% no such route":
		default:
			rejected = append(rejected, drivers.Rejection{Index: i, Op: op, Output: out})
		}
	}
	if len(rejected) > 0 {
		return &drivers.Error{Kind: drivers.KindRejected, Device: d.cfg.Name, Op: "apply", Rejections: rejected}
	}
	return nil
}

// Close ends the session; it is safe to call more than once.
func (d *Driver) Close() error {
	d.sess.Close()
	return nil
}
