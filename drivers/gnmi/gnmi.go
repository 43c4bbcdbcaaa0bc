// Package gnmi is the gNMI transport: it reads and changes static routes on devices that take
// configuration over gNMI, through gnmic's pkg/api. Two encodings are supported, chosen by the
// device's platform: the OpenConfig network-instance model (route.PlatformOpenConfig, with
// vendor presets for the network-instance and protocol names) and the Nokia SR Linux native
// model (route.PlatformNokiaSRL, one next-hop-group per next hop).
//
// A batch of ops is one SetRequest, which the device applies whole or not at all. Reads are
// Get requests for configuration data in JSON_IETF, filtered to the managed prefixes. The
// driver never Replaces a subtree, so routes it does not own are never touched.
package gnmi

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmic/pkg/api"
	"github.com/openconfig/gnmic/pkg/api/target"
	"google.golang.org/grpc"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Default ports when Config.Address has port 0.
const (
	DefaultPortOpenConfig = 9339  // IANA gnmi
	DefaultPortSRL        = 57400 // SR Linux default gNMI port
)

const (
	defaultConnectTimeout = 10 * time.Second
	defaultOpTimeout      = 30 * time.Second
)

// Driver is an open gNMI session to one device.
type Driver struct {
	cfg     drivers.Config
	enc     encoding
	tgt     *target.Target
	timeout time.Duration

	closeOnce sync.Once
	closeErr  error
}

var (
	_ drivers.Driver    = (*Driver)(nil)
	_ drivers.Versioner = (*Driver)(nil)
)

// Factory returns the driver factory for both gNMI platforms.
func Factory() drivers.Factory {
	return drivers.Factory{
		Open: func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
			d, err := Open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
		Preview: Preview,
	}
}

// Open connects to the device described by cfg and checks with a Capabilities request that
// it answers and accepts the credentials. Plain gRPC (GNMI.Insecure) and TLS without server
// verification (GNMI.SkipVerify) are only used when set, and are logged as warnings.
func Open(ctx context.Context, cfg drivers.Config) (*Driver, error) {
	enc, err := newEncoding(cfg)
	if err != nil {
		return nil, &drivers.Error{Kind: drivers.KindInternal, Device: cfg.Name, Op: "connect", Err: err}
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = defaultOpTimeout
	}
	addr := cfg.Address
	if addr.Port() == 0 {
		port := uint16(DefaultPortOpenConfig)
		if cfg.Platform == route.PlatformNokiaSRL {
			port = DefaultPortSRL
		}
		addr = netip.AddrPortFrom(addr.Addr(), port)
	}
	opts := []api.TargetOption{
		api.Name(cfg.Name),
		api.Address(addr.String()),
		api.Timeout(cfg.ConnectTimeout),
	}
	if cfg.Username != "" {
		opts = append(opts, api.Username(cfg.Username))
	}
	if cfg.Password != "" {
		opts = append(opts, api.Password(cfg.Password.Reveal()))
	}
	switch {
	case cfg.GNMI.Insecure:
		slog.Warn("gnmi: plain gRPC without TLS; credentials and routes cross the network in clear text", "device", cfg.Name)
		opts = append(opts, api.Insecure(true))
	default:
		if cfg.GNMI.SkipVerify {
			slog.Warn("gnmi: TLS without verifying the device's certificate", "device", cfg.Name)
		}
		tc, err := tlsConfig(cfg.GNMI)
		if err != nil {
			return nil, &drivers.Error{Kind: drivers.KindInternal, Device: cfg.Name, Op: "connect", Err: err}
		}
		opts = append(opts, api.SkipVerify(cfg.GNMI.SkipVerify), api.TLSConfig(tc))
	}
	tgt, err := api.NewTarget(opts...)
	if err != nil {
		return nil, &drivers.Error{Kind: drivers.KindInternal, Device: cfg.Name, Op: "connect", Err: err}
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	// gnmic dials without blocking: an error here is the configuration's, not the network's.
	if err := tgt.CreateGNMIClient(cctx, grpc.WithStatsHandler(sentTracker{}), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20))); err != nil {
		return nil, &drivers.Error{Kind: drivers.KindInternal, Device: cfg.Name, Op: "connect", Err: err}
	}
	d := &Driver{cfg: cfg, enc: enc, tgt: tgt, timeout: cfg.OpTimeout}
	if _, err := tgt.Capabilities(cctx); err != nil {
		_ = tgt.Close()
		return nil, classify(cfg.Name, "connect", err, false)
	}
	return d, nil
}

