package gnmi

import (
	"context"

	"github.com/returnpath/returnpath/drivers"
)

var (
	_ drivers.Pinger   = (*Driver)(nil)
	_ drivers.Reusable = (*Driver)(nil)
)

// Ping asks for the target's capabilities: the cheapest RPC every gNMI target answers.
func (d *Driver) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if _, err := d.tgt.Capabilities(ctx); err != nil {
		return classify(d.cfg.Name, "ping", err, false)
	}
	return nil
}

// ReusableAfter says a session may be used again after the target refused a Set: each RPC
// stands alone on the gRPC connection, and a refused Set changed nothing.
func (d *Driver) ReusableAfter(err error) bool { return drivers.KindOf(err) == drivers.KindRejected }
