package fabric

import (
	"errors"
	"net/netip"

	"github.com/returnpath/returnpath/drivers/route"
)

// The route value types live in the public leaf package drivers/route so that drivers outside
// this module can use them; the domain uses the very same types under these names.
type (
	// Action is what a RouteOp does to a device.
	Action = route.Action
	// Route is one static route as a single device holds it: prefix via next hop in a VRF.
	Route = route.Route
	// RouteKey identifies a route for set comparisons.
	RouteKey = route.RouteKey
	// RouteOp is one change to one device's routes.
	RouteOp = route.RouteOp
)

// The two route actions.
const (
	ActionAdd    = route.ActionAdd
	ActionDelete = route.ActionDelete
)

// DefaultVRF is the name of the default routing table on every platform.
const DefaultVRF = route.DefaultVRF

// ValidateVRF checks that name is a VRF name safe to render into any device syntax; see
// route.ValidateVRF. Its error is an EINVALID *Error naming the field.
func ValidateVRF(name string) error { return invalid(route.ValidateVRF(name)) }

// Managed reports whether p lies inside one of the managed prefixes.
func Managed(p netip.Prefix, managed []netip.Prefix) bool { return route.Managed(p, managed) }

// invalid turns a validation error of package route into an EINVALID *Error naming the same
// field, so that the API answers it as a bad request and not as an internal error. Domain
// code validates route values through it.
func invalid(err error) error {
	var fe *route.FieldError
	if errors.As(err, &fe) {
		return FieldErrorf(EINVALID, fe.Field, "%s", fe.Message)
	}
	return err
}
