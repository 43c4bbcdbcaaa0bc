package gnmi

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/gnmi/gnmitarget"
	"github.com/returnpath/returnpath/drivers/route"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var (
	nh1 = netip.MustParseAddr("10.10.10.101")
	nh2 = netip.MustParseAddr("10.10.10.102")
)

func rt(vrf, prefix string, nh netip.Addr) route.Route {
	return route.Route{VRF: vrf, Prefix: netip.MustParsePrefix(prefix), NextHop: nh}
}

func add(rs ...route.Route) []route.RouteOp { return opsOf(route.ActionAdd, rs...) }
func del(rs ...route.Route) []route.RouteOp { return opsOf(route.ActionDelete, rs...) }

func opsOf(a route.Action, rs ...route.Route) []route.RouteOp {
	out := make([]route.RouteOp, len(rs))
	for i, r := range rs {
		out[i] = route.RouteOp{Action: a, Route: r}
	}
	return out
}

var routeCmp = cmp.Options{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty()}

func golden(t *testing.T, name string, got []string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	text := strings.Join(got, "\n") + "\n"
	if *update {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(text, string(want)); diff != "" {
		t.Errorf("%s mismatch (-got +want):\n%s", name, diff)
	}
}

// TestPreviewGolden pins the SetRequest each encoding renders for a mixed batch.
func TestPreviewGolden(t *testing.T) {
	t.Parallel()
	batch := slices.Concat(
		add(rt("default", "172.20.1.0/24", nh1), rt("default", "172.20.2.0/24", nh1), rt(testVRF, "172.20.1.0/24", nh2)),
		del(rt("default", "172.20.3.0/24", nh2)),
		add(rt("default", "2001:db8:20::/64", netip.MustParseAddr("2001:db8::1"))),
	)
	for _, tc := range []struct {
		file string
		cfg  drivers.Config
	}{
		{"openconfig.golden", drivers.Config{Platform: route.PlatformOpenConfig}},
		{"openconfig_arista.golden", drivers.Config{Platform: route.PlatformOpenConfig, GNMI: drivers.GNMIConfig{Preset: "arista"}}},
		{"openconfig_override.golden", drivers.Config{Platform: route.PlatformOpenConfig, GNMI: drivers.GNMIConfig{Preset: "nokia", NetworkInstance: "main", Protocol: "rp"}}},
		{"nokia_srl.golden", drivers.Config{Platform: route.PlatformNokiaSRL}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			tc.cfg.Managed = []netip.Prefix{testPool, netip.MustParsePrefix("2001:db8:20::/48")}
			got, err := Preview(tc.cfg, batch)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, got)
		})
	}
}

