package probe_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/returnpath/returnpath/internal/probe"
)

// TestSource reads (never changes) the interfaces of the test's namespace: the loopback
// interface holds 127.0.0.1, the first address of 127.0.0.0/8, as docker0 holds its subnet's.
func TestSource(t *testing.T) {
	t.Parallel()
	got, err := probe.Source("lo", netip.MustParsePrefix("127.0.0.0/8"))
	if err != nil || got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Source(lo, 127.0.0.0/8) = %v, %v; want 127.0.0.1", got, err)
	}
	for _, tt := range []struct {
		name, ifname string
		subnet       netip.Prefix
	}{
		{name: "no such interface", ifname: "nodocker0", subnet: netip.MustParsePrefix("10.210.10.0/24")},
		{name: "no address of the subnet", ifname: "lo", subnet: netip.MustParsePrefix("10.210.10.0/24")},
	} {
		_, err := probe.Source(tt.ifname, tt.subnet)
		var ct *probe.CannotTest
		if !errors.As(err, &ct) {
			t.Errorf("%s: Source = %v, want a *CannotTest", tt.name, err)
		}
	}
}
