package ssh

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
)

// The tests in this file run against real FRR (zebra, staticd and vtysh behind sshd) and a
// real Linux namespace behind sshd, in the network-namespace lab of internal/lab. Without
// root or the Debian packages they skip, or fail when RETURNPATH_REQUIRE_LAB=1.

func TestMain(m *testing.M) {
	os.Exit(labtest.Main(m, lab.Options{}))
}

var (
	labPool      = netip.MustParsePrefix("10.210.0.0/16")
	labUnmanaged = netip.MustParsePrefix("10.200.0.0/24")
	// The lab's IPv6 docker pool and a prefix outside it (docs/lab.md).
	labPool6      = netip.MustParsePrefix("fd00:210::/48")
	labUnmanaged6 = netip.MustParsePrefix("fd00:200::/64")
)

// frrConfig returns the config of the lab's FRR switch, with password authentication.
func frrConfig(l *lab.Lab) drivers.Config {
	d := l.Devices["sw1"]
	return drivers.Config{
		Name:     d.Name,
		Platform: route.PlatformFRR,
		Address:  d.Mgmt,
		VRF:      route.DefaultVRF,
		Managed:  []netip.Prefix{labPool, labPool6},
		Username: d.Username,
		Password: drivers.Secret(d.Password),
		SSH:      drivers.SSHConfig{KnownHosts: d.KnownHosts, HostKey: drivers.HostKeyStrict},
	}
}

// linuxConfig returns the config of the lab's Linux firewall: rplinux with sudo and password.
func linuxConfig(l *lab.Lab) drivers.Config {
	d := l.Devices["fw1"]
	return drivers.Config{
		Name:     d.Name,
		Platform: route.PlatformLinux,
		Address:  d.Mgmt,
		VRF:      route.DefaultVRF,
		Managed:  []netip.Prefix{labPool, labPool6},
		Username: d.Username,
		Password: drivers.Secret(d.Password),
		SSH:      drivers.SSHConfig{KnownHosts: d.KnownHosts, HostKey: drivers.HostKeyStrict},
		Linux:    drivers.LinuxConfig{Proto: DefaultLinuxProto, Sudo: true},
	}
}

// hostKeyCases fills the harness cases every SSH device shares.
func hostKeyCases(t *testing.T, l *lab.Lab, h *drivertest.Harness, device, other string) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The device's address with another device's key: what a man in the middle looks like.
	otherKey, err := os.ReadFile(l.Devices[other].HostKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(otherKey))
	wrong := filepath.Join(dir, "wrong_known_hosts")
	line := l.Devices[device].Mgmt.Addr().String() + " " + f[0] + " " + f[1] + "\n"
	if err := os.WriteFile(wrong, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	h.WrongPassword = func(cfg drivers.Config) drivers.Config {
		cfg.Password = "not-" + cfg.Password
		cfg.PrivateKey = ""
		return cfg
	}
	h.UnknownHostKey = func(cfg drivers.Config) drivers.Config { cfg.SSH.KnownHosts = empty; return cfg }
	h.KeyMismatch = func(cfg drivers.Config) drivers.Config { cfg.SSH.KnownHosts = wrong; return cfg }
	h.Unreachable = func(cfg drivers.Config) drivers.Config {
		cfg.Address = netip.AddrPortFrom(cfg.Address.Addr(), 1) // nothing listens: refused
		return cfg
	}
}

func frrHarness(t *testing.T, l *lab.Lab) drivertest.Harness {
	list := func(ctx context.Context) ([]route.Route, error) {
		out, err := l.Vtysh(ctx, "sw1", "show running-config staticd")
		if err != nil {
			return nil, err
		}
		return parseFRRStaticConfig(out), nil
	}
	h := drivertest.Harness{
		Config:          frrConfig(l),
		Open:            FRRFactory().Open,
		Preview:         FRRFactory().Preview,
		NextHops:        []netip.Addr{netip.MustParseAddr("10.10.10.101"), netip.MustParseAddr("10.10.10.102")},
		NextHops6:       []netip.Addr{netip.MustParseAddr("fd00:10:10:10::101"), netip.MustParseAddr("fd00:10:10:10::102")},
		VRF:             "blue",
		VRFNotInstalled: true, // no vrf kernel module here: FRR keeps the VRF's routes as config
		SkipReasons: map[string]string{"RepairForeignIndexedNextHop": "FRR keys static next hops by address, not by an index",
			"Rejected": "FRR 8.4 accepts every well-formed static route, so no valid op is refused; " +
				"TestFRRRejectedLine covers refusal attribution with a substituted line"},
		Unmanaged:  labUnmanaged,
		Unmanaged6: labUnmanaged6,
		List:       list,
		Plant: func(ctx context.Context, r route.Route) error {
			_, err := l.Vtysh(ctx, "sw1", frrRouteLine(r))
			return err
		},
		// FRR holds one "ip route P NH" line per next hop.
		PlantNextHops: func(ctx context.Context, p netip.Prefix, nhs []netip.Addr) error {
			for _, nh := range nhs {
				if _, err := l.Vtysh(ctx, "sw1", frrRouteLine(route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: nh})); err != nil {
					return err
				}
			}
			return nil
		},
		Remove: func(ctx context.Context, r route.Route) error {
			out, err := l.Vtysh(ctx, "sw1", "no "+frrRouteLine(r))
			if err != nil && strings.Contains(out, frrNonExistent) {
				return nil
			}
			return err
		},
	}
	hostKeyCases(t, l, &h, "sw1", "fw1")
	return h
}