func TestPreviewRefuses(t *testing.T) {
	t.Parallel()
	cfg := drivers.Config{Platform: route.PlatformOpenConfig, Managed: []netip.Prefix{testPool}}
	for _, tc := range []struct {
		name string
		cfg  drivers.Config
		ops  []route.RouteOp
		want string
	}{
		{"outside pools", cfg, add(rt("default", "10.99.0.0/24", nh1)), "outside the managed prefixes"},
		{"host bits", cfg, add(rt("default", "172.20.1.1/24", nh1)), "host bits"},
		{"bad vrf", cfg, add(rt("bl ue", "172.20.1.0/24", nh1)), "invalid VRF"},
		{"family", cfg, add(rt("default", "172.20.1.0/24", netip.MustParseAddr("2001:db8::1"))), "different address families"},
		{"unknown preset", drivers.Config{Platform: route.PlatformOpenConfig, Managed: cfg.Managed, GNMI: drivers.GNMIConfig{Preset: "acme"}},
			add(rt("default", "172.20.1.0/24", nh1)), "unknown gnmi preset"},
		{"bad protocol name", drivers.Config{Platform: route.PlatformOpenConfig, Managed: cfg.Managed, GNMI: drivers.GNMIConfig{Protocol: "x]/y"}},
			add(rt("default", "172.20.1.0/24", nh1)), "gnmi protocol"},
		{"ssh platform", drivers.Config{Platform: route.PlatformFRR, Managed: cfg.Managed}, add(rt("default", "172.20.1.0/24", nh1)), "not a gNMI platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Preview(tc.cfg, tc.ops)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Preview error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func openDriver(t *testing.T, cfg drivers.Config) *Driver {
	t.Helper()
	d, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func listed(t *testing.T, dev *device) []route.Route {
	t.Helper()
	rs, err := dev.list(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	drivertest.SortRoutes(rs)
	return rs
}

// TestApplyRejectedIsAtomic checks that a SetRequest the device refuses changes nothing and
// is reported as a rejection of every op, with the device's status.
func TestApplyRejectedIsAtomic(t *testing.T) {
	t.Parallel()
	for _, platform := range []route.Platform{route.PlatformOpenConfig, route.PlatformNokiaSRL} {
		t.Run(string(platform), func(t *testing.T) {
			t.Parallel()
			dev := startDevice(t, platform, nil)
			d := openDriver(t, dev.cfg)
			before := rt("default", "172.20.9.0/24", nh1)
			if err := d.Apply(t.Context(), add(before)); err != nil {
				t.Fatal(err)
			}
			bad, text := dev.reject(netip.MustParsePrefix("172.20.2.0/24"))
			batch := slices.Concat(del(before), add(rt("default", "172.20.1.0/24", nh1), bad, rt("default", "172.20.3.0/24", nh2)))
			err := d.Apply(t.Context(), batch)
			var de *drivers.Error
			if !errors.As(err, &de) || de.Kind != drivers.KindRejected {
				t.Fatalf("Apply = %v, want a rejection", err)
			}
			var idx []int
			for _, r := range de.Rejections {
				idx = append(idx, r.Index)
				if r.Op != batch[r.Index] {
					t.Errorf("rejection %d carries op %s, want %s", r.Index, r.Op, batch[r.Index])
				}
				if !strings.Contains(r.Output, text) {
					t.Errorf("rejection output %q does not contain the device's %q", r.Output, text)
				}
			}
			if diff := cmp.Diff(idx, []int{0, 1, 2, 3}); diff != "" {
				t.Errorf("rejected indexes (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(listed(t, dev), []route.Route{before}, routeCmp); diff != "" {
				t.Errorf("device changed by a refused SetRequest (-got +want):\n%s", diff)
			}
		})
	}
}

// TestApplyOneSetRequest checks that a batch is one SetRequest and that a batch the device
// already satisfies sends none.
func TestApplyOneSetRequest(t *testing.T) {
	t.Parallel()
	for _, platform := range []route.Platform{route.PlatformOpenConfig, route.PlatformNokiaSRL} {
		t.Run(string(platform), func(t *testing.T) {
			t.Parallel()
			dev := startDevice(t, platform, nil)
			d := openDriver(t, dev.cfg)
			var rs []route.Route
			for i := range 50 {
				rs = append(rs, route.Route{VRF: "default", Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 20, byte(i), 0}), 24), NextHop: nh1})
			}
			sets0, _ := dev.target.Counts()
			if err := d.Apply(t.Context(), add(rs...)); err != nil {
				t.Fatal(err)
			}
			sets1, _ := dev.target.Counts()
			if sets1-sets0 != 1 {
				t.Errorf("Apply of 50 adds sent %d SetRequests, want 1", sets1-sets0)
			}
			if err := d.Apply(t.Context(), del(rt("default", "172.20.200.0/24", nh1))); err != nil {
				t.Fatal(err)
			}
			if sets2, _ := dev.target.Counts(); sets2 != sets1 {
				t.Errorf("deleting a missing route sent %d SetRequests, want 0", sets2-sets1)
			}
			if diff := cmp.Diff(listed(t, dev), rs, routeCmp); diff != "" {
				t.Errorf("device routes (-got +want):\n%s", diff)
			}
		})
	}
}

// TestSRLGroups checks SR Linux next-hop-group bookkeeping: one group per next hop, shared
// by routes, removed with its last route, and never touching an operator's group.
func TestSRLGroups(t *testing.T) {
	t.Parallel()
	dev := startDevice(t, route.PlatformNokiaSRL, nil)
	d := openDriver(t, dev.cfg)
	a, b := rt("default", "172.20.1.0/24", nh1), rt("default", "172.20.2.0/24", nh1)
	foreign := rt("default", "10.99.0.0/24", nh1)
	if err := dev.plant(t.Context(), foreign); err != nil {
		t.Fatal(err)
	}
	g1, g2, fg := SRLGroupPrefix+nh1.String(), SRLGroupPrefix+nh2.String(), foreignGroup(foreign)
	steps := []struct {
		name string
		ops  []route.RouteOp
		want []string
	}{
		{"two routes share a group", add(a, b), []string{g1, fg}},
		{"group stays while used", del(a), []string{g1, fg}},
		{"next hop change moves the group", slices.Concat(del(b), add(rt("default", "172.20.2.0/24", nh2))), []string{g2, fg}},
		{"last route removes it", del(rt("default", "172.20.2.0/24", nh2)), []string{fg}},
	}
	for _, s := range steps {
		if err := d.Apply(t.Context(), s.ops); err != nil {
			t.Fatalf("%s: Apply: %v", s.name, err)
		}
		got := dev.srlGroups(t)["default"]
		slices.Sort(got)
		want := slices.Clone(s.want)
		slices.Sort(want)
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("%s: groups (-got +want):\n%s", s.name, diff)
		}
	}
}

// TestApplyIndeterminate checks that a Set the device received but never answered is
// indeterminate, not retryable.
func TestApplyIndeterminate(t *testing.T) {
	t.Parallel()
	dev := startDevice(t, route.PlatformOpenConfig, nil)
	cfg := dev.cfg
	cfg.OpTimeout = 300 * time.Millisecond
	d := openDriver(t, cfg)
	received := make(chan struct{}, 1)
	dev.target.SetHook(func(ctx context.Context, _ *gpb.SetRequest) error {
		received <- struct{}{}
		<-ctx.Done() // a device that hangs mid-commit
		return ctx.Err()
	})
	err := d.Apply(t.Context(), add(rt("default", "172.20.1.0/24", nh1)))
	if k := drivers.KindOf(err); k != drivers.KindIndeterminate {
		t.Fatalf("Apply = %v (kind %s), want indeterminate", err, k)
	}
	select {
	case <-received:
	default:
		t.Fatal("the target never received the Set")
	}
}

// TestApplyUnreachable checks that a Set that could not leave because the device is gone is
// unreachable and retryable. (A Set written to a connection that dies before the answer is
// indeterminate instead: TestApplyIndeterminate.)
func TestApplyUnreachable(t *testing.T) {
	t.Parallel()
	dev := startDevice(t, route.PlatformOpenConfig, nil)
	cfg := dev.cfg
	cfg.OpTimeout = 2 * time.Second
	d := openDriver(t, cfg)
	if err := dev.target.Close(); err != nil {
		t.Fatal(err)
	}
	// The first RPC finds the connection gone; reads are always safe to retry.
	if _, err := d.Routes(t.Context()); drivers.KindOf(err) != drivers.KindUnreachable {
		t.Fatalf("Routes = %v, want unreachable", err)
	}
	err := d.Apply(t.Context(), add(rt("default", "172.20.1.0/24", nh1)))
	if k := drivers.KindOf(err); k != drivers.KindUnreachable || !k.Retryable() {
		t.Fatalf("Apply = %v (kind %s), want unreachable", err, k)
	}
}

// TestMutualTLS checks the client certificate: accepted when configured, and an auth
// failure (not a retryable one) when missing.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	dev := startDevice(t, route.PlatformNokiaSRL, pki, gnmitarget.WithTLS(pki.mTLS()))
	cfg := dev.cfg
	cfg.GNMI.CertFile, cfg.GNMI.KeyFile = pki.clientCert, pki.clientKey
	d := openDriver(t, cfg)
	if _, err := d.Routes(t.Context()); err != nil {
		t.Fatalf("Routes with a client certificate: %v", err)
	}
	_, err := Open(t.Context(), dev.cfg)
	if k := drivers.KindOf(err); k != drivers.KindAuth {
		t.Errorf("Open without a client certificate = %v (kind %s), want auth", err, k)
	}
	bad := dev.cfg
	bad.GNMI.CertFile = pki.clientCert
	if _, err := Open(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "together") {
		t.Errorf("Open with a certificate and no key = %v, want a configuration error", err)
	}
}

