package httpapi

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// hostJSON is a host as the API shows it.
type hostJSON struct {
	Name      string     `json:"name"`
	Address   string     `json:"address,omitempty"` // none in an IPv6-only segment
	Segment   string     `json:"segment"`
	Subnet    string     `json:"subnet,omitempty"` // none in an IPv6-only segment
	Gateway   string     `json:"gateway"`
	Address6  string     `json:"address6,omitempty"`
	Subnet6   string     `json:"subnet6,omitempty"`
	Pool6     string     `json:"pool6,omitempty"`
	State     string     `json:"state"`
	Docker    dockerJSON `json:"docker"`
	Change    *changeRef `json:"change"`
	Note      *string    `json:"note"` // fabric.Host.Note, when there is one
	LastProbe *probeJSON `json:"last_probe"`
	Lease     *leaseJSON `json:"lease,omitempty"` // only with leases on
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// dockerJSON is what the host's dockerd needs in daemon.json.
type dockerJSON struct {
	// Bip is docker0's IPv4 address and subnet; none for a host of an IPv6-only segment, whose
	// dockerd keeps its own choice (see docs/bootstrap.md).
	Bip    string `json:"bip,omitempty"`
	IPMasq bool   `json:"ip-masq"`
	// IPv6 and FixedCIDRv6 give the default bridge of a host with an IPv6 family its IPv6 subnet.
	IPv6        bool   `json:"ipv6,omitempty"`
	FixedCIDRv6 string `json:"fixed-cidr-v6,omitempty"`
}

// changeRef points at the change that carries a host's routes.
type changeRef struct {
	ID     int64   `json:"id"`
	Status string  `json:"status"`
	Reason *string `json:"reason,omitempty"`
}

func toHostJSON(h fabric.Host) hostJSON {
	v := hostJSON{
		Name: h.Name, Segment: h.Segment, Gateway: h.Gateway().String(), State: string(h.State),
		Docker:    dockerJSON{IPMasq: false},
		CreatedBy: h.CreatedBy, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt, LastProbe: toProbeJSON(h.LastProbe),
		Lease: toLeaseJSON(h.Lease),
	}
	if h.Subnet.IsValid() {
		v.Address, v.Subnet, v.Docker.Bip = h.Address.String(), h.Subnet.String(), h.Bip().String()
	}
	if h.Subnet6.IsValid() {
		v.Address6, v.Subnet6, v.Pool6 = h.Address6.String(), h.Subnet6.String(), h.Pool6
		v.Docker.IPv6, v.Docker.FixedCIDRv6 = true, h.Subnet6.String()
	}
	return v
}

type registerRequest struct {
	Name     *string `json:"name"`
	Address  *string `json:"address"`
	Subnet   *string `json:"subnet"`
	Address6 *string `json:"address6"`
	Subnet6  *string `json:"subnet6"`
}

func (s *Server) registerHost(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	reg, err := req.registration()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h, created, err := s.hosts.Register(r.Context(), actor(r.Context()), reg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/hosts/"+h.Name)
	}
	writeJSON(w, status, s.hostView(r, h))
}

// registration turns the request into typed values, naming the field at fault.
func (req registerRequest) registration() (fabric.Registration, error) {
	var reg fabric.Registration
	if req.Name == nil {
		return reg, fabric.FieldErrorf(fabric.EINVALID, "name", "is required")
	}
	reg.Name = *req.Name
	// address may be left out only for a segment without IPv4 hosts: fabric.Inventory.Place
	// decides, by address6, and names address when it was needed after all.
	if req.Address != nil && *req.Address != "" {
		a, err := netip.ParseAddr(*req.Address)
		if err != nil {
			return reg, fabric.FieldErrorf(fabric.EINVALID, "address", "%q is not an IP address", *req.Address)
		}
		reg.Address = a
	}
	if req.Subnet != nil {
		p, err := netip.ParsePrefix(*req.Subnet)
		if err != nil {
			return reg, fabric.FieldErrorf(fabric.EINVALID, "subnet", "%q is not a network in CIDR notation (e.g. 10.210.10.0/24)", *req.Subnet)
		}
		reg.Subnet = p
	}
	if req.Address6 != nil {
		a, err := netip.ParseAddr(*req.Address6)
		if err != nil {
			return reg, fabric.FieldErrorf(fabric.EINVALID, "address6", "%q is not an IP address", *req.Address6)
		}
		reg.Address6 = a
	}
	if req.Subnet6 != nil {
		p, err := netip.ParsePrefix(*req.Subnet6)
		if err != nil {
			return reg, fabric.FieldErrorf(fabric.EINVALID, "subnet6", "%q is not a network in CIDR notation (e.g. 2001:db8:a00::/64)", *req.Subnet6)
		}
		reg.Subnet6 = p
	}
	return reg, nil
}

// hostView renders a host with its change, when a change service is mounted.
func (s *Server) hostView(r *http.Request, h fabric.Host) hostJSON {
	if h.Change == nil && s.changes != nil {
		if id, status, reason, ok := s.changes.HostChange(r.Context(), h.ID); ok {
			h.Change = &fabric.ChangeRef{ID: id, Status: status, Reason: reason}
		}
	}
	v := toHostJSON(h)
	if h.Change != nil {
		v.Change = changeRefOf(h.Change.ID, h.Change.Status, h.Change.Reason)
	}
	v.Note = strOrNil(h.Note())
	return v
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	wait, err := parseWait(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var h fabric.Host
	if wait.want == "" {
		h, err = s.hosts.Host(r.Context(), name)
	} else {
		h, err = s.waitHost(r.Context(), actor(r.Context()).Name, name, wait)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if h.State == fabric.HostRemoved {
		s.writeError(w, r, fabric.Errorf(fabric.ENOTFOUND, "host %s has been removed", h.Name))
		return
	}
	writeJSON(w, http.StatusOK, s.hostView(r, h))
}

type listJSON[T any] struct {
	Items []T     `json:"items"`
	Next  *string `json:"next"`
}

// idPage is a page of a list keyed by id, newest first: next is the cursor of the following
// page, 0 at the end.
func idPage[T, J any](list []T, next int64, conv func(T) J) listJSON[J] {
	out := listJSON[J]{Items: make([]J, 0, len(list))}
	for _, v := range list {
		out.Items = append(out.Items, conv(v))
	}
	if next != 0 {
		n := strconv.FormatInt(next, 10)
		out.Next = &n
	}
	return out
}

// keysetAfter parses ?after=, the next of the previous page of a list keyed by id; 0 when
// absent.
func keysetAfter(q url.Values) (int64, error) {
	v := q.Get("after")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fabric.FieldErrorf(fabric.EINVALID, "after", "want the next of the previous page, got %q", v)
	}
	return n, nil
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := fabric.HostFilter{Segment: q.Get("segment"), State: fabric.HostState(q.Get("state")), After: q.Get("after")}
	limit, err := queryLimit(q.Get("limit"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f.Limit = limit
	if f.Stale, err = queryBool(r, "stale"); err != nil {
		s.writeError(w, r, err)
		return
	}
	if f.State != "" {
		if err := f.State.Validate(); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if f.Segment != "" {
		if _, ok := s.inv.Load().Segment(f.Segment); !ok {
			s.writeError(w, r, fabric.FieldErrorf(fabric.EINVALID, "segment", "no segment named %q", f.Segment))
			return
		}
	}
	hosts, next, err := s.hosts.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := listJSON[hostJSON]{Items: make([]hostJSON, 0, len(hosts))}
	for _, h := range hosts {
		out.Items = append(out.Items, s.hostView(r, h))
	}
	if next != "" {
		out.Next = &next
	}
	writeJSON(w, http.StatusOK, out)
}

// queryLimit parses ?limit=, 1 to 1000, default 100.
func queryLimit(v string) (int, error) {
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, fabric.FieldErrorf(fabric.EINVALID, "limit", "want a whole number from 1 to 1000, got %q", v)
	}
	return n, nil
}

func (s *Server) removeHost(w http.ResponseWriter, r *http.Request) {
	h, err := s.hosts.Remove(r.Context(), actor(r.Context()), chi.URLParam(r, "name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusAccepted
	if h.State == fabric.HostRemoved {
		status = http.StatusOK // removed at once: nothing of it was on any device
	}
	writeJSON(w, status, s.hostView(r, h))
}

type poolJSON struct {
	Name         string  `json:"name"`
	Prefix       string  `json:"prefix"`
	SubnetLength int     `json:"subnet_length"`
	Size         uint64  `json:"size"`
	Allocated    int64   `json:"allocated"`
	Utilisation  float64 `json:"utilisation"`
	Private      bool    `json:"private"`
}

func (s *Server) listPools(w http.ResponseWriter, r *http.Request) {
	usage, err := s.store.PoolUsage(r.Context(), s.inv.Load())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := listJSON[poolJSON]{Items: []poolJSON{}}
	for _, u := range usage {
		out.Items = append(out.Items, poolJSON{Name: u.Pool.Name, Prefix: u.Pool.Prefix.String(), SubnetLength: u.Pool.SubnetLength,
			Size: u.Pool.Size(), Allocated: u.Allocated, Utilisation: float64(u.Allocated) / float64(u.Pool.Size()), Private: u.Pool.Private()})
	}
	writeJSON(w, http.StatusOK, out)
}

// hopJSON is a route_via entry: device, or devices applied in parallel (as configured).
type hopJSON struct {
	Device  string   `json:"device,omitempty"`
	Devices []string `json:"devices,omitempty"`
	NextHop string   `json:"next_hop"`
}

type segmentJSON struct {
	Name     string        `json:"name"`
	Hosts    string        `json:"hosts"`
	Pool     string        `json:"pool"`
	Hosts6   string        `json:"hosts6,omitempty"`
	Pool6    string        `json:"pool6,omitempty"`
	RouteVia []hopJSON     `json:"route_via"`
	Probes   segProbesJSON `json:"probes"`
}

// segProbesJSON is a segment's probes: the targets host probe tries when given none.
type segProbesJSON struct {
	Targets []string `json:"targets"`
	MaxAgeS float64  `json:"max_age_s"`
}

func (s *Server) listSegments(w http.ResponseWriter, r *http.Request) {
	out := listJSON[segmentJSON]{Items: []segmentJSON{}}
	for _, sg := range s.inv.Load().Segments {
		v := segmentJSON{Name: sg.Name, Hosts: prefixOrEmpty(sg.Hosts), Pool: sg.Pool, Hosts6: prefixOrEmpty(sg.Hosts6), Pool6: sg.Pool6, RouteVia: []hopJSON{},
			Probes: segProbesJSON{Targets: []string{}, MaxAgeS: s.inv.Load().ProbeMaxAge(sg.Name).Seconds()}}
		for _, t := range sg.Probes.Targets {
			v.Probes.Targets = append(v.Probes.Targets, probeTarget(t))
		}
		for _, h := range sg.RouteVia {
			v.RouteVia = append(v.RouteVia, hopJSON{Device: h.Device, Devices: h.Devices, NextHop: h.NextHop.String()})
		}
		out.Items = append(out.Items, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// prefixOrEmpty is p, or "" when p is invalid (a family a segment does not have).
func prefixOrEmpty(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// deviceJSON shows a device without any credential.
type deviceJSON struct {
	Name      string `json:"name"`
	Platform  string `json:"platform"`
	Transport string `json:"transport"`
	Address   string `json:"address"`
	VRF       string `json:"vrf"`
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	out := listJSON[deviceJSON]{Items: []deviceJSON{}}
	for _, d := range s.inv.Load().Devices {
		out.Items = append(out.Items, deviceJSON{Name: d.Name, Platform: string(d.Platform), Transport: string(d.Transport), Address: d.Address.String(), VRF: d.VRF})
	}
	writeJSON(w, http.StatusOK, out)
}

type auditJSON struct {
	ID      int64          `json:"id"`
	At      time.Time      `json:"at"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Object  string         `json:"object"`
	Details map[string]any `json:"details"`
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := queryLimit(q.Get("limit"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := fabric.AuditFilter{Limit: limit, Object: q.Get("object")}
	if v := q.Get("before"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before < 1 {
			s.writeError(w, r, fabric.FieldErrorf(fabric.EINVALID, "before", "want an audit entry id, got %q", v))
			return
		}
	}
	entries, next, err := s.store.Audit(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, idPage(entries, next, func(e fabric.AuditEntry) auditJSON { return auditJSON(e) }))
}
