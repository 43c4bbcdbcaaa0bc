// Package verify reads every device on the return paths live and compares what each holds
// with the registry's intent: the answer CI pipelines and on-call engineers ask for
// (GET /v1/verify, `returnpath verify`) and the periodic drift check (Monitor).
package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/session"
)

// HostLister lists live hosts a page at a time (postgres.Hosts implements it).
type HostLister interface {
	List(ctx context.Context, f fabric.HostFilter) ([]fabric.Host, string, error)
}

// DefaultConcurrency is how many devices Verify reads at once when Verifier.Concurrency is 0.
const DefaultConcurrency = 8

// Verifier compares the devices with intent. Its fields are read-only once Verify is called;
// a reload swaps the inventory with SetInventory.
type Verifier struct {
	Inv *fabric.Inventory // the inventory until SetInventory is called
	// Devices opens device sessions within each device's session budget.
	Devices *session.Devices
	Hosts   HostLister
	// Concurrency bounds how many devices are read at once (DefaultConcurrency when 0).
	Concurrency int
	// MaxAge is how old a device reading may be for Verify to answer from it instead of
	// logging in again (verify.max_age); 0 reads every device for every call. Concurrent
	// calls share one reading per device either way.
	MaxAge time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	readings readings
	swapped  atomic.Pointer[fabric.Inventory] // set by SetInventory: replaces Inv
}

// SetInventory makes verifications compare with inv from now on (a reload). Readings kept
// for MaxAge are dropped: a device's address or VRF may have changed.
func (v *Verifier) SetInventory(inv *fabric.Inventory) {
	v.swapped.Store(inv)
	v.readings.forgetAll()
}

// inventory returns the inventory in force; one verification uses one throughout.
func (v *Verifier) inventory() *fabric.Inventory {
	if inv := v.swapped.Load(); inv != nil {
		return inv
	}
	return v.Inv
}

// Filter narrows a verification. Empty fields mean everything.
type Filter struct {
	// Device limits the check to one device.
	Device string
	// Segment limits the check to the devices on the segment's return path and to that
	// segment's hosts: missing, wrong next hops and in-flight routes of other segments' hosts
	// are left out, and unexpected routes are reported only inside the segment's pool.
	Segment string
	// Fresh reads every selected device now, whatever the age of the last reading (an admin's
	// ?fresh=true).
	Fresh bool
	// Probes adds the data plane: every active host (of Segment, when set) whose last
	// return-path probe failed, is older than its segment's probes.max_age, or never came
	// fails the verification (?probes=true).
	Probes bool
}

// Status is a device's verdict.
type Status string

// Device verdicts.
const (
	StatusOK          Status = "ok"
	StatusDrift       Status = "drift"
	StatusUnreachable Status = "unreachable"
)

// Report is the answer of GET /v1/verify (VerifyReport in api/openapi.yaml).
type Report struct {
	InSync    bool      `json:"in_sync"`
	TookMS    float64   `json:"took_ms"`
	CheckedAt time.Time `json:"checked_at"`
	Devices   []Device  `json:"devices"`
	// Hosts is each active host's probe verdict; only with Filter.Probes (nil otherwise).
	Hosts []HostProbe `json:"hosts,omitempty"`
}

// HostProbe is one host's data-plane verdict (VerifyHost): its last probe, judged.
type HostProbe struct {
	Host     string             `json:"host"`
	Segment  string             `json:"segment"`
	Status   fabric.ProbeStatus `json:"status"`
	MaxAgeS  float64            `json:"max_age_s"`
	Target   string             `json:"target,omitempty"`
	Result   fabric.ProbeResult `json:"result,omitempty"`
	RTTMS    *float64           `json:"rtt_ms,omitempty"`
	ProbedAt time.Time          `json:"probed_at,omitzero"`
}

// FailingHosts returns how many hosts' probes fail the verification.
func (r Report) FailingHosts() int {
	n := 0
	for _, h := range r.Hosts {
		if h.Status != fabric.ProbeStatusOK {
			n++
		}
	}
	return n
}

