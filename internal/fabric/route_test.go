package fabric_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/returnpath/returnpath/internal/fabric"
)

// TestRouteErrorsAreInvalid: the route types live in drivers/route, whose validation errors
// know nothing of the domain's codes; where the domain validates them, the error must still be
// an EINVALID *fabric.Error naming the field, or the API would answer a bad request with 500.
func TestRouteErrorsAreInvalid(t *testing.T) {
	t.Parallel()
	ok := fabric.Route{VRF: fabric.DefaultVRF, Prefix: netip.MustParsePrefix("10.210.1.0/24"), NextHop: netip.MustParseAddr("10.0.0.1")}
	stage := func(op fabric.RouteOp) error {
		_, err := fabric.StageOps([][]string{{"sw1"}}, []fabric.DeviceOp{{Device: "sw1", Op: op}},
			func(string, []fabric.RouteOp) ([]string, error) { return []string{"line"}, nil })
		return err
	}
	hostBits := ok
	hostBits.Prefix = netip.MustParsePrefix("10.210.1.1/24")
	tests := []struct {
		name      string
		err       error
		wantField string
	}{
		{name: "ValidateVRF", err: fabric.ValidateVRF("red\nexit"), wantField: "vrf"},
		{name: "StageOps host bits", err: stage(fabric.RouteOp{Action: fabric.ActionAdd, Route: hostBits}), wantField: "prefix"},
		{name: "StageOps action", err: stage(fabric.RouteOp{Action: "replace", Route: ok}), wantField: "action"},
		{name: "ValidatePlatform", err: fabric.ValidatePlatform("ios"), wantField: "platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fe *fabric.Error
			if !errors.As(tt.err, &fe) {
				t.Fatalf("error %T %v, want *fabric.Error", tt.err, tt.err)
			}
			if fe.Code != fabric.EINVALID || fe.Field != tt.wantField {
				t.Errorf("code, field = %s, %q; want %s, %q", fe.Code, fe.Field, fabric.EINVALID, tt.wantField)
			}
		})
	}
	if err := stage(fabric.RouteOp{Action: fabric.ActionAdd, Route: ok}); err != nil {
		t.Errorf("StageOps of a valid op: %v", err)
	}
}
