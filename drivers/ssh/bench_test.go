package ssh

import (
	"context"
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
	base := labPool.Addr().As4()
	ops := make([]route.RouteOp, n)
	for i := range ops {
		a := base
		v := uint32(i) << 3
		a[1] += byte(v >> 16)
		a[2] += byte(v >> 8)
		a[3] += byte(v)
		ops[i] = route.RouteOp{Action: action, Route: route.Route{
			VRF: route.DefaultVRF, Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 29), NextHop: nh}}
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