// hostProbes judges the active hosts' last probes (of seg, when set).
func hostProbes(inv *fabric.Inventory, hosts []fabric.Host, seg *fabric.Segment, now time.Time) []HostProbe {
	if seg != nil {
		hosts = slices.DeleteFunc(slices.Clone(hosts), func(h fabric.Host) bool { return h.Segment != seg.Name })
	}
	out := []HostProbe{}
	for _, v := range fabric.JudgeProbes(hosts, inv.ProbeMaxAge, now) {
		hp := HostProbe{Host: v.Host, Segment: v.Segment, Status: v.Status, MaxAgeS: v.MaxAge.Seconds()}
		if p := v.Last; p != nil {
			hp.Target, hp.Result, hp.ProbedAt = p.Target.String(), p.Result, p.At.UTC()
			if p.Target.Port() == 0 {
				hp.Target = p.Target.Addr().String()
			}
			if p.Result == fabric.ProbeOK {
				rtt := ms(p.RTT)
				hp.RTTMS = &rtt
			}
		}
		out = append(out, hp)
	}
	return out
}

// Unreachable returns how many devices could not be read.
func (r Report) Unreachable() int {
	n := 0
	for _, d := range r.Devices {
		if d.Status == StatusUnreachable {
			n++
		}
	}
	return n
}

// Drifted returns how many devices drift.
func (r Report) Drifted() int {
	n := 0
	for _, d := range r.Devices {
		if d.Status == StatusDrift {
			n++
		}
	}
	return n
}

// Device is one device's result (VerifyDevice). The route lists are never nil, so that they
// encode as [] rather than null.
type Device struct {
	Device    string  `json:"device"`
	Status    Status  `json:"status"`
	Error     string  `json:"error,omitempty"`
	ErrorKind string  `json:"error_kind,omitempty"`
	TookMS    float64 `json:"took_ms"`
	// ReadAt is when the device was read: a reading at most verify.max_age old may answer
	// several calls. Zero when it could not be read at all.
	ReadAt       time.Time      `json:"read_at,omitzero"`
	Missing      []Route        `json:"missing"`
	Unexpected   []Route        `json:"unexpected"`
	WrongNextHop []WrongNextHop `json:"wrong_next_hop"`
	InFlight     []Route        `json:"in_flight"`
}

// Routes returns how many of the device's routes drift.
func (d Device) Routes() int { return len(d.Missing) + len(d.Unexpected) + len(d.WrongNextHop) }

// Route is a route in a report (VerifyRoute). Host and HostState name the host it belongs
// to, when one does; Present is set for in-flight routes only.
type Route struct {
	Prefix    netip.Prefix     `json:"prefix"`
	NextHop   netip.Addr       `json:"next_hop"`
	VRF       string           `json:"vrf"`
	Host      string           `json:"host,omitempty"`
	HostState fabric.HostState `json:"host_state,omitempty"`
	Present   *bool            `json:"present,omitempty"`
}

func (r Route) String() string {
	s := fabric.Route{VRF: r.VRF, Prefix: r.Prefix, NextHop: r.NextHop}.String()
	if r.Host != "" {
		s += " (host " + r.Host
		if r.HostState != "" && r.HostState != fabric.HostActive {
			s += ", " + string(r.HostState)
		}
		s += ")"
	}
	return s
}

// WrongNextHop is a wanted prefix the device routes via another next hop.
type WrongNextHop struct {
	Prefix netip.Prefix `json:"prefix"`
	VRF    string       `json:"vrf"`
	Want   netip.Addr   `json:"want"`
	Got    netip.Addr   `json:"got"`
	Host   string       `json:"host,omitempty"`
}

func (w WrongNextHop) String() string {
	s := fmt.Sprintf("%s vrf %s via %s, want via %s", w.Prefix, w.VRF, w.Got, w.Want)
	if w.Host != "" {
		s += " (host " + w.Host + ")"
	}
	return s
}

