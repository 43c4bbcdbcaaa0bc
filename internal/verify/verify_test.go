package verify_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/session"
	"github.com/returnpath/returnpath/internal/verify"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// inventory has two segments: rack1 (pool docker) returns via sw1 and fw1; rack2 (pool
// edge) via sw2 and fw1, so fw1 is shared.
func inventory() *fabric.Inventory {
	return &fabric.Inventory{
		Pools: []fabric.Pool{
			{Name: "docker", Prefix: pfx("10.210.0.0/16"), SubnetLength: 24},
			{Name: "edge", Prefix: pfx("172.20.0.0/16"), SubnetLength: 24},
		},
		Segments: []fabric.Segment{
			{Name: "rack1", Hosts: pfx("10.10.10.0/24"), Pool: "docker", RouteVia: []fabric.Hop{
				{Device: "sw1", NextHop: fabric.NextHop{Host: true}},
				{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("10.10.20.1")}},
			}},
			{Name: "rack2", Hosts: pfx("10.10.30.0/24"), Pool: "edge", RouteVia: []fabric.Hop{
				{Device: "sw2", NextHop: fabric.NextHop{Host: true}},
				{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("10.10.20.3")}},
			}},
		},
		Devices: []fabric.Device{
			{Name: "sw1", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.11:22"), VRF: "default"},
			{Name: "fw1", Platform: fabric.PlatformLinux, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.12:22"), VRF: "default"},
			{Name: "sw2", Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH, Address: netip.MustParseAddrPort("198.18.0.13:22"), VRF: "default"},
		},
	}
}

// hostList is an in-memory registry with the same keyset paging as postgres.Hosts.List.
type hostList struct {
	hosts []fabric.Host
	err   error
	pages int
	mu    sync.Mutex
}

func (l *hostList) List(_ context.Context, f fabric.HostFilter) ([]fabric.Host, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pages++
	if l.err != nil {
		return nil, "", l.err
	}
	sorted := slices.SortedFunc(slices.Values(l.hosts), func(a, b fabric.Host) int { return cmp.Compare(a.Name, b.Name) })
	var out []fabric.Host
	for _, h := range sorted {
		if h.Name > f.After && h.State != fabric.HostRemoved {
			out = append(out, h)
		}
	}
	if len(out) > f.Limit {
		return out[:f.Limit], out[f.Limit-1].Name, nil
	}
	return out, "", nil
}

func host(name, address, segment, subnet string, state fabric.HostState) fabric.Host {
	return fabric.Host{Name: name, Address: addr(address), Segment: segment, Subnet: pfx(subnet), State: state}
}

func rt(prefix, nextHop string) fabric.Route {
	return fabric.Route{VRF: fabric.DefaultVRF, Prefix: pfx(prefix), NextHop: addr(nextHop)}
}

type fleet struct {
	inv   *fabric.Inventory
	fakes map[string]*drivertest.Fake
	hosts *hostList
	v     *verify.Verifier
}

func newFleet(hosts ...fabric.Host) *fleet {
	inv := inventory()
	f := &fleet{inv: inv, fakes: map[string]*drivertest.Fake{}, hosts: &hostList{hosts: hosts}}
	cfgs := map[string]drivers.Config{}
	var all []*drivertest.Fake
	for _, d := range inv.Devices {
		fk := drivertest.NewFake(d.Name)
		f.fakes[d.Name] = fk
		all = append(all, fk)
		cfgs[d.Name] = drivers.Config{Name: d.Name, Platform: d.Platform, Address: d.Address, VRF: d.VRF, Managed: inv.ManagedPrefixes()}
	}
	fac := drivertest.FakeFactory(all...)
	f.v = &verify.Verifier{Inv: inv, Hosts: f.hosts, Devices: &session.Devices{Configs: cfgs,
		Factories: map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: fac, fabric.PlatformLinux: fac}}}
	return f
}

