package drivertest

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Fake is an in-memory device. Its routes persist across sessions, so a test can open, apply,
// close and reopen exactly as the apply engine does against a real device. Latency and
// failures can be injected and changed at any time with Set; counters record how sessions and
// ops were used so that tests can assert, for example, that a device never had two sessions at
// once or that no op was applied twice.
//
// Like FRR, the Fake cannot mark which routes returnpath created: every static route inside
// the managed prefixes is visible to Routes. A Fake is safe for concurrent use.
type Fake struct {
	name string

	mu     sync.Mutex
	routes map[route.Route]struct{}
	opts   fakeOptions

	sessions   int
	open       int
	maxOpen    int
	opsApplied int
	breaks     int // sessions broken by WithIndeterminateAfter
	applied    []route.RouteOp
	perRoute   map[route.Route]int
}

type fakeOptions struct {
	username      string
	password      drivers.Secret
	openLatency   time.Duration
	opLatency     time.Duration
	unreachable   bool
	rejects       map[netip.Prefix]string
	vrfs          map[string]bool // nil: every valid VRF exists
	indeterminate int             // fail after this many more ops; <0 disabled
}

// FakeOption configures a Fake; pass options to NewFake or, at any time, to Fake.Set.
type FakeOption func(*fakeOptions)

// WithCredentials makes the Fake refuse sessions whose username or password differ (KindAuth).
// Without it any credentials are accepted.
func WithCredentials(username string, password drivers.Secret) FakeOption {
	return func(o *fakeOptions) { o.username, o.password = username, password }
}

// WithLatency delays every session open by open and every op (and every read) by op. Both
// delays end early, with the context's error, when the caller's context is done.
func WithLatency(open, op time.Duration) FakeOption {
	return func(o *fakeOptions) { o.openLatency, o.opLatency = open, op }
}

// WithUnreachable makes opening a session fail with KindUnreachable while on is true.
func WithUnreachable(on bool) FakeOption {
	return func(o *fakeOptions) { o.unreachable = on }
}

// WithReject makes the Fake refuse every op on prefix p with the device text text. An empty
// text removes the rule.
func WithReject(p netip.Prefix, text string) FakeOption {
	return func(o *fakeOptions) {
		if o.rejects == nil {
			o.rejects = map[netip.Prefix]string{}
		}
		if text == "" {
			delete(o.rejects, p)
			return
		}
		o.rejects[p] = text
	}
}

// WithVRFs limits the VRFs the Fake has to the default VRF and names; an op in any other VRF
// is rejected with the text "% VRF <name> does not exist". Without it every valid VRF exists.
func WithVRFs(names ...string) FakeOption {
	return func(o *fakeOptions) {
		o.vrfs = map[string]bool{route.DefaultVRF: true}
		for _, n := range names {
			o.vrfs[n] = true
		}
	}
}

// WithIndeterminateAfter makes the session break after n more ops have been applied: the op
// after them is not applied and Apply returns KindIndeterminate, as a real session that drops
// mid-batch would. A negative n disables the failure.
func WithIndeterminateAfter(n int) FakeOption {
	return func(o *fakeOptions) { o.indeterminate = n }
}

// NewFake returns an empty Fake device called name.
func NewFake(name string, opts ...FakeOption) *Fake {
	f := &Fake{
		name:     name,
		routes:   map[route.Route]struct{}{},
		perRoute: map[route.Route]int{},
		opts:     fakeOptions{indeterminate: -1},
	}
	f.Set(opts...)
	return f
}

// Set changes the Fake's options; sessions already open see the change on their next call.
func (f *Fake) Set(opts ...FakeOption) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range opts {
		o(&f.opts)
	}
}

// Name returns the device's name.
func (f *Fake) Name() string { return f.name }

// Factory returns a drivers.Factory whose sessions all reach f, whatever the config's name
// or address.
func (f *Fake) Factory() drivers.Factory {
	return drivers.Factory{
		Open: func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
			return f.Open(ctx, cfg)
		},
		Preview: FakePreview,
	}
}

