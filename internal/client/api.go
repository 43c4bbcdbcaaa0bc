package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// Host states (HostState in api/openapi.yaml).
const (
	HostPending  = "pending"
	HostActive   = "active"
	HostRemoving = "removing"
	HostRemoved  = "removed"
)

// Change statuses (ChangeStatus in api/openapi.yaml).
const (
	ChangePending    = "pending"
	ChangeApproved   = "approved"
	ChangeApplying   = "applying"
	ChangeApplied    = "applied"
	ChangeRejected   = "rejected"
	ChangeFailed     = "failed"
	ChangeRolledBack = "rolled_back"
)

// Registration is the body of POST /v1/hosts.
type Registration struct {
	Name string `json:"name"`
	// Address is left out for a host of an IPv6-only segment, which registers by Address6.
	Address netip.Addr   `json:"address,omitzero"`
	Subnet  netip.Prefix `json:"subnet,omitzero"`
	// Address6 asks for an IPv6 subnet too (dual stack); Subnet6 names a specific one.
	Address6 netip.Addr   `json:"address6,omitzero"`
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
}

// Host is a registered Docker host and its docker0 allocation.
type Host struct {
	Name      string       `json:"name"`
	Address   netip.Addr   `json:"address,omitzero"` // invalid in an IPv6-only segment
	Segment   string       `json:"segment"`
	Subnet    netip.Prefix `json:"subnet,omitzero"` // invalid in an IPv6-only segment
	Gateway   netip.Addr   `json:"gateway"`
	Address6  netip.Addr   `json:"address6,omitzero"`
	Subnet6   netip.Prefix `json:"subnet6,omitzero"`
	Pool6     string       `json:"pool6,omitempty"`
	State     string       `json:"state"`
	Docker    Docker       `json:"docker"`
	Change    *ChangeRef   `json:"change"`
	Note      *string      `json:"note"` // what became of a host whose change ended without doing its work
	LastProbe *Probe       `json:"last_probe"`
	Lease     *Lease       `json:"lease,omitempty"` // only when the server has leases on
	CreatedBy string       `json:"created_by"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// Uplink returns the host's IPv4 address, or its IPv6 one in an IPv6-only segment.
func (h Host) Uplink() netip.Addr { return uplink(h.Address, h.Address6) }

func uplink(a, a6 netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return a6
}

// Subnets names the host's docker0 subnets for people: the IPv4 one, the IPv6 one, or both.
func (h Host) Subnets() string { return subnetsText(h.Subnet, h.Subnet6) }

func subnetsText(s, s6 netip.Prefix) string {
	switch {
	case s.IsValid() && s6.IsValid():
		return s.String() + " and " + s6.String()
	case s6.IsValid():
		return s6.String()
	}
	return s.String()
}

// Docker is what the host's /etc/docker/daemon.json must say.
type Docker struct {
	// Bip is docker0's address with the subnet's length, e.g. 10.210.10.1/24; invalid for a
	// host of an IPv6-only segment.
	Bip    netip.Prefix `json:"bip,omitzero"`
	IPMasq bool         `json:"ip-masq"`
	// IPv6 and FixedCIDRv6 are set for a dual-stack host: docker0's IPv6 subnet.
	IPv6        bool         `json:"ipv6,omitempty"`
	FixedCIDRv6 netip.Prefix `json:"fixed-cidr-v6,omitzero"`
}

// ChangeRef points at the change carrying a host's routes.
type ChangeRef struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
	// Reason says why the change was rejected or failed.
	Reason *string `json:"reason,omitempty"`
}

// Change is a reviewed set of route operations.
type Change struct {
	ID          int64       `json:"id"`
	Kind        string      `json:"kind"`
	Status      string      `json:"status"`
	Host        *ChangeHost `json:"host"`
	Segment     *string     `json:"segment,omitempty"` // the host's, or a reroute's
	RequestedBy string      `json:"requested_by"`
	ApprovedBy  *string     `json:"approved_by"`
	Reason      *string     `json:"reason"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
	PlanHash    string      `json:"plan_hash"`
	Ops         []ChangeOp  `json:"ops"`
	Events      []Event     `json:"events"`
}

// ChangeHost is the host a change is for.
type ChangeHost struct {
	Name     string       `json:"name"`
	Address  netip.Addr   `json:"address,omitzero"` // invalid in an IPv6-only segment
	Subnet   netip.Prefix `json:"subnet,omitzero"`
	Address6 netip.Addr   `json:"address6,omitzero"`
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
}

// Uplink returns the host's IPv4 address, or its IPv6 one in an IPv6-only segment.
func (h ChangeHost) Uplink() netip.Addr { return uplink(h.Address, h.Address6) }

