package drivertest

import (
	"net/netip"
	"testing"
)

func TestNthSubnet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pool string
		bits int
		i    uint32
		want string
	}{
		{pool: "10.210.0.0/16", bits: 28, i: 0, want: "10.210.0.0/28"},
		{pool: "10.210.0.0/16", bits: 28, i: 17, want: "10.210.1.16/28"},
		{pool: "10.208.0.0/12", bits: 24, i: 4095, want: "10.223.255.0/24"},
		{pool: "2001:db8:a00::/48", bits: 64, i: 0, want: "2001:db8:a00::/64"},
		{pool: "2001:db8:a00::/48", bits: 64, i: 1, want: "2001:db8:a00:1::/64"},
		{pool: "2001:db8:a00::/48", bits: 64, i: 0x1234, want: "2001:db8:a00:1234::/64"},
		{pool: "fd00:210::/32", bits: 64, i: 0x10001, want: "fd00:210:1:1::/64"},
	} {
		got := nthSubnet(netip.MustParsePrefix(tc.pool), tc.bits, tc.i)
		if got.String() != tc.want {
			t.Errorf("nthSubnet(%s, %d, %d) = %s, want %s", tc.pool, tc.bits, tc.i, got, tc.want)
		}
	}
}