// Version asks for the target's capabilities and returns its gNMI version and supported
// models, e.g. "gNMI 0.10.0, 3 models: openconfig-network-instance 4.4.1, ...".
func (d *Driver) Version(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	resp, err := d.tgt.Capabilities(ctx)
	if err != nil {
		return "", classify(d.cfg.Name, "read", err, false)
	}
	return capabilitiesLine(resp), nil
}

// capabilitiesLine renders a Capabilities response in one line: the gNMI version, then the
// number of models and the first few of them, sorted by name.
func capabilitiesLine(resp *gpb.CapabilityResponse) string {
	const shown = 3
	v := resp.GetGNMIVersion()
	if v == "" {
		v = "(version not given)"
	}
	models := make([]string, 0, len(resp.GetSupportedModels()))
	for _, m := range resp.GetSupportedModels() {
		s := m.GetName()
		if m.GetVersion() != "" {
			s += " " + m.GetVersion()
		}
		models = append(models, s)
	}
	slices.Sort(models)
	line := fmt.Sprintf("gNMI %s, %d models", v, len(models))
	if len(models) == 1 {
		line = fmt.Sprintf("gNMI %s, 1 model", v)
	}
	if len(models) > 0 {
		line += ": " + strings.Join(models[:min(shown, len(models))], ", ")
		if len(models) > shown {
			line += ", ..."
		}
	}
	return line
}

// Close ends the session. It is safe to call more than once.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.tgt.Close() })
	return d.closeErr
}

// Routes returns the configured static routes inside cfg.Managed, in every network-instance.
func (d *Driver) Routes(ctx context.Context) ([]route.Route, error) {
	snap, err := d.read(ctx, nil)
	if err != nil {
		return nil, err
	}
	return d.enc.routes(snap, d.cfg.Managed), nil
}

// read fetches the static routes (and, for SR Linux, next-hop-groups) of the given
// network-instances, or of all of them when nis is nil.
func (d *Driver) read(ctx context.Context, nis []string) (*snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	snap := newSnapshot()
	for _, p := range d.enc.readPaths(nis) {
		req := &gpb.GetRequest{Path: []*gpb.Path{p}, Type: gpb.GetRequest_CONFIG, Encoding: gpb.Encoding_JSON_IETF}
		resp, err := d.tgt.Get(ctx, req)
		if isNotFound(err) {
			continue // nothing configured there yet
		}
		if err != nil {
			return nil, classify(d.cfg.Name, "read", err, false)
		}
		if err := d.enc.decode(snap, resp.GetNotification()); err != nil {
			return nil, &drivers.Error{Kind: drivers.KindInternal, Device: d.cfg.Name, Op: "read", Err: err}
		}
	}
	return snap, nil
}

// Apply sends ops as one SetRequest. The device applies it whole or not at all, so a refusal
// lists every op of the batch with the device's gNMI status. Adding a route that exists and
// deleting one that does not (or that has another next hop) are not errors.
func (d *Driver) Apply(ctx context.Context, ops []route.RouteOp) error {
	rops, err := resolve(d.cfg, ops)
	if err != nil {
		return &drivers.Error{Kind: drivers.KindInternal, Device: d.cfg.Name, Op: "apply", Err: err}
	}
	if len(rops) == 0 {
		return nil
	}
	var snap *snapshot
	if d.enc.needsSnapshot(rops) {
		snap, err = d.read(ctx, touchedNIs(rops))
		if err != nil {
			return err
		}
	}
	req := d.enc.plan(snap, rops)
	if len(req.Delete) == 0 && len(req.Update) == 0 {
		return nil // the device already holds what ops ask for
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	sent := new(sentFlag)
	_, err = d.tgt.Set(withSentFlag(ctx, sent), req)
	if err == nil {
		return nil
	}
	de := classify(d.cfg.Name, "apply", err, sent.Load())
	if de.Kind == drivers.KindRejected {
		text := statusText(err)
		for i, op := range ops {
			de.Rejections = append(de.Rejections, drivers.Rejection{Index: i, Op: op, Output: text})
		}
	}
	return de
}

// Preview renders the SetRequest that Apply would send for ops, one line per delete or
// update, as "delete <path>" or "update <path> <json>". It cannot see the device: it assumes
// that the routes ops delete exist and that the routes ops add do not, and for SR Linux that
// no other route uses the next-hop-groups of deleted routes.
func Preview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	enc, err := newEncoding(cfg)
	if err != nil {
		return nil, err
	}
	rops, err := resolve(cfg, ops)
	if err != nil {
		return nil, err
	}
	snap := newSnapshot()
	for _, op := range rops {
		if op.action == route.ActionDelete {
			enc.assume(snap, op)
		}
	}
	return render(enc.plan(snap, rops))
}