// Subnets names the host's docker0 subnets for people: the IPv4 one, the IPv6 one, or both.
func (h ChangeHost) Subnets() string { return subnetsText(h.Subnet, h.Subnet6) }

// ChangeOp is one route operation on one device, in apply order.
type ChangeOp struct {
	Device  string       `json:"device"`
	Action  string       `json:"action"`
	Prefix  netip.Prefix `json:"prefix"`
	NextHop netip.Addr   `json:"next_hop"`
	VRF     string       `json:"vrf"`
	// Preview is the device's native lines for this op.
	Preview  string  `json:"preview"`
	Status   string  `json:"status"`
	Attempts int     `json:"attempts"`
	Error    *string `json:"error"`
	Output   *string `json:"output"`
	// NextAttemptAt and GivesUpAt are set while the op waits for an unreachable device: its
	// next login, and when the engine stops retrying it.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	GivesUpAt     *time.Time `json:"gives_up_at,omitempty"`
}

// Event is one step in a change's history.
type Event struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Detail string    `json:"detail"`
}

// ChangeFilter selects changes; zero fields do not filter.
type ChangeFilter struct {
	Status string
	Host   string
	Limit  int
	After  string
}

// ChangePage is one page of changes, newest first; Next is empty on the last page.
type ChangePage struct {
	Items []Change `json:"items"`
	Next  *string  `json:"next"`
}

// RegisterHost registers a host (POST /v1/hosts). created is false when the same name and
// address were registered before (the server answers 200 with the same allocation).
func (c *Client) RegisterHost(ctx context.Context, reg Registration) (h Host, created bool, err error) {
	if !reg.Address.IsValid() && !reg.Address6.IsValid() {
		return Host{}, false, errors.New("registration: address (or, in an IPv6-only segment, address6) is required")
	}
	status, err := c.do(ctx, http.MethodPost, "/v1/hosts", reg, &h, c.timeout)
	return h, status == http.StatusCreated, err
}

// Host reads one host (GET /v1/hosts/{name}).
func (c *Client) Host(ctx context.Context, name string) (Host, error) {
	var h Host
	err := c.Do(ctx, http.MethodGet, "/v1/hosts/"+url.PathEscape(name), nil, &h)
	return h, err
}

// MaxHostWait is the longest single long poll the server accepts.
const MaxHostWait = 5 * time.Minute

// HostWait long-polls GET /v1/hosts/{name}?wait=STATE&timeout=D: the server answers once the
// host is in state, its change is rejected or failed, or at the timeout with the current
// state. The caller decides from the answer; a server that ignores the parameters answers
// at once, which is also correct.
func (c *Client) HostWait(ctx context.Context, name, state string, wait time.Duration) (Host, error) {
	// The server takes whole durations from 1s to 5m.
	wait = min(max(wait.Round(time.Second), time.Second), MaxHostWait)
	q := url.Values{"wait": {state}, "timeout": {wait.String()}}
	var h Host
	_, err := c.do(ctx, http.MethodGet, "/v1/hosts/"+url.PathEscape(name)+"?"+q.Encode(), nil, &h, wait+c.timeout)
	return h, err
}

// Probe is a return-path probe as the server records it (Probe in api/openapi.yaml).
type Probe struct {
	Target     string    `json:"target"`
	Family     string    `json:"family"`
	Method     string    `json:"method"`
	Source     string    `json:"source"`
	Result     string    `json:"result"`
	Sent       int       `json:"sent"`
	Received   int       `json:"received"`
	RTTMS      *float64  `json:"rtt_ms"`
	At         time.Time `json:"at"`
	RecordedBy string    `json:"recorded_by"`
}

// ProbeReport is the body of POST /v1/hosts/{name}/probes (ProbeReport).
type ProbeReport struct {
	Target   string    `json:"target"`
	Source   string    `json:"source"`
	Result   string    `json:"result"`
	Sent     int       `json:"sent"`
	Received int       `json:"received"`
	RTTMS    *float64  `json:"rtt_ms,omitempty"`
	At       time.Time `json:"at"`
}

// SegmentProbes are a segment's probes (Segment.probes in api/openapi.yaml).
type SegmentProbes struct {
	Targets []string `json:"targets"`
	MaxAgeS float64  `json:"max_age_s"`
}

// Segment is a configured segment, as far as the hosts need it.
type Segment struct {
	Name   string        `json:"name"`
	Hosts  netip.Prefix  `json:"hosts"`
	Pool   string        `json:"pool"`
	Probes SegmentProbes `json:"probes"`
}