// converge puts every live host's routes on the fakes, as a completed apply would.
func (f *fleet) converge() {
	intent, _ := f.inv.Intent(f.hosts.hosts)
	for dev, rs := range intent {
		for _, r := range rs {
			f.fakes[dev].Plant(r.Route)
		}
	}
}

func device(r verify.Report, name string) verify.Device {
	for _, d := range r.Devices {
		if d.Device == name {
			return d
		}
	}
	return verify.Device{}
}

func devNames(r verify.Report) []string {
	var out []string
	for _, d := range r.Devices {
		out = append(out, d.Device)
	}
	return out
}

var cmpOpts = gocmp.Options{
	gocmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	gocmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func TestVerifyInSync(t *testing.T) {
	t.Parallel()
	f := newFleet(
		host("docker-01", "10.10.10.101", "rack1", "10.210.1.0/24", fabric.HostActive),
		host("edge-01", "10.10.30.101", "rack2", "172.20.1.0/24", fabric.HostActive),
	)
	f.converge()
	// Routes outside every pool are never judged.
	f.fakes["sw1"].Plant(rt("10.200.0.0/24", "10.10.10.1"))
	r, err := f.v.Verify(t.Context(), verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.InSync {
		t.Errorf("InSync = false, want true: %+v", r.Devices)
	}
	if diff := gocmp.Diff(devNames(r), []string{"sw1", "fw1", "sw2"}); diff != "" {
		t.Errorf("devices (-got +want):\n%s", diff)
	}
	for _, d := range r.Devices {
		if d.Status != verify.StatusOK || d.Routes() != 0 {
			t.Errorf("%s: status %s with %d drifting routes, want ok", d.Device, d.Status, d.Routes())
		}
	}
	if r.CheckedAt.IsZero() || r.TookMS <= 0 {
		t.Errorf("CheckedAt = %v, TookMS = %v: want both set", r.CheckedAt, r.TookMS)
	}
}

func TestVerifyDriftKinds(t *testing.T) {
	t.Parallel()
	f := newFleet(
		host("docker-01", "10.10.10.101", "rack1", "10.210.1.0/24", fabric.HostActive),
		host("docker-02", "10.10.10.102", "rack1", "10.210.2.0/24", fabric.HostActive),
		host("docker-03", "10.10.10.103", "rack1", "10.210.3.0/24", fabric.HostPending),
		host("docker-04", "10.10.10.104", "rack1", "10.210.4.0/24", fabric.HostRemoving),
	)
	f.converge()
	sw1 := f.fakes["sw1"]
	sw1.Remove(rt("10.210.1.0/24", "10.10.10.101"))                                                            // missing
	sw1.Remove(rt("10.210.2.0/24", "10.10.10.102"))                                                            // ...
	sw1.Plant(rt("10.210.2.0/24", "10.10.10.99"))                                                              // wrong next hop
	sw1.Plant(rt("10.210.9.0/24", "10.10.10.109"))                                                             // leftover: unexpected
	sw1.Remove(rt("10.210.3.0/24", "10.10.10.103"))                                                            // pending, not yet pushed
	f.fakes["fw1"].Plant(fabric.Route{VRF: "blue", Prefix: pfx("10.210.1.0/24"), NextHop: addr("10.10.20.1")}) // wrong VRF

	r, err := f.v.Verify(t.Context(), verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if r.InSync {
		t.Error("InSync = true, want false")
	}
	present, absent := true, false
	want := verify.Device{
		Device: "sw1", Status: verify.StatusDrift,
		Missing:      []verify.Route{{Prefix: pfx("10.210.1.0/24"), NextHop: addr("10.10.10.101"), VRF: "default", Host: "docker-01", HostState: fabric.HostActive}},
		Unexpected:   []verify.Route{{Prefix: pfx("10.210.9.0/24"), NextHop: addr("10.10.10.109"), VRF: "default"}},
		WrongNextHop: []verify.WrongNextHop{{Prefix: pfx("10.210.2.0/24"), VRF: "default", Want: addr("10.10.10.102"), Got: addr("10.10.10.99"), Host: "docker-02"}},
		InFlight: []verify.Route{
			{Prefix: pfx("10.210.3.0/24"), NextHop: addr("10.10.10.103"), VRF: "default", Host: "docker-03", HostState: fabric.HostPending, Present: &absent},
			{Prefix: pfx("10.210.4.0/24"), NextHop: addr("10.10.10.104"), VRF: "default", Host: "docker-04", HostState: fabric.HostRemoving, Present: &present},
		},
	}
	got := device(r, "sw1")
	got.TookMS, got.ReadAt = 0, time.Time{}
	if diff := gocmp.Diff(got, want, cmpOpts); diff != "" {
		t.Errorf("sw1 (-got +want):\n%s", diff)
	}
	fw1 := device(r, "fw1")
	if fw1.Status != verify.StatusDrift || len(fw1.Unexpected) != 1 || fw1.Unexpected[0].VRF != "blue" || len(fw1.Missing) != 0 {
		t.Errorf("fw1 = %+v, want drift with one unexpected route in VRF blue", fw1)
	}
	if sw2 := device(r, "sw2"); sw2.Status != verify.StatusOK {
		t.Errorf("sw2 = %+v, want ok", sw2)
	}
}

// TestVerifyUnreachableDoesNotHideDrift: one device refuses connections, another refuses the
// credentials; the third's drift is still reported in full.
func TestVerifyUnreachableDoesNotHideDrift(t *testing.T) {
	t.Parallel()
	f := newFleet(host("docker-01", "10.10.10.101", "rack1", "10.210.1.0/24", fabric.HostActive))
	f.converge()
	f.fakes["sw1"].Set(drivertest.WithUnreachable(true))
	f.fakes["sw2"].Set(drivertest.WithCredentials("netops", "s3cret-password"))
	f.fakes["fw1"].Remove(rt("10.210.1.0/24", "10.10.20.1"))
	r, err := f.v.Verify(t.Context(), verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if r.InSync {
		t.Error("InSync = true, want false")
	}
	for name, kind := range map[string]string{"sw1": "unreachable", "sw2": "auth"} {
		d := device(r, name)
		if d.Status != verify.StatusUnreachable || d.ErrorKind != kind || d.Error == "" {
			t.Errorf("%s = %+v, want unreachable with kind %s and a message", name, d, kind)
		}
	}
	fw1 := device(r, "fw1")
	if fw1.Status != verify.StatusDrift || len(fw1.Missing) != 1 || fw1.Missing[0].Host != "docker-01" {
		t.Errorf("fw1 = %+v, want drift with docker-01's route missing", fw1)
	}
	if r.Unreachable() != 2 || r.Drifted() != 1 {
		t.Errorf("Unreachable() = %d, Drifted() = %d, want 2 and 1", r.Unreachable(), r.Drifted())
	}
}

func TestVerifyMissingDriverConfig(t *testing.T) {
	t.Parallel()
	f := newFleet()
	delete(f.v.Devices.Configs, "sw2")
	r, err := f.v.Verify(t.Context(), verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if d := device(r, "sw2"); d.Status != verify.StatusUnreachable || d.ErrorKind != "internal" {
		t.Errorf("sw2 = %+v, want unreachable of kind internal", d)
	}
	if d := device(r, "sw1"); d.Status != verify.StatusOK {
		t.Errorf("sw1 = %+v, want ok", d)
	}
}

func TestVerifyFilters(t *testing.T) {
	t.Parallel()
	f := newFleet(
		host("docker-01", "10.10.10.101", "rack1", "10.210.1.0/24", fabric.HostActive),
		host("edge-01", "10.10.30.101", "rack2", "172.20.1.0/24", fabric.HostActive),
	)
	// Nothing converged: every host's routes are missing. Plus a leftover in each pool on
	// the shared firewall.
	f.fakes["fw1"].Plant(rt("10.210.99.0/24", "10.10.20.1"))
	f.fakes["fw1"].Plant(rt("172.20.99.0/24", "10.10.20.3"))

	tests := []struct {
		filter         verify.Filter
		wantDevices    []string
		wantMissing    map[string][]string // device -> hosts
		wantUnexpected map[string][]string // device -> prefixes
	}{
		{
			filter:         verify.Filter{},
			wantDevices:    []string{"sw1", "fw1", "sw2"},
			wantMissing:    map[string][]string{"sw1": {"docker-01"}, "fw1": {"docker-01", "edge-01"}, "sw2": {"edge-01"}},
			wantUnexpected: map[string][]string{"fw1": {"10.210.99.0/24", "172.20.99.0/24"}},
		},
		{
			filter:         verify.Filter{Segment: "rack2"},
			wantDevices:    []string{"sw2", "fw1"},
			wantMissing:    map[string][]string{"fw1": {"edge-01"}, "sw2": {"edge-01"}},
			wantUnexpected: map[string][]string{"fw1": {"172.20.99.0/24"}},
		},
		{
			filter:         verify.Filter{Device: "fw1"},
			wantDevices:    []string{"fw1"},
			wantMissing:    map[string][]string{"fw1": {"docker-01", "edge-01"}},
			wantUnexpected: map[string][]string{"fw1": {"10.210.99.0/24", "172.20.99.0/24"}},
		},
		{
			filter:         verify.Filter{Device: "fw1", Segment: "rack1"},
			wantDevices:    []string{"fw1"},
			wantMissing:    map[string][]string{"fw1": {"docker-01"}},
			wantUnexpected: map[string][]string{"fw1": {"10.210.99.0/24"}},
		},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.filter), func(t *testing.T) {
			t.Parallel()
			r, err := f.v.Verify(t.Context(), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(devNames(r), tt.wantDevices); diff != "" {
				t.Errorf("devices (-got +want):\n%s", diff)
			}
			gotMissing, gotUnexpected := map[string][]string{}, map[string][]string{}
			for _, d := range r.Devices {
				for _, m := range d.Missing {
					gotMissing[d.Device] = append(gotMissing[d.Device], m.Host)
				}
				for _, u := range d.Unexpected {
					gotUnexpected[d.Device] = append(gotUnexpected[d.Device], u.Prefix.String())
				}
			}
			if diff := gocmp.Diff(gotMissing, tt.wantMissing); diff != "" {
				t.Errorf("missing (-got +want):\n%s", diff)
			}
			if diff := gocmp.Diff(gotUnexpected, tt.wantUnexpected); diff != "" {
				t.Errorf("unexpected (-got +want):\n%s", diff)
			}
		})
	}
}

func TestVerifyBadFilter(t *testing.T) {
	t.Parallel()
	f := newFleet()
	tests := []struct {
		filter    verify.Filter
		wantField string
	}{
		{verify.Filter{Device: "nope"}, "device"},
		{verify.Filter{Segment: "nope"}, "segment"},
		{verify.Filter{Device: "sw2", Segment: "rack1"}, "device"},
	}
	for _, tt := range tests {
		_, err := f.v.Verify(t.Context(), tt.filter)
		var fe *fabric.Error
		if !errors.As(err, &fe) || fe.Code != fabric.EINVALID || fe.Field != tt.wantField {
			t.Errorf("Verify(%+v) error = %v, want EINVALID on field %s", tt.filter, err, tt.wantField)
		}
	}
	if n := f.fakes["sw1"].Sessions(); n != 0 {
		t.Errorf("a bad filter opened %d sessions, want none", n)
	}
}

func TestVerifyHostListError(t *testing.T) {
	t.Parallel()
	f := newFleet()
	f.hosts.err = errors.New("database is down")
	if _, err := f.v.Verify(t.Context(), verify.Filter{}); err == nil || !errors.Is(err, f.hosts.err) {
		t.Errorf("Verify() error = %v, want one wrapping the listing error", err)
	}
}

// TestVerifyPagesThroughHosts: more hosts than one page of the registry holds.
func TestVerifyPagesThroughHosts(t *testing.T) {
	t.Parallel()
	var hosts []fabric.Host
	for i := range 250 {
		hosts = append(hosts, host(fmt.Sprintf("docker-%03d", i), "10.10.10.101", "rack1", fmt.Sprintf("10.210.%d.0/24", i), fabric.HostActive))
	}
	f := newFleet(hosts...)
	f.hosts.hosts = append(f.hosts.hosts, host("edge-01", "10.10.30.101", "rack2", "172.20.1.0/24", fabric.HostActive))
	for i := range 800 {
		f.hosts.hosts = append(f.hosts.hosts, host(fmt.Sprintf("zz-%04d", i), "10.10.30.101", "rack2", fmt.Sprintf("172.20.%d.%d/28", i/16, i%16*16), fabric.HostActive))
	}
	f.converge()
	f.fakes["sw1"].Remove(rt("10.210.249.0/24", "10.10.10.101"))
	r, err := f.v.Verify(t.Context(), verify.Filter{Device: "sw1"})
	if err != nil {
		t.Fatal(err)
	}
	if d := device(r, "sw1"); len(d.Missing) != 1 || d.Missing[0].Host != "docker-249" || d.Routes() != 1 {
		t.Errorf("sw1 = %d drifting routes %+v, want only docker-249's missing", d.Routes(), d.Missing)
	}
	if f.hosts.pages < 2 {
		t.Errorf("listed %d pages, want at least 2 for %d hosts", f.hosts.pages, len(f.hosts.hosts))
	}
}

// gate holds every session open until the test releases it, and counts how many are open.
type gate struct {
	mu      sync.Mutex
	cur     int
	max     int
	entered chan string
	release chan struct{}
}

func (g *gate) wrap(fac drivers.Factory) drivers.Factory {
	open := fac.Open
	fac.Open = func(ctx context.Context, cfg drivers.Config) (drivers.Driver, error) {
		g.mu.Lock()
		g.cur++
		g.max = max(g.max, g.cur)
		g.mu.Unlock()
		g.entered <- cfg.Name
		<-g.release
		d, err := open(ctx, cfg)
		if err != nil {
			g.done()
			return nil, err
		}
		return &gated{Driver: d, g: g}, nil
	}
	return fac
}

func (g *gate) done() {
	g.mu.Lock()
	g.cur--
	g.mu.Unlock()
}

type gated struct {
	drivers.Driver
	g    *gate
	once sync.Once
}

func (d *gated) Close() error {
	d.once.Do(d.g.done)
	return d.Driver.Close()
}

func (g *gate) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}

func TestVerifyBoundedParallelism(t *testing.T) {
	t.Parallel()
	const devices, limit = 7, 3
	inv := &fabric.Inventory{Pools: []fabric.Pool{{Name: "docker", Prefix: pfx("10.210.0.0/16"), SubnetLength: 24}}}
	var fakes []*drivertest.Fake
	cfgs := map[string]drivers.Config{}
	for i := range devices {
		name := fmt.Sprintf("sw%d", i)
		inv.Devices = append(inv.Devices, fabric.Device{Name: name, Platform: fabric.PlatformFRR, Transport: fabric.TransportSSH,
			Address: netip.AddrPortFrom(addr("198.18.0.11"), 22), VRF: "default"})
		fakes = append(fakes, drivertest.NewFake(name))
		cfgs[name] = drivers.Config{Name: name, Platform: fabric.PlatformFRR, Managed: inv.ManagedPrefixes()}
	}
	g := &gate{entered: make(chan string), release: make(chan struct{})}
	v := &verify.Verifier{Inv: inv, Hosts: &hostList{}, Concurrency: limit, Devices: &session.Devices{Configs: cfgs,
		Factories: map[fabric.Platform]drivers.Factory{fabric.PlatformFRR: g.wrap(drivertest.FakeFactory(fakes...))}}}
	type result struct {
		r   verify.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := v.Verify(context.Background(), verify.Filter{})
		done <- result{r, err}
	}()
	seen := map[string]bool{}
	for range limit {
		seen[<-g.entered] = true
	}
	// limit sessions are opening at once; the others wait for a free slot.
	if got := g.open(); got != limit {
		t.Errorf("%d sessions in progress, want %d", got, limit)
	}
	for released := 0; released < devices; released++ {
		g.release <- struct{}{}
		if len(seen) < devices {
			seen[<-g.entered] = true
		}
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if g.max != limit {
		t.Errorf("at most %d devices were read at once, want exactly %d", g.max, limit)
	}
	if len(seen) != devices || len(res.r.Devices) != devices || !res.r.InSync {
		t.Errorf("read %d devices, report has %d, in sync %v; want %d, %d, true", len(seen), len(res.r.Devices), res.r.InSync, devices, devices)
	}
}

// TestVerifyTiming: each device's time is its own; a slow device does not slow the others'
// figures, and the devices are read in parallel.
func TestVerifyTiming(t *testing.T) {
	t.Parallel()
	f := newFleet()
	f.fakes["sw1"].Set(drivertest.WithLatency(0, 300*time.Millisecond))
	f.fakes["sw2"].Set(drivertest.WithLatency(0, 300*time.Millisecond))
	r, err := f.v.Verify(t.Context(), verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if sw1 := device(r, "sw1"); sw1.TookMS < 300 {
		t.Errorf("sw1 took %v ms, want at least its 300 ms latency", sw1.TookMS)
	}
	if fw1 := device(r, "fw1"); fw1.TookMS >= 300 {
		t.Errorf("fw1 took %v ms, want its own (short) time", fw1.TookMS)
	}
	if r.TookMS >= 600 {
		t.Errorf("report took %v ms for two 300 ms devices, want them read in parallel", r.TookMS)
	}
}

func TestVerifyCancelled(t *testing.T) {
	t.Parallel()
	f := newFleet()
	f.fakes["sw1"].Set(drivertest.WithLatency(time.Hour, 0))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	r, err := f.v.Verify(ctx, verify.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if d := device(r, "sw1"); d.Status != verify.StatusUnreachable || d.ErrorKind != "unreachable" {
		t.Errorf("sw1 = %+v, want unreachable", d)
	}
	if r.InSync {
		t.Error("InSync = true with a device unread")
	}
}

// TestVerifySegmentFilterCoversAParallelStage: with rack1 returning via the pair sw1+sw2 in one
// stage, a verification of the segment reads both members, and either member may be named with
// the segment.
func TestVerifySegmentFilterCoversAParallelStage(t *testing.T) {
	t.Parallel()
	f := newFleet(host("docker-01", "10.10.10.101", "rack1", "10.210.1.0/24", fabric.HostActive))
	f.inv.Segments[0].RouteVia = []fabric.Hop{
		{Devices: []string{"sw1", "sw2"}, NextHop: fabric.NextHop{Host: true}},
		{Device: "fw1", NextHop: fabric.NextHop{Addr: addr("10.10.20.1")}},
	}
	f.converge()
	r, err := f.v.Verify(t.Context(), verify.Filter{Segment: "rack1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(devNames(r), []string{"sw1", "sw2", "fw1"}); diff != "" {
		t.Errorf("devices of rack1 (-got +want):\n%s", diff)
	}
	if !r.InSync {
		t.Errorf("InSync = false after converging: %+v", r.Devices)
	}
	r, err = f.v.Verify(t.Context(), verify.Filter{Segment: "rack1", Device: "sw2"})
	if err != nil || len(r.Devices) != 1 || r.Devices[0].Device != "sw2" || r.Devices[0].Status != verify.StatusOK {
		t.Errorf("sw2 of rack1: %+v, %v; want sw2 in sync", r.Devices, err)
	}
}
