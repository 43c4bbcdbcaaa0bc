package route_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/returnpath/returnpath/drivers/route"
)

func TestRouteOpValidate(t *testing.T) {
	t.Parallel()
	ok := route.Route{VRF: route.DefaultVRF, Prefix: netip.MustParsePrefix("10.210.1.0/24"), NextHop: netip.MustParseAddr("10.0.0.1")}
	with := func(f func(r *route.Route)) route.Route { r := ok; f(&r); return r }
	tests := []struct {
		name      string
		op        route.RouteOp
		wantField string // "" means valid
	}{
		{name: "valid add", op: route.RouteOp{Action: route.ActionAdd, Route: ok}},
		{name: "valid delete in a VRF", op: route.RouteOp{Action: route.ActionDelete, Route: with(func(r *route.Route) { r.VRF = "blue-1.a_b" })}},
		{name: "unknown action", op: route.RouteOp{Action: "replace", Route: ok}, wantField: "action"},
		{name: "empty vrf", op: route.RouteOp{Action: route.ActionAdd, Route: with(func(r *route.Route) { r.VRF = "" })}, wantField: "vrf"},
		{name: "vrf with a newline", op: route.RouteOp{Action: route.ActionAdd, Route: with(func(r *route.Route) { r.VRF = "red\nexit" })}, wantField: "vrf"},
		{name: "no prefix", op: route.RouteOp{Action: route.ActionAdd, Route: with(func(r *route.Route) { r.Prefix = netip.Prefix{} })}, wantField: "prefix"},
		{name: "host bits", op: route.RouteOp{Action: route.ActionAdd, Route: with(func(r *route.Route) { r.Prefix = netip.MustParsePrefix("10.210.1.1/24") })}, wantField: "prefix"},
		{name: "no next hop", op: route.RouteOp{Action: route.ActionAdd, Route: with(func(r *route.Route) { r.NextHop = netip.Addr{} })}, wantField: "next_hop"},
		{name: "zoned next hop", op: route.RouteOp{Action: route.ActionAdd, Route: route.Route{VRF: "default", Prefix: netip.MustParsePrefix("2001:db8::/64"), NextHop: netip.MustParseAddr("fe80::1%eth0")}}, wantField: "next_hop"},
		{name: "mixed families", op: route.RouteOp{Action: route.ActionAdd, Route: with(func(r *route.Route) { r.NextHop = netip.MustParseAddr("2001:db8::1") })}, wantField: "next_hop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *route.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %T %v, want *route.FieldError", err, err)
			}
			if fe.Field != tt.wantField {
				t.Errorf("Validate() field = %q, want %q", fe.Field, tt.wantField)
			}
		})
	}
}

func TestInverseAndKey(t *testing.T) {
	t.Parallel()
	r := route.Route{VRF: "blue", Prefix: netip.MustParsePrefix("10.210.1.0/24"), NextHop: netip.MustParseAddr("10.0.0.1")}
	add := route.RouteOp{Action: route.ActionAdd, Route: r}
	if got := add.Inverse(); got != (route.RouteOp{Action: route.ActionDelete, Route: r}) {
		t.Errorf("Inverse(add) = %v", got)
	}
	if got := add.Inverse().Inverse(); got != add {
		t.Errorf("Inverse(Inverse(add)) = %v, want %v", got, add)
	}
	other := r
	other.NextHop = netip.MustParseAddr("10.0.0.2")
	if r.Key() != other.Key() {
		t.Errorf("routes differing only by next hop have keys %v and %v, want equal", r.Key(), other.Key())
	}
	if got, want := add.String(), "add 10.210.1.0/24 via 10.0.0.1 vrf blue"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestManaged(t *testing.T) {
	t.Parallel()
	pools := []netip.Prefix{netip.MustParsePrefix("10.210.0.0/16")}
	tests := []struct {
		prefix string
		want   bool
	}{
		{prefix: "10.210.1.0/24", want: true},
		{prefix: "10.210.0.0/16", want: true},
		{prefix: "172.0.0.0/8", want: false}, // contains the pool, is not inside it
		{prefix: "10.0.0.0/24", want: false},
	}
	for _, tt := range tests {
		if got := route.Managed(netip.MustParsePrefix(tt.prefix), pools); got != tt.want {
			t.Errorf("Managed(%s) = %v, want %v", tt.prefix, got, tt.want)
		}
	}
}
