package client

import (
	"context"
	"net/http"
	"net/url"
)

// AdoptHost names a host to adopt (a line of the CSV).
type AdoptHost struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// AdoptRequest is the body of POST /v1/segments/{name}/adopt (AdoptRequest).
type AdoptRequest struct {
	DryRun      bool        `json:"dry_run,omitempty"`
	Hosts       []AdoptHost `json:"hosts,omitempty"`
	FromDevices bool        `json:"from_devices,omitempty"`
}

// AdoptSubnet is one subnet found on the devices and what became of it (AdoptSubnet).
type AdoptSubnet struct {
	Subnet   string   `json:"subnet"`
	Address  string   `json:"address"`
	Host     *string  `json:"host"`
	Action   string   `json:"action"`
	Complete bool     `json:"complete"`
	Present  []string `json:"present"`
	Missing  []string `json:"missing"`
	State    *string  `json:"state,omitempty"`
	Change   *struct {
		ID     int64   `json:"id"`
		Status string  `json:"status"`
		Reason *string `json:"reason,omitempty"`
	} `json:"change,omitempty"`
	Error *string `json:"error,omitempty"`
}

// AdoptOrphan is a route inside the pool that belongs to no host of the segment.
type AdoptOrphan struct {
	Device  string `json:"device"`
	Prefix  string `json:"prefix"`
	NextHop string `json:"next_hop"`
	Reason  string `json:"reason"`
}

// AdoptDevice is how one device of the path was read.
type AdoptDevice struct {
	Device    string `json:"device"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
}

// AdoptReport is the answer of POST /v1/segments/{name}/adopt (AdoptReport).
type AdoptReport struct {
	Segment   string        `json:"segment"`
	DryRun    bool          `json:"dry_run"`
	Devices   []AdoptDevice `json:"devices"`
	Subnets   []AdoptSubnet `json:"subnets"`
	Orphans   []AdoptOrphan `json:"orphans"`
	Unmatched []AdoptHost   `json:"unmatched"`
}

// Adopt reads the segment's devices and matches their routes to hosts; with hosts or
// from_devices and without dry_run it registers them (POST /v1/segments/{name}/adopt).
func (c *Client) Adopt(ctx context.Context, segment string, req AdoptRequest) (AdoptReport, error) {
	var rep AdoptReport
	err := c.Do(ctx, http.MethodPost, "/v1/segments/"+url.PathEscape(segment)+"/adopt", req, &rep)
	return rep, err
}
