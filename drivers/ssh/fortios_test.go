package ssh

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/drivers/ssh/emulate/fortios"
)

// The fortinet_fortios driver's tests run against drivers/ssh/emulate/fortios, an in-process
// emulation of the FortiOS CLI built from Fortinet's documentation: no FortiOS image runs on
// this machine.

// startFortiOS starts an emulated FortiGate and returns it with a driver config that reaches
// it, routes leaving by port2.
func startFortiOS(t testing.TB, opts fortios.Options) (*fortios.Device, drivers.Config) {
	t.Helper()
	opts.Username, opts.Password = "admin", "s3cret-fgt"
	dev, err := fortios.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(dev.Addr().String())}, dev.HostKey()) + "\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return dev, drivers.Config{
		Name:     "fw1",
		Platform: route.PlatformFortiOS,
		Address:  dev.Addr(),
		VRF:      route.DefaultVRF,
		Managed:  []netip.Prefix{labPool},
		Username: opts.Username,
		Password: drivers.Secret(opts.Password),
		SSH:      drivers.SSHConfig{KnownHosts: kh, HostKey: drivers.HostKeyStrict},
		FortiOS:  drivers.FortiOSConfig{Device: "port2"},
	}
}

// fortiosVRFNum is the emulation's VRF number of a returnpath VRF name.
func fortiosVRFNum(t testing.TB, vrf string) int {
	n, err := fortiosVRF(vrf)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func fortiosHarness(t *testing.T, opts fortios.Options) drivertest.Harness {
	dev, cfg := startFortiOS(t, opts)
	other, err := fortios.Start(fortios.Options{Username: "x", Password: "y"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty_known_hosts")
	wrong := filepath.Join(dir, "wrong_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(dev.Addr().String())}, other.HostKey()) + "\n"
	if err := os.WriteFile(wrong, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	planted := uint32(9000) // numbers the driver never chooses: FortiOS numbers up from the highest
	return drivertest.Harness{
		Config:         cfg,
		Open:           FortiOSFactory().Open,
		Preview:        FortiOSFactory().Preview,
		NextHops:       eosNextHops,
		VRF:            "7",
		Unmanaged:      labUnmanaged,
		MarksOwnership: true,
		// A refused line makes the driver undo the batch: it lands whole or not at all.
		Atomic:         true,
		ForeignIndexes: true,
		List: func(context.Context) ([]route.Route, error) {
			var out []route.Route
			for _, e := range dev.Entries() {
				vrf := route.DefaultVRF
				if e.VRF != 0 {
					vrf = strconv.Itoa(e.VRF)
				}
				if e.Gateway.IsValid() {
					out = append(out, route.Route{VRF: vrf, Prefix: e.Dst, NextHop: e.Gateway})
				}
			}
			return out, nil
		},
		// A foreign route: the same fields with another comment.
		Plant: func(_ context.Context, r route.Route) error {
			dev.Set(fortios.Entry{Dst: r.Prefix, Gateway: r.NextHop, Device: "port2", Comment: "ops-team", VRF: fortiosVRFNum(t, r.VRF)})
			return nil
		},
		// One entry per next hop with returnpath's comment, at numbers the driver never
		// chooses, as someone editing returnpath's routes by hand would leave them.
		PlantNextHops: func(_ context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				planted++
				dev.Set(fortios.Entry{Seq: planted, Dst: p, Gateway: nh, Device: "port2", Comment: fortiosOwner})
			}
			return nil
		},
		Remove: func(_ context.Context, r route.Route) error {
			dev.Delete(r.Prefix, r.NextHop, fortiosVRFNum(t, r.VRF))
			return nil
		},
		// The emulation refuses a multicast gateway at "set gateway".
		Reject: func(p netip.Prefix) (route.Route, string) {
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: netip.MustParseAddr("239.1.1.1")}, "value parse error"
		},
		WrongPassword:  func(cfg drivers.Config) drivers.Config { cfg.Password = "not-" + cfg.Password; return cfg },
		UnknownHostKey: func(cfg drivers.Config) drivers.Config { cfg.SSH.KnownHosts = empty; return cfg },
		KeyMismatch:    func(cfg drivers.Config) drivers.Config { cfg.SSH.KnownHosts = wrong; return cfg },
		Unreachable: func(cfg drivers.Config) drivers.Config {
			cfg.Address = netip.AddrPortFrom(cfg.Address.Addr(), 1)
			return cfg
		},
	}
}

func TestFortiOSConformance(t *testing.T) {
	drivertest.Run(t, fortiosHarness(t, fortios.Options{}))
}

// TestFortiOSConformancePagingOn runs the suite against a FortiGate whose console pages
// ("set output more", FortiOS's default): every read longer than 10 lines stops at --More--.
func TestFortiOSConformancePagingOn(t *testing.T) {
	drivertest.Run(t, fortiosHarness(t, fortios.Options{Paging: true, PageLines: 10}))
}