// Segments lists the configured segments (GET /v1/segments).
func (c *Client) Segments(ctx context.Context) ([]Segment, error) {
	var page struct {
		Items []Segment `json:"items"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/segments", nil, &page)
	return page.Items, err
}

// ReportProbe records a probe the host ran (POST /v1/hosts/{name}/probes).
func (c *Client) ReportProbe(ctx context.Context, name string, r ProbeReport) (Probe, error) {
	var p Probe
	err := c.Do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(name)+"/probes", r, &p)
	return p, err
}

// Lease is a host's lease (leases in the server's configuration).
type Lease struct {
	RenewedAt time.Time `json:"renewed_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Stale     bool      `json:"stale"`
}

// RenewHost renews a host's lease (POST /v1/hosts/{name}/renew).
func (c *Client) RenewHost(ctx context.Context, name string) (Host, error) {
	var h Host
	err := c.Do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(name)+"/renew", nil, &h)
	return h, err
}

// HostPage is one page of GET /v1/hosts.
type HostPage struct {
	Items []Host  `json:"items"`
	Next  *string `json:"next"`
}

// Hosts lists one page of live hosts (GET /v1/hosts): only stale ones when stale is set,
// after the given name.
func (c *Client) Hosts(ctx context.Context, stale bool, after string) (HostPage, error) {
	q := url.Values{}
	if stale {
		q.Set("stale", "true")
	}
	if after != "" {
		q.Set("after", after)
	}
	var p HostPage
	err := c.Do(ctx, http.MethodGet, "/v1/hosts?"+q.Encode(), nil, &p)
	return p, err
}

// DeregisterHost starts removing a host (DELETE /v1/hosts/{name}); the answer shows it
// `removing` with the change that withdraws its routes.
func (c *Client) DeregisterHost(ctx context.Context, name string) (Host, error) {
	var h Host
	err := c.Do(ctx, http.MethodDelete, "/v1/hosts/"+url.PathEscape(name), nil, &h)
	return h, err
}

// Changes lists one page of changes (GET /v1/changes).
func (c *Client) Changes(ctx context.Context, f ChangeFilter) (ChangePage, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Host != "" {
		q.Set("host", f.Host)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	path := "/v1/changes"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var p ChangePage
	err := c.Do(ctx, http.MethodGet, path, nil, &p)
	return p, err
}

// AllChanges follows Next until the last page, stopping after max changes (0 = no limit).
func (c *Client) AllChanges(ctx context.Context, f ChangeFilter, max int) ([]Change, error) {
	var all []Change
	for {
		p, err := c.Changes(ctx, f)
		if err != nil {
			return all, err
		}
		all = append(all, p.Items...)
		if max > 0 && len(all) >= max {
			return all[:max], nil
		}
		if p.Next == nil || *p.Next == "" || *p.Next == f.After {
			return all, nil
		}
		f.After = *p.Next
	}
}

// Change reads one change with its ops and events (GET /v1/changes/{id}).
func (c *Client) Change(ctx context.Context, id int64) (Change, error) {
	var ch Change
	err := c.Do(ctx, http.MethodGet, changePath(id, ""), nil, &ch)
	return ch, err
}

// Approve approves a pending change, quoting the hash of the plan the reviewer saw. A stale
// hash is a 409 *Problem whose StaleChange returns the new plan.
func (c *Client) Approve(ctx context.Context, id int64, planHash string) (Change, error) {
	var ch Change
	err := c.Do(ctx, http.MethodPost, changePath(id, "/approve"), map[string]string{"plan_hash": planHash}, &ch)
	return ch, err
}

// Reject rejects a pending change with a reason.
func (c *Client) Reject(ctx context.Context, id int64, reason string) (Change, error) {
	var ch Change
	err := c.Do(ctx, http.MethodPost, changePath(id, "/reject"), map[string]string{"reason": reason}, &ch)
	return ch, err
}

// Retry queues a failed change again.
func (c *Client) Retry(ctx context.Context, id int64) (Change, error) {
	var ch Change
	err := c.Do(ctx, http.MethodPost, changePath(id, "/retry"), nil, &ch)
	return ch, err
}

func changePath(id int64, suffix string) string {
	return "/v1/changes/" + strconv.FormatInt(id, 10) + suffix
}

// StaleChange decodes the new change a 409 answer to an approval carries in extra, either
// as the change itself or as {"change": {...}}.
func (p *Problem) StaleChange() (Change, bool) {
	if len(p.Extra) == 0 {
		return Change{}, false
	}
	var ch Change
	if json.Unmarshal(p.Extra, &ch) == nil && ch.ID != 0 {
		return ch, true
	}
	var wrapped struct {
		Change Change `json:"change"`
	}
	if json.Unmarshal(p.Extra, &wrapped) == nil && wrapped.Change.ID != 0 {
		return wrapped.Change, true
	}
	return Change{}, false
}