// FakeFactory returns a drivers.Factory that routes each session to the Fake named by the
// config's Name, so that one factory can stand for a whole fleet. Opening a name that has no
// Fake fails with KindUnreachable.
func FakeFactory(fakes ...*Fake) drivers.Factory {
	byName := make(map[string]*Fake, len(fakes))
	for _, f := range fakes {
		byName[f.name] = f
	}
	return drivers.Factory{
		Open: func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
			f, ok := byName[cfg.Name]
			if !ok {
				return nil, drivers.Errorf(drivers.KindUnreachable, cfg.Name, "connect", "no such fake device")
			}
			return f.Open(ctx, cfg)
		},
		Preview: FakePreview,
	}
}

// FakePreview renders ops the way the Fake would log them, one line per op. It validates
// every op exactly as Apply does.
func FakePreview(cfg drivers.Config, ops []route.RouteOp) ([]string, error) {
	if err := checkOps(cfg, ops); err != nil {
		return nil, err
	}
	lines := make([]string, len(ops))
	for i, op := range ops {
		lines[i] = op.String()
	}
	return lines, nil
}

// checkOps refuses a batch before anything is sent when an op is invalid or lies outside the
// managed prefixes, as every driver must.
func checkOps(cfg drivers.Config, ops []route.RouteOp) error {
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

// Open starts a session, as a transport's Open would.
func (f *Fake) Open(ctx context.Context, cfg drivers.Config) (*FakeDriver, error) {
	f.mu.Lock()
	o := f.opts
	f.mu.Unlock()
	if err := wait(ctx, o.openLatency); err != nil {
		return nil, &drivers.Error{Kind: drivers.KindUnreachable, Device: cfg.Name, Op: "connect", Err: err}
	}
	if o.unreachable {
		return nil, drivers.Errorf(drivers.KindUnreachable, cfg.Name, "connect", "connection refused")
	}
	if o.password != "" && (cfg.Username != o.username || cfg.Password != o.password) {
		return nil, drivers.Errorf(drivers.KindAuth, cfg.Name, "connect", "unable to authenticate as %q", cfg.Username)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions++
	f.open++
	f.maxOpen = max(f.maxOpen, f.open)
	return &FakeDriver{fake: f, cfg: cfg}, nil
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Plant adds r to the device out of band, as an operator typing on the device would.
func (f *Fake) Plant(r route.Route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[r] = struct{}{}
}

// Remove deletes r from the device out of band.
func (f *Fake) Remove(r route.Route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.routes, r)
}

// AllRoutes returns every route the device holds, managed or not, sorted.
func (f *Fake) AllRoutes() []route.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := make([]route.Route, 0, len(f.routes))
	for r := range f.routes {
		rs = append(rs, r)
	}
	SortRoutes(rs)
	return rs
}

// Breaks returns how many times a session broke mid-batch (WithIndeterminateAfter).
func (f *Fake) Breaks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.breaks
}

// Sessions returns how many sessions have been opened.
func (f *Fake) Sessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions
}

// OpenSessions returns how many sessions are open now.
func (f *Fake) OpenSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open
}

// MaxConcurrentSessions returns the largest number of sessions that were open at once.
func (f *Fake) MaxConcurrentSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxOpen
}

// OpsApplied returns how many ops have been applied on route r (adds and deletes; rejected
// ops are not counted).
func (f *Fake) OpsApplied(r route.Route) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perRoute[r]
}

