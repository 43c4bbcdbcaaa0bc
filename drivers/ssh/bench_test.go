package ssh

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/internal/lab/labtest"
)

// Benchmarks against the real devices of the lab. Run them with
//
//	go test ./drivers/ssh -run '^$' -bench . -benchtime 3x -benchmem
//
// Each op of the batch benchmarks is one 5,000-route Apply (or one read of 5,000 routes).

const benchRoutes = 5000

// benchOps returns n adds (or deletes) of /29s of the lab pool via nh.
func benchOps(n int, action route.Action, nh netip.Addr) []route.RouteOp {
	return subnetOps(labPool, 29, 0, n, action, func(int) netip.Addr { return nh })
}

// subnetOps returns the adds (or deletes) of the /bits subnets first..first+n-1 of the IPv4
// pool, subnet i via nh(i).
func subnetOps(pool netip.Prefix, bits, first, n int, action route.Action, nh func(int) netip.Addr) []route.RouteOp {
	base := pool.Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	ops := make([]route.RouteOp, n)
	for i := range ops {
		v := start + uint32(first+i)<<(32-bits)
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		ops[i] = route.RouteOp{Action: action, Route: route.Route{
			VRF: route.DefaultVRF, Prefix: netip.PrefixFrom(a, bits), NextHop: nh(first + i)}}
	}
	return ops
}