// TestDecodeShapes feeds the decoders the other shapes devices answer a Get with: one
// update per leaf, module-qualified names, and numbers as strings.
func TestDecodeShapes(t *testing.T) {
	t.Parallel()
	managed := []netip.Prefix{testPool}
	t.Run("openconfig leaves", func(t *testing.T) {
		e, err := newOpenConfig(drivers.GNMIConfig{Preset: "arista"})
		if err != nil {
			t.Fatal(err)
		}
		base := "/network-instances/network-instance[name=%s]/protocols/protocol[identifier=STATIC][name=STATIC]/static-routes/static[prefix=%s]/next-hops/next-hop[index=0]/config/next-hop"
		ns := []*gpb.Notification{{Update: []*gpb.Update{
			{Path: mustPath(t, sprintf(base, "default", "172.20.1.0/24")), Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "10.10.10.101"}}},
			{Path: mustPath(t, sprintf(base, "blue", "172.20.2.0/24")), Val: jv(`"10.10.10.102"`)},
			{Path: mustPath(t, sprintf(base, "default", "172.20.3.0/24")), Val: jv(`"openconfig-local-routing:DROP"`)},
			{Path: mustPath(t, sprintf(base, "default", "10.99.0.0/24")), Val: jv(`"10.10.10.101"`)},
		}}}
		snap := newSnapshot()
		if err := e.decode(snap, ns); err != nil {
			t.Fatal(err)
		}
		want := []route.Route{rt("blue", "172.20.2.0/24", nh2), rt("default", "172.20.1.0/24", nh1)}
		drivertest.SortRoutes(want)
		got := e.routes(snap, managed)
		drivertest.SortRoutes(got)
		if diff := cmp.Diff(got, want, routeCmp); diff != "" {
			t.Errorf("routes (-got +want):\n%s", diff)
		}
	})
	t.Run("srl qualified", func(t *testing.T) {
		e, err := newSRL(drivers.GNMIConfig{})
		if err != nil {
			t.Fatal(err)
		}
		ns := []*gpb.Notification{{
			Update: []*gpb.Update{
				{Path: mustPath(t, "/srl_nokia-network-instance:network-instance[name=default]"), Val: jv(`{
					"srl_nokia-static-routes:static-routes": {"route": [
						{"prefix": "172.20.1.0/24", "next-hop-group": "g1", "admin-state": "enable"},
						{"prefix": "172.20.2.0/24", "next-hop-group": "missing"}]},
					"srl_nokia-next-hop-groups:next-hop-groups": {"group": [
						{"name": "g1", "nexthop": [{"index": "0", "ip-address": "10.10.10.101", "resolve": true}]}]}}`)},
			},
		}}
		snap := newSnapshot()
		if err := e.decode(snap, ns); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(e.routes(snap, managed), []route.Route{rt("default", "172.20.1.0/24", nh1)}, routeCmp); diff != "" {
			t.Errorf("routes (-got +want):\n%s", diff)
		}
	})
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