// Applied returns every op the device applied, in order.
func (f *Fake) Applied() []route.RouteOp {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

// FakeDriver is one session to a Fake. It implements drivers.Driver and
// drivers.InstalledReader.
type FakeDriver struct {
	fake *Fake
	cfg  drivers.Config

	mu     sync.Mutex
	closed bool
}

var (
	_ drivers.Driver          = (*FakeDriver)(nil)
	_ drivers.InstalledReader = (*FakeDriver)(nil)
)

// Routes returns the device's routes inside the managed prefixes.
func (d *FakeDriver) Routes(ctx context.Context) ([]route.Route, error) {
	if err := d.check("read"); err != nil {
		return nil, err
	}
	f := d.fake
	f.mu.Lock()
	lat := f.opts.opLatency
	f.mu.Unlock()
	if err := wait(ctx, lat); err != nil {
		return nil, &drivers.Error{Kind: drivers.KindUnreachable, Device: d.cfg.Name, Op: "read", Err: err}
	}
	var rs []route.Route
	for _, r := range f.AllRoutes() {
		if route.Managed(r.Prefix, d.cfg.Managed) {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// InstalledRoutes returns the same routes as Routes: the Fake installs synchronously.
func (d *FakeDriver) InstalledRoutes(ctx context.Context) ([]route.Route, error) {
	return d.Routes(ctx)
}

// Apply applies ops in order and accounts for each one.
func (d *FakeDriver) Apply(ctx context.Context, ops []route.RouteOp) error {
	if err := d.check("apply"); err != nil {
		return err
	}
	if err := checkOps(d.cfg, ops); err != nil {
		return err
	}
	f := d.fake
	var rejected []drivers.Rejection
	for i, op := range ops {
		f.mu.Lock()
		o := f.opts
		f.mu.Unlock()
		if err := wait(ctx, o.opLatency); err != nil {
			kind := drivers.KindIndeterminate
			if i == 0 {
				kind = drivers.KindUnreachable
			}
			return &drivers.Error{Kind: kind, Device: d.cfg.Name, Op: "apply", Err: err, Rejections: rejected}
		}
		if text, ok := d.refuse(o, op); ok {
			rejected = append(rejected, drivers.Rejection{Index: i, Op: op, Output: text})
			continue
		}
		if err := d.applyOne(op); err != nil {
			return err
		}
	}
	if len(rejected) > 0 {
		return &drivers.Error{Kind: drivers.KindRejected, Device: d.cfg.Name, Op: "apply", Rejections: rejected}
	}
	return nil
}

func (d *FakeDriver) refuse(o fakeOptions, op route.RouteOp) (string, bool) {
	if text, ok := o.rejects[op.Route.Prefix]; ok {
		return text, true
	}
	if o.vrfs != nil && !o.vrfs[op.Route.VRF] {
		return fmt.Sprintf("%% VRF %s does not exist", op.Route.VRF), true
	}
	return "", false
}

func (d *FakeDriver) applyOne(op route.RouteOp) error {
	f := d.fake
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opts.indeterminate == 0 {
		f.breaks++
		return drivers.Errorf(drivers.KindIndeterminate, d.cfg.Name, "apply", "session closed by the device after %d ops", f.opsApplied)
	}
	if f.opts.indeterminate > 0 {
		f.opts.indeterminate--
	}
	switch op.Action {
	case route.ActionAdd:
		f.routes[op.Route] = struct{}{}
	case route.ActionDelete:
		delete(f.routes, op.Route)
	}
	f.opsApplied++
	f.perRoute[op.Route]++
	f.applied = append(f.applied, op)
	return nil
}

func (d *FakeDriver) check(op string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return drivers.Errorf(drivers.KindInternal, d.cfg.Name, op, "session is closed")
	}
	return nil
}

// Close ends the session; it is safe to call more than once.
func (d *FakeDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.fake.mu.Lock()
	d.fake.open--
	d.fake.mu.Unlock()
	return nil
}

// SortRoutes sorts routes by VRF, prefix and next hop, the order the suite compares in.
func SortRoutes(rs []route.Route) {
	slices.SortFunc(rs, func(a, b route.Route) int {
		if c := cmp.Compare(a.VRF, b.VRF); c != 0 {
			return c
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()); c != 0 {
			return c
		}
		return a.NextHop.Compare(b.NextHop)
	})
}