func benchOpen(b *testing.B, open func(context.Context, drivers.Config) (drivers.Driver, error), cfg drivers.Config) drivers.Driver {
	b.Helper()
	cfg.OpTimeout = 5 * time.Minute
	d, err := open(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

func mustApply(b *testing.B, d drivers.Driver, ops []route.RouteOp) {
	b.Helper()
	if err := d.Apply(b.Context(), ops); err != nil {
		b.Fatal(err)
	}
}

// benchBatch measures one Apply of the adds (or, with del, of the deletes); the other
// half runs with the timer stopped. Before each timed Apply the device has finished
// installing (or removing) the previous batch in its forwarding table, so that one
// iteration's asynchronous kernel work does not compete with the next one's push.
func benchBatch(b *testing.B, d drivers.Driver, nh netip.Addr, del bool) {
	adds := benchOps(benchRoutes, route.ActionAdd, nh)
	dels := benchOps(benchRoutes, route.ActionDelete, nh)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if del {
			mustApply(b, d, adds)
			settle(b, d, benchRoutes)
			b.StartTimer()
			mustApply(b, d, dels)
			b.StopTimer()
			settle(b, d, 0)
		} else {
			b.StartTimer()
			mustApply(b, d, adds)
			b.StopTimer()
			settle(b, d, benchRoutes)
			mustApply(b, d, dels)
			settle(b, d, 0)
		}
		b.StartTimer()
	}
}

// settle waits until a device that installs asynchronously has n managed routes in its
// forwarding table.
func settle(b *testing.B, d drivers.Driver, n int) {
	ir, ok := d.(drivers.InstalledReader)
	if !ok {
		return
	}
	for {
		rs, err := ir.InstalledRoutes(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) == n {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling the device
	}
}

// benchRead measures reading back 5,000 routes.
func benchRead(b *testing.B, d drivers.Driver, nh netip.Addr) {
	mustApply(b, d, benchOps(benchRoutes, route.ActionAdd, nh))
	b.Cleanup(func() {
		if err := d.Apply(context.Background(), benchOps(benchRoutes, route.ActionDelete, nh)); err != nil {
			b.Error(err)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rs, err := d.Routes(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) != benchRoutes {
			b.Fatalf("read %d routes, want %d", len(rs), benchRoutes)
		}
	}
}

var (
	frrNH   = netip.MustParseAddr("10.10.10.101")
	linuxNH = netip.MustParseAddr("10.10.20.1")
)

func BenchmarkFRRAdd5000(b *testing.B) {
	l := labtest.Require(b)
	benchBatch(b, benchOpen(b, FRRFactory().Open, frrConfig(l)), frrNH, false)
}

func BenchmarkFRRDelete5000(b *testing.B) {
	l := labtest.Require(b)
	benchBatch(b, benchOpen(b, FRRFactory().Open, frrConfig(l)), frrNH, true)
}

func BenchmarkFRRRead5000(b *testing.B) {
	l := labtest.Require(b)
	benchRead(b, benchOpen(b, FRRFactory().Open, frrConfig(l)), frrNH)
}

func BenchmarkFRROpen(b *testing.B) {
	l := labtest.Require(b)
	cfg := frrConfig(l)
	b.ReportAllocs()
	for range b.N {
		d, err := OpenFRR(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		d.Close()
		b.StartTimer()
	}
}

func BenchmarkLinuxAdd5000(b *testing.B) {
	l := labtest.Require(b)
	benchBatch(b, benchOpen(b, LinuxFactory().Open, linuxConfig(l)), linuxNH, false)
}

func BenchmarkLinuxDelete5000(b *testing.B) {
	l := labtest.Require(b)
	benchBatch(b, benchOpen(b, LinuxFactory().Open, linuxConfig(l)), linuxNH, true)
}

func BenchmarkLinuxRead5000(b *testing.B) {
	l := labtest.Require(b)
	benchRead(b, benchOpen(b, LinuxFactory().Open, linuxConfig(l)), linuxNH)
}

func BenchmarkLinuxOpen(b *testing.B) {
	l := labtest.Require(b)
	cfg := linuxConfig(l)
	b.ReportAllocs()
	for range b.N {
		d, err := OpenLinux(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		d.Close()
		b.StartTimer()
	}
}

// BenchmarkFRRVtyshLocal5000 is the reference for BenchmarkFRRAdd5000: the same 5,000 lines
// in the same wrapper, fed to vtysh inside the switch's namespace without SSH. It measures
// what FRR itself costs on this machine at the time the benchmarks run.
func BenchmarkFRRVtyshLocal5000(b *testing.B) {
	l := labtest.Require(b)
	d := l.Devices["sw1"]
	file := func(name string, action route.Action) string {
		var in strings.Builder
		in.WriteString("configure terminal\n")
		for _, c := range frrBatch(benchOps(benchRoutes, action, frrNH)) {
			in.WriteString(c + "\n")
		}
		path := filepath.Join(b.TempDir(), name)
		if err := os.WriteFile(path, []byte(in.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		return path
	}
	add, del := file("add", route.ActionAdd), file("del", route.ActionDelete)
	vtysh := func(path string) {
		// The namespace's FRR runtime directory is /var/run/frr/<namespace> (internal/lab).
		if _, err := l.Exec(b.Context(), "sw1", "sh", "-c", "vtysh -N "+d.Namespace+" --config_dir /var/run/frr < "+path); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		vtysh(add)
		b.StopTimer()
		vtysh(del)
		b.StartTimer()
	}
}

// fleetPool is the fleet benchmark's pool (internal/e2e BenchmarkFleet): room for 20,000
// routes of /26s, where labPool holds 8,192 /29s.
var fleetPool = netip.MustParsePrefix("10.128.0.0/9")

// fleetOps returns the adds (or deletes) of the /26s first..first+n-1 of fleetPool: via
// frrNH, or with each, each via its own host as in the fleet (subnet i via host i's address,
// 10.(11+i%10).x.y: internal/e2e fleetHostAddr).
func fleetOps(first, n int, action route.Action, each bool) []route.RouteOp {
	return subnetOps(fleetPool, 26, first, n, action, func(i int) netip.Addr {
		if !each {
			return frrNH
		}
		j := i / 10
		return netip.AddrFrom4([4]byte{10, byte(11 + i%10), byte(j / 250), byte(1 + j%250)})
	})
}

// BenchmarkFRRAdd5000At is the switch's share of BenchmarkFleet, step by step: one session
// adds 5,000 routes to an FRR configuration that already holds 0, 5,000, 10,000 or 15,000
// (the fleet's batches), and reads them all back, as the apply engine's session does: every
// route via one next hop (nexthop=one), then each via its own host as in the fleet
// (nexthop=each: staticd tracks every next hop with zebra). Each size reports the driver's push and read-back beside the same lines fed to vtysh inside the
// switch's namespace without SSH (vtysh-ms: what FRR itself costs at that size). The
// routes are removed after the run.
//
//	RETURNPATH_REQUIRE_LAB=1 go test ./drivers/ssh -run '^$' -bench BenchmarkFRRAdd5000At -benchtime 1x -timeout 30m
func BenchmarkFRRAdd5000At(b *testing.B) {
	l := labtest.Require(b)
	cfg := frrConfig(l)
	cfg.Managed = append(cfg.Managed, fleetPool)
	d := benchOpen(b, FRRFactory().Open, cfg)
	dev := l.Devices["sw1"]
	vtysh := func(ops []route.RouteOp) time.Duration {
		var in strings.Builder
		in.WriteString("configure terminal\n")
		for _, c := range frrBatch(ops) {
			in.WriteString(c + "\n")
		}
		path := filepath.Join(b.TempDir(), "batch")
		if err := os.WriteFile(path, []byte(in.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		// Not b.Context(): the cleanup runs it too, when that context is done.
		if _, err := l.Exec(context.Background(), "sw1", "sh", "-c", "vtysh -N "+dev.Namespace+" --config_dir /var/run/frr < "+path); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	const batch = 5000
	present, each := 0, false // the pool's routes the switch holds: fleetOps(0, present, each)
	b.Cleanup(func() {
		if present > 0 {
			vtysh(fleetOps(0, present, route.ActionDelete, each))
		}
	})
	for _, variant := range []string{"one", "each"} {
		if present > 0 {
			vtysh(fleetOps(0, present, route.ActionDelete, each))
			present = 0
		}
		each = variant == "each"
		for _, held := range []int{0, batch, 2 * batch, 3 * batch} {
			b.Run(fmt.Sprintf("nexthop=%s/held=%d", variant, held), func(b *testing.B) {
				// The configuration holds exactly held routes of the pool before each push.
				if present > held {
					vtysh(fleetOps(held, present-held, route.ActionDelete, each))
				} else if present < held {
					vtysh(fleetOps(present, held-present, route.ActionAdd, each))
				}
				adds, dels := fleetOps(held, batch, route.ActionAdd, each), fleetOps(held, batch, route.ActionDelete, each)
				var push, read, local time.Duration
				for i := range b.N {
					start := time.Now()
					mustApply(b, d, adds)
					push += time.Since(start)
					start = time.Now()
					rs, err := d.Routes(b.Context())
					if err != nil {
						b.Fatal(err)
					}
					read += time.Since(start)
					if len(rs) != held+batch {
						b.Fatalf("read %d routes, want %d", len(rs), held+batch)
					}
					vtysh(dels)
					local += vtysh(adds)
					if i < b.N-1 {
						vtysh(dels)
					}
				}
				present = held + batch
				n := float64(b.N)
				b.ReportMetric(float64(push.Milliseconds())/n, "push-ms")
				b.ReportMetric(float64(read.Milliseconds())/n, "read-ms")
				b.ReportMetric(float64(local.Milliseconds())/n, "vtysh-ms")
			})
		}
	}
}