// devices returns the devices the filter selects and the hosts' segment restriction, or a
// *fabric.Error naming the query field at fault.
func (v *Verifier) devices(inv *fabric.Inventory, f Filter) ([]fabric.Device, *fabric.Segment, error) {
	var seg *fabric.Segment
	if f.Segment != "" {
		s, ok := inv.Segment(f.Segment)
		if !ok {
			return nil, nil, fabric.FieldErrorf(fabric.EINVALID, "segment", "no segment named %q", f.Segment)
		}
		seg = &s
	}
	if f.Device != "" {
		d, ok := inv.Device(f.Device)
		if !ok {
			return nil, nil, fabric.FieldErrorf(fabric.EINVALID, "device", "no device named %q", f.Device)
		}
		if seg != nil && !slices.ContainsFunc(seg.RouteVia, func(h fabric.Hop) bool { return slices.Contains(h.Members(), d.Name) }) {
			return nil, nil, fabric.FieldErrorf(fabric.EINVALID, "device", "device %s is not on the return path of segment %s", d.Name, seg.Name)
		}
		return []fabric.Device{d}, seg, nil
	}
	if seg == nil {
		return slices.Clone(inv.Devices), nil, nil
	}
	var out []fabric.Device
	for _, h := range seg.RouteVia {
		for _, name := range h.Members() {
			if d, ok := inv.Device(name); ok {
				out = append(out, d)
			}
		}
	}
	return out, seg, nil
}

// hosts returns every live host, page by page.
func (v *Verifier) hosts(ctx context.Context) ([]fabric.Host, error) {
	var all []fabric.Host
	after := ""
	for {
		page, next, err := v.Hosts.List(ctx, fabric.HostFilter{After: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		after = next
	}
}

// Verify reads the selected devices in parallel, at most Concurrency at once, and compares
// each with intent. A device that cannot be read is reported as unreachable with the
// driver's error kind; it never hides drift on the others. The error is non-nil only when
// nothing could be checked: an unknown device or segment in f (a *fabric.Error with code
// EINVALID naming "device" or "segment") or a failure to list the hosts.
func (v *Verifier) Verify(ctx context.Context, f Filter) (Report, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	start := time.Now()
	inv := v.inventory()
	devs, seg, err := v.devices(inv, f)
	if err != nil {
		return Report{}, err
	}
	hosts, err := v.hosts(ctx)
	if err != nil {
		return Report{}, err
	}
	// Intent comes from every live host, so that another segment's route on a shared device
	// is explained; the segment filter then narrows what is reported.
	intent, _ := inv.Intent(hosts)
	managed := inv.ManagedPrefixes()
	report := Report{CheckedAt: now().UTC(), Devices: make([]Device, len(devs))}
	v.eachDevice(ctx, devs, func(i int, d fabric.Device) {
		report.Devices[i] = v.check(ctx, inv, d, intent[d.Name], managed, seg, f.Fresh)
	}, func(i int, d fabric.Device) { report.Devices[i] = unreachable(d.Name, 0, ctx.Err()) })
	report.InSync = true
	for _, d := range report.Devices {
		if d.Status != StatusOK {
			report.InSync = false
		}
	}
	if f.Probes {
		report.Hosts = hostProbes(inv, hosts, seg, now())
		if report.FailingHosts() > 0 {
			report.InSync = false
		}
	}
	report.TookMS = ms(time.Since(start))
	return report, nil
}

// check reads one device (or takes a fresh-enough reading) and compares it with its intent.
func (v *Verifier) check(ctx context.Context, inv *fabric.Inventory, d fabric.Device, intent []fabric.IntentRoute, managed []netip.Prefix, seg *fabric.Segment, fresh bool) Device {
	maxAge := v.MaxAge
	if fresh {
		maxAge = 0
	}
	r := v.readings.get(ctx, d.Name, maxAge, v.now, func(ctx context.Context) ([]fabric.Route, error) { return v.read(ctx, d) })
	if r.err != nil {
		out := unreachable(d.Name, r.took, r.err)
		out.ReadAt = r.at
		return out
	}
	drift := fabric.CompareRoutes(intent, r.routes, managed)
	if seg != nil {
		drift = narrow(inv, drift, *seg)
	}
	out := view(d.Name, drift)
	out.TookMS, out.ReadAt = ms(r.took), r.at
	return out
}

// Forget drops the reading of device kept for MaxAge: the apply engine calls it after each
// session, so that a verification right after a change reads the device again.
func (v *Verifier) Forget(device string) { v.readings.forget(device) }

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now().UTC()
	}
	return time.Now().UTC()
}

