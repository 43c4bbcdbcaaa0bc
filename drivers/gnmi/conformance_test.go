package gnmi

import (
	"net"
	"net/netip"
	"testing"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
)

// TestConformance runs the shared driver suite against both schema-validating targets, over
// TLS with a CA made for the test and over plain gRPC.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, platform := range []route.Platform{route.PlatformOpenConfig, route.PlatformNokiaSRL} {
		for _, secure := range []bool{true, false} {
			name := string(platform) + "/plain"
			if secure {
				name = string(platform) + "/tls"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var pki *testPKI
				if secure {
					pki = newPKI(t)
				}
				drivertest.Run(t, harness(t, startDevice(t, platform, pki)))
			})
		}
	}
}

func harness(t *testing.T, dev *device) drivertest.Harness {
	cfg := dev.cfg
	cfg.Managed = []netip.Prefix{testPool, testPool6}
	h := drivertest.Harness{
		Config:     cfg,
		Open:       Factory().Open,
		Preview:    Preview,
		NextHops:   []netip.Addr{netip.MustParseAddr("10.10.10.101"), netip.MustParseAddr("10.10.10.102")},
		NextHops6:  []netip.Addr{netip.MustParseAddr("2001:db8:10::101"), netip.MustParseAddr("2001:db8:10::102")},
		VRF:        testVRF,
		Unmanaged:  netip.MustParsePrefix("10.99.0.0/24"),
		Unmanaged6: netip.MustParsePrefix("2001:db8:99::/64"),
		// Neither model can mark a route as returnpath's: every static route in the pools
		// counts as ours, as on FRR.
		MarksOwnership: false,
		List:           dev.list,
		Plant:          dev.plant,
		Remove:         dev.remove,
		// Both models key a route's next hops by an index the device may choose itself.
		PlantNextHops:  dev.plantNextHops,
		ForeignIndexes: true,
		// A gNMI device applies a SetRequest whole or not at all.
		Reject: dev.reject,
		Atomic: true,
		WrongPassword: func(cfg drivers.Config) drivers.Config {
			cfg.Password = "not-" + testPassword
			return cfg
		},
		Unreachable: func(cfg drivers.Config) drivers.Config {
			cfg.Address = closedPort(t)
			return cfg
		},
		SkipReasons: map[string]string{},
	}
	if dev.pki != nil {
		// A certificate from a CA we do not trust is gNMI's unknown host key; a certificate
		// for another name is its key mismatch.
		h.UnknownHostKey = func(cfg drivers.Config) drivers.Config {
			cfg.GNMI.CAFile = dev.pki.otherCAFile
			return cfg
		}
		h.KeyMismatch = func(cfg drivers.Config) drivers.Config {
			cfg.GNMI.ServerName = "not-" + testServer
			return cfg
		}
	} else {
		h.SkipReasons["UnknownHostKey"] = "plain gRPC has no server certificate to distrust"
		h.SkipReasons["KeyMismatch"] = "plain gRPC has no server certificate to mismatch"
	}
	return h
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return ap
}