// op is a validated RouteOp resolved to the device's network-instance.
type op struct {
	index   int
	action  route.Action
	ni      string
	prefix  netip.Prefix
	nextHop netip.Addr
}

func (o op) key() rkey { return rkey{ni: o.ni, prefix: o.prefix} }

// rkey identifies a static route on the device.
type rkey struct {
	ni     string
	prefix netip.Prefix
}

func cmpKey(a, b rkey) int {
	return cmp.Or(cmp.Compare(a.ni, b.ni), a.prefix.Addr().Compare(b.prefix.Addr()), cmp.Compare(a.prefix.Bits(), b.prefix.Bits()))
}

// resolve validates every op and maps its VRF to a network-instance. Any invalid op, or any
// prefix outside the managed pools, refuses the whole batch before anything is sent.
func resolve(cfg drivers.Config, ops []route.RouteOp) ([]op, error) {
	enc, err := newEncoding(cfg)
	if err != nil {
		return nil, err
	}
	out := make([]op, 0, len(ops))
	for i, o := range ops {
		if o.Route.VRF == "" {
			o.Route.VRF = cmp.Or(cfg.VRF, route.DefaultVRF)
		}
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("op %d (%s): %w", i, o, err)
		}
		if !route.Managed(o.Route.Prefix, cfg.Managed) {
			return nil, fmt.Errorf("op %d (%s): prefix %s is outside the managed prefixes", i, o, o.Route.Prefix)
		}
		out = append(out, op{index: i, action: o.Action, ni: enc.networkInstance(o.Route.VRF), prefix: o.Route.Prefix, nextHop: o.Route.NextHop})
	}
	return out, nil
}

func touchedNIs(ops []op) []string {
	var nis []string
	for _, o := range ops {
		if !slices.Contains(nis, o.ni) {
			nis = append(nis, o.ni)
		}
	}
	return nis
}

// simulate applies ops in order to the next hops snap holds for the keys ops touch and
// returns those keys in first-touch order with the next hops each ends with (none: the route
// is gone). An add puts its next hop on the route beside any others, as a second static route
// line would on FRR; a delete takes away exactly its own next hop and leaves the others.
// Without a snapshot every touched route is taken to be absent at first.
func simulate(snap *snapshot, ops []op) ([]rkey, map[rkey][]netip.Addr) {
	final := make(map[rkey][]netip.Addr, len(ops))
	keys := make([]rkey, 0, len(ops))
	for _, o := range ops {
		k := o.key()
		if _, seen := final[k]; !seen {
			keys = append(keys, k)
			final[k] = current(snap, k)
		}
		switch o.action {
		case route.ActionAdd:
			if !slices.Contains(final[k], o.nextHop) {
				final[k] = append(final[k], o.nextHop)
			}
		case route.ActionDelete:
			final[k] = slices.DeleteFunc(final[k], func(a netip.Addr) bool { return a == o.nextHop })
		}
	}
	return keys, final
}

// current returns the distinct next hops snap holds for k, in index order; never nil, so
// that simulate can tell a touched key from an untouched one.
func current(snap *snapshot, k rkey) []netip.Addr {
	out := []netip.Addr{}
	if snap == nil {
		return out
	}
	for _, a := range nextHops(snap.hops[k]) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// sameHops reports whether a and b hold the same next hops, in any order.
func sameHops(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// managedRoutes turns a snapshot into fabric routes inside managed, sorted.
func managedRoutes(snap *snapshot, managed []netip.Prefix, vrf func(ni string) (string, bool)) []route.Route {
	var out []route.Route
	for k, hm := range snap.hops {
		if !route.Managed(k.prefix, managed) {
			continue
		}
		v, ok := vrf(k.ni)
		if !ok {
			continue
		}
		for _, h := range nextHops(hm) {
			out = append(out, route.Route{VRF: v, Prefix: k.prefix, NextHop: h})
		}
	}
	slices.SortFunc(out, func(a, b route.Route) int {
		return cmp.Or(cmpKey(rkey{a.VRF, a.Prefix}, rkey{b.VRF, b.Prefix}), a.NextHop.Compare(b.NextHop))
	})
	return out
}