func TestFRRConformance(t *testing.T) {
	l := labtest.Require(t)
	drivertest.Run(t, frrHarness(t, l))
}

func linuxHarness(t *testing.T, l *lab.Lab, cfg drivers.Config) drivertest.Harness {
	h := drivertest.Harness{
		Config:         cfg,
		Open:           LinuxFactory().Open,
		Preview:        LinuxFactory().Preview,
		NextHops:       []netip.Addr{netip.MustParseAddr("10.10.20.1"), netip.MustParseAddr("10.10.20.3")},
		NextHops6:      []netip.Addr{netip.MustParseAddr("fd00:10:10:20::1"), netip.MustParseAddr("fd00:10:10:20::3")},
		Unmanaged:      labUnmanaged,
		Unmanaged6:     labUnmanaged6,
		MarksOwnership: true,
		SkipReasons: map[string]string{"RepairForeignIndexedNextHop": "the kernel keys a route's next hops by no index",
			"VRF": "this machine has no vrf kernel module, so the firewall has no VRF"},
		List: func(ctx context.Context) ([]route.Route, error) {
			var all []route.Route
			for _, family := range []string{"-4", "-6"} {
				out, err := l.Exec(ctx, "fw1", "ip", "-json", family, "route", "show")
				if err != nil {
					return nil, err
				}
				rs, err := parseLinuxRoutes(out, nil)
				if err != nil {
					return nil, err
				}
				all = append(all, rs...)
			}
			return all, nil
		},
		// A foreign route: the same kind of route, but with the "static" protocol.
		Plant: func(ctx context.Context, r route.Route) error {
			_, err := l.Exec(ctx, "fw1", "ip", "route", "add", r.Prefix.String(), "via", r.NextHop.String(), "proto", "static")
			return err
		},
		// A multipath route carrying the driver's protocol, as an operator editing one of
		// returnpath's routes by hand would leave it.
		PlantNextHops: func(ctx context.Context, p netip.Prefix, nhs []netip.Addr) error {
			args := []string{"ip", "route", "add", p.String(), "proto", strconv.Itoa(linuxProto(cfg))}
			for _, nh := range nhs {
				args = append(args, "nexthop", "via", nh.String())
			}
			_, err := l.Exec(ctx, "fw1", args...)
			return err
		},
		Remove: func(ctx context.Context, r route.Route) error {
			_, err := l.Exec(ctx, "fw1", "ip", "route", "del", r.Prefix.String(), "via", r.NextHop.String())
			return err
		},
		// The kernel refuses a gateway that is not on a connected network (IPv6 says so in
		// other words).
		Reject: func(p netip.Prefix) (route.Route, string) {
			if p.Addr().Is6() {
				return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: netip.MustParseAddr("fd00:99::1")}, "No route to host"
			}
			return route.Route{VRF: route.DefaultVRF, Prefix: p, NextHop: netip.MustParseAddr("10.99.0.1")}, "Nexthop has invalid gateway"
		},
	}
	hostKeyCases(t, l, &h, "fw1", "sw1")
	return h
}

// TestLinuxConformance runs the suite as rplinux through sudo, with password authentication.
func TestLinuxConformance(t *testing.T) {
	l := labtest.Require(t)
	drivertest.Run(t, linuxHarness(t, l, linuxConfig(l)))
}

// TestLinuxConformanceRoot runs the suite as root, without sudo, with key authentication.
func TestLinuxConformanceRoot(t *testing.T) {
	l := labtest.Require(t)
	cfg := linuxConfig(l)
	key, err := os.ReadFile(l.Devices["fw1"].KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Username, cfg.Password, cfg.PrivateKey, cfg.Linux.Sudo = "root", "", drivers.Secret(key), false
	drivertest.Run(t, linuxHarness(t, l, cfg))
}
