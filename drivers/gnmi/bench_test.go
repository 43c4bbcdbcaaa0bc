package gnmi

import (
	"context"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/returnpath/returnpath/drivers/route"
)

var benchPlatforms = []route.Platform{route.PlatformOpenConfig, route.PlatformNokiaSRL}

// benchDevice starts a device for a benchmark, with an operation timeout long enough for the
// OpenConfig target to validate 10,000 routes in one Set on a loaded machine.
func benchDevice(b *testing.B, platform route.Platform, pki *testPKI) *device {
	dev := startDevice(b, platform, pki)
	dev.cfg.OpTimeout = 10 * time.Minute
	return dev
}

// benchRoutes returns n routes in testPool (/30s from 172.20.0.0), alternating next hops.
func benchRoutes(n int) []route.Route {
	rs := make([]route.Route, n)
	for i := range rs {
		a := uint32(172)<<24 | uint32(20)<<16 | uint32(i)<<2
		rs[i] = route.Route{
			VRF:     route.DefaultVRF,
			Prefix:  netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 30),
			NextHop: []netip.Addr{nh1, nh2}[i%2],
		}
	}
	return rs
}

func perRoute(b *testing.B, routes int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*routes), "ns/route")
}

// cpuMeter sums the process's CPU time (user+system, all goroutines: driver, gRPC and, in
// the round-trip benchmarks, the target) over the timed sections. Unlike wall time it does
// not grow when other processes load the machine.
type cpuMeter struct {
	total time.Duration
	runs  int
	start time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *cpuMeter) begin() { m.start = processCPU() }
func (m *cpuMeter) end()   { m.total += processCPU() - m.start; m.runs++ }

func (m *cpuMeter) report(b *testing.B, routes int) {
	b.ReportMetric(float64(m.total.Nanoseconds())/float64(m.runs*routes), "cpu-ns/route")
}

// BenchmarkApply1000 is 1,000 route adds in one SetRequest against the in-process target
// over loopback TLS: driver, gRPC and the target's schema validation together. The deletes
// that reset the device between iterations are not timed.
func BenchmarkApply1000(b *testing.B) {
	for _, platform := range benchPlatforms {
		b.Run(string(platform), func(b *testing.B) {
			dev := benchDevice(b, platform, newPKI(b))
			d, err := Open(b.Context(), dev.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			rs := benchRoutes(1000)
			adds, dels := add(rs...), del(rs...)
			var cpu cpuMeter
			b.ResetTimer()
			for b.Loop() {
				cpu.begin()
				if err := d.Apply(b.Context(), adds); err != nil {
					b.Fatal(err)
				}
				cpu.end()
				b.StopTimer()
				if err := d.Apply(b.Context(), dels); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			perRoute(b, len(rs))
			cpu.report(b, len(rs))
		})
	}
}

// BenchmarkRoutes10000 is a Get (and decode) of 10,000 routes over loopback TLS.
func BenchmarkRoutes10000(b *testing.B) {
	for _, platform := range benchPlatforms {
		b.Run(string(platform), func(b *testing.B) {
			dev := benchDevice(b, platform, newPKI(b))
			d, err := Open(b.Context(), dev.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			rs := benchRoutes(10000)
			if err := d.Apply(b.Context(), add(rs...)); err != nil {
				b.Fatal(err)
			}
			var cpu cpuMeter
			b.ResetTimer()
			for b.Loop() {
				cpu.begin()
				got, err := d.Routes(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				cpu.end()
				if len(got) != len(rs) {
					b.Fatalf("Routes returned %d routes, want %d", len(got), len(rs))
				}
			}
			perRoute(b, len(rs))
			cpu.report(b, len(rs))
		})
	}
}

// BenchmarkEncode1000 is the driver's own CPU for a 1,000-route batch: validate, plan and
// marshal the SetRequest to bytes, with no network and no target.
func BenchmarkEncode1000(b *testing.B) {
	for _, platform := range benchPlatforms {
		b.Run(string(platform), func(b *testing.B) {
			cfg := benchDevice(b, platform, nil).cfg
			enc, err := newEncoding(cfg)
			if err != nil {
				b.Fatal(err)
			}
			ops := add(benchRoutes(1000)...)
			var cpu cpuMeter
			for b.Loop() {
				cpu.begin()
				rops, err := resolve(cfg, ops)
				if err != nil {
					b.Fatal(err)
				}
				var snap *snapshot
				if enc.needsSnapshot(rops) {
					snap = newSnapshot()
				}
				if _, err := proto.Marshal(enc.plan(snap, rops)); err != nil {
					b.Fatal(err)
				}
				cpu.end()
			}
			perRoute(b, len(ops))
			cpu.report(b, len(ops))
		})
	}
}

// BenchmarkDecode10000 is the driver's own CPU to read 10,000 routes: unmarshal the
// GetResponse bytes, decode the JSON and filter to the pools.
func BenchmarkDecode10000(b *testing.B) {
	for _, platform := range benchPlatforms {
		b.Run(string(platform), func(b *testing.B) {
			dev := benchDevice(b, platform, nil)
			d, err := Open(b.Context(), dev.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			rs := benchRoutes(10000)
			if err := d.Apply(b.Context(), add(rs...)); err != nil {
				b.Fatal(err)
			}
			var raw [][]byte
			for _, p := range d.enc.readPaths(nil) {
				resp, err := dev.target.Get(contextWithCreds(b), &gpb.GetRequest{Path: []*gpb.Path{p}, Type: gpb.GetRequest_CONFIG, Encoding: gpb.Encoding_JSON_IETF})
				if err != nil {
					b.Fatal(err)
				}
				m, err := proto.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				raw = append(raw, m)
			}
			// Drop the target's 10,000-route tree so that the garbage collector's scans of it
			// are not charged to the driver: in production the device's heap is elsewhere.
			top := "/network-instances"
			if platform == route.PlatformNokiaSRL {
				top = "/network-instance[name=default]"
			}
			if err := dev.target.Apply(&gpb.SetRequest{Delete: []*gpb.Path{mustPath(b, top)}}); err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			var cpu cpuMeter
			b.ResetTimer()
			for b.Loop() {
				cpu.begin()
				snap := newSnapshot()
				for _, m := range raw {
					var resp gpb.GetResponse
					if err := proto.Unmarshal(m, &resp); err != nil {
						b.Fatal(err)
					}
					if err := d.enc.decode(snap, resp.Notification); err != nil {
						b.Fatal(err)
					}
				}
				got := d.enc.routes(snap, dev.cfg.Managed)
				cpu.end()
				if len(got) != len(rs) {
					b.Fatalf("decoded %d routes, want %d", len(got), len(rs))
				}
			}
			perRoute(b, len(rs))
			cpu.report(b, len(rs))
		})
	}
}

// contextWithCreds is an incoming-RPC context carrying the test credentials, for calling
// the target's handlers in-process.
func contextWithCreds(b *testing.B) context.Context {
	return metadataIncoming(b.Context(), "username", testUser, "password", testPassword)
}

func metadataIncoming(ctx context.Context, kv ...string) context.Context {
	return metadata.NewIncomingContext(ctx, metadata.Pairs(kv...))
}
