package ssh

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/drivertest"
	"github.com/returnpath/returnpath/drivers/route"
)

// emulated is what every vendor emulation in emulate/ offers the tests that reach it.
type emulated interface {
	Addr() netip.AddrPort
	HostKey() gossh.PublicKey
}

// knownHostsFile writes a known_hosts file holding key for addr, in a directory of its own.
// A nil key writes an empty file.
func knownHostsFile(t testing.TB, addr netip.AddrPort, key gossh.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	var line string
	if key != nil {
		line = knownhosts.Line([]string{knownhosts.Normalize(addr.String())}, key) + "\n"
	}
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// emulatedConfig returns a driver config that reaches dev as user with password, checking its
// host key strictly, managing the lab pool and the IPv6 pool v6Pool in the default VRF.
func emulatedConfig(t testing.TB, dev emulated, name string, platform route.Platform, user, password string) drivers.Config {
	t.Helper()
	return drivers.Config{
		Name:     name,
		Platform: platform,
		Address:  dev.Addr(),
		VRF:      route.DefaultVRF,
		Managed:  []netip.Prefix{labPool, v6Pool},
		Username: user,
		Password: drivers.Secret(password),
		SSH:      drivers.SSHConfig{KnownHosts: knownHostsFile(t, dev.Addr(), dev.HostKey()), HostKey: drivers.HostKeyStrict},
	}
}

// withLoginFailures fills the conformance harness's four login failures for an emulated
// device: a wrong password, an unknown host key, the host key of other (a second emulation:
// what a man in the middle looks like) at dev's address, and a port nothing listens on.
func withLoginFailures(t testing.TB, h *drivertest.Harness, dev, other emulated) {
	t.Helper()
	empty := knownHostsFile(t, dev.Addr(), nil)
	wrong := knownHostsFile(t, dev.Addr(), other.HostKey())
	h.WrongPassword = func(cfg drivers.Config) drivers.Config { cfg.Password = "not-" + cfg.Password; return cfg }
	h.UnknownHostKey = func(cfg drivers.Config) drivers.Config { cfg.SSH.KnownHosts = empty; return cfg }
	h.KeyMismatch = func(cfg drivers.Config) drivers.Config { cfg.SSH.KnownHosts = wrong; return cfg }
	h.Unreachable = func(cfg drivers.Config) drivers.Config {
		cfg.Address = netip.AddrPortFrom(cfg.Address.Addr(), 1) // nothing listens: refused
		return cfg
	}
}

// benchAdd1000 measures one Apply of adds on a session opened with open against an emulated
// device, and reports the time per route and the device's commits per batch (commits counts
// them). clear removes the batch's routes from the device, out of band, between iterations.
func benchAdd1000(b *testing.B, cfg drivers.Config, open func(context.Context, drivers.Config) (drivers.Driver, error),
	adds []route.RouteOp, clear func(), commits func() int) {
	b.Helper()
	d := benchOpen(b, open, cfg)
	start := commits()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		clear()
		b.StartTimer()
		if err := d.Apply(b.Context(), adds); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(adds)), "ns/route")
	b.ReportMetric(float64(commits()-start)/float64(b.N), "commits/batch")
}

// benchOpenClose measures opening (and closing) a session with open.
func benchOpenClose(b *testing.B, cfg drivers.Config, open func(context.Context, drivers.Config) (drivers.Driver, error)) {
	b.Helper()
	for range b.N {
		d, err := open(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// wantEveryOpRejected checks that err rejects the whole batch: kind rejected, and one
// rejection per op, in order, each carrying the device's text. It returns the error.
func wantEveryOpRejected(t *testing.T, err error, batch []route.RouteOp, text string) *drivers.Error {
	t.Helper()
	var de *drivers.Error
	if !errors.As(err, &de) || de.Kind != drivers.KindRejected {
		t.Fatalf("Apply = %v, want kind rejected", err)
	}
	if len(de.Rejections) != len(batch) {
		t.Fatalf("Rejections = %+v, want all %d ops", de.Rejections, len(batch))
	}
	for i, r := range de.Rejections {
		if r.Index != i || r.Op != batch[i] || !strings.Contains(r.Output, text) {
			t.Errorf("rejection %d = %d %s %q, want op %d with the device's text %q", i, r.Index, r.Op, r.Output, i, text)
		}
	}
	return de
}

// multicastNextHop returns a multicast next hop of p's family, which every emulated platform
// refuses as its vendor documents (a next hop must be a unicast address): 239.1.1.1 for an
// IPv4 prefix, ff0e::1 for an IPv6 one.
func multicastNextHop(p netip.Prefix) netip.Addr {
	if p.Addr().Is4() {
		return netip.MustParseAddr("239.1.1.1")
	}
	return netip.MustParseAddr("ff0e::1")
}