// read reads d's managed routes on its session, shared with the apply engine and kept open
// between uses (session.Devices.Take), within d's session budget.
func (v *Verifier) read(ctx context.Context, d fabric.Device) ([]fabric.Route, error) {
	s, err := v.Devices.Take(ctx, d.Name)
	if err != nil {
		if session.IsBusy(err) {
			return nil, drivers.Errorf(drivers.KindUnreachable, d.Name, "connect", "%s", err.Error())
		}
		return nil, err
	}
	defer s.Release()
	rs, err := s.Routes(ctx)
	s.Failed(err)
	return rs, err
}

// narrow keeps what concerns seg: its hosts' routes, and unexpected routes inside its pool
// (its pool6 for an IPv6-only segment).
func narrow(inv *fabric.Inventory, d fabric.Drift, seg fabric.Segment) fabric.Drift {
	var out fabric.Drift
	for _, w := range d.Missing {
		if w.Segment == seg.Name {
			out.Missing = append(out.Missing, w)
		}
	}
	for _, w := range d.WrongNextHop {
		if w.Want.Segment == seg.Name {
			out.WrongNextHop = append(out.WrongNextHop, w)
		}
	}
	for _, w := range d.InFlight {
		if w.Segment == seg.Name {
			out.InFlight = append(out.InFlight, w)
		}
	}
	pool, _ := inv.Pool(seg.Pool)
	if seg.Pool == "" { // an IPv6-only segment
		pool, _ = inv.Pool(seg.Pool6)
	}
	for _, r := range d.Unexpected {
		if fabric.Managed(r.Prefix, []netip.Prefix{pool.Prefix}) {
			out.Unexpected = append(out.Unexpected, r)
		}
	}
	return out
}

// unreachable reports a device that could not be read. The message is the driver error's,
// which never holds credentials; any other error gets a generic text.
func unreachable(name string, took time.Duration, err error) Device {
	d := empty(name)
	d.Status, d.TookMS = StatusUnreachable, ms(took)
	var de *drivers.Error
	switch {
	case errors.As(err, &de):
		d.ErrorKind, d.Error = de.Kind.String(), de.Error()
	case errors.Is(err, context.DeadlineExceeded):
		d.ErrorKind, d.Error = drivers.KindUnreachable.String(), "timed out before the device was read"
	case errors.Is(err, context.Canceled):
		d.ErrorKind, d.Error = drivers.KindUnreachable.String(), "verification was cancelled before the device was read"
	default:
		d.ErrorKind, d.Error = drivers.KindInternal.String(), "unexpected error reading the device"
	}
	return d
}

func empty(name string) Device {
	return Device{Device: name, Missing: []Route{}, Unexpected: []Route{}, WrongNextHop: []WrongNextHop{}, InFlight: []Route{}}
}

// view turns a device's drift into its report entry.
func view(name string, d fabric.Drift) Device {
	out := empty(name)
	out.Status = StatusOK
	if !d.InSync() {
		out.Status = StatusDrift
	}
	for _, w := range d.Missing {
		out.Missing = append(out.Missing, intentRoute(w))
	}
	for _, r := range d.Unexpected {
		out.Unexpected = append(out.Unexpected, Route{Prefix: r.Prefix, NextHop: r.NextHop, VRF: r.VRF})
	}
	for _, w := range d.WrongNextHop {
		out.WrongNextHop = append(out.WrongNextHop, WrongNextHop{Prefix: w.Want.Route.Prefix, VRF: w.Want.Route.VRF,
			Want: w.Want.Route.NextHop, Got: w.Got.NextHop, Host: w.Want.Host})
	}
	for _, w := range d.InFlight {
		r := intentRoute(w.IntentRoute)
		r.Present = &w.Present
		out.InFlight = append(out.InFlight, r)
	}
	return out
}

func intentRoute(w fabric.IntentRoute) Route {
	return Route{Prefix: w.Route.Prefix, NextHop: w.Route.NextHop, VRF: w.Route.VRF, Host: w.Host, HostState: w.State}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// eachDevice runs do for every device, at most Concurrency at once (each device reads in
// parallel with the others, within its own session budget); a device whose turn has not come
// when ctx is done gets skipped instead.
func (v *Verifier) eachDevice(ctx context.Context, devs []fabric.Device, do, skipped func(i int, d fabric.Device)) {
	sem := make(chan struct{}, cmp.Or(v.Concurrency, DefaultConcurrency))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				skipped(i, d)
				return
			}
			do(i, d)
		}()
	}
	wg.Wait()
}
