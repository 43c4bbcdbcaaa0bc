package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/verify"
)

// Adopter reads a segment's devices and matches the routes they hold to hosts
// (*verify.Verifier). The verifier set with SetVerifier provides it when it can.
type Adopter interface {
	Adopt(ctx context.Context, segment string) (verify.AdoptReading, error)
}

// maxAdoptBody bounds an adopt request: a CSV of a few thousand hosts, larger than the
// default body limit meant for one registration.
const maxAdoptBody = 1 << 20

type adoptHostJSON struct {
	Name    *string `json:"name"`
	Address *string `json:"address"`
}

type adoptRequest struct {
	DryRun      bool             `json:"dry_run"`
	Hosts       *[]adoptHostJSON `json:"hosts"`
	FromDevices bool             `json:"from_devices"`
}

// adoptHost is a validated entry of the request's hosts.
type adoptHost struct {
	name string
	addr netip.Addr
}

// Adoption actions, per subnet (AdoptSubnet.action in api/openapi.yaml).
const (
	adoptFound      = "found"              // listed only: no hosts and no from_devices were given
	adoptWould      = "would_register"     // dry run: registering would adopt it
	adoptRegistered = "registered"         // registered now, with this subnet
	adoptFailed     = "failed"             // the registration was refused: see error
	adoptKnown      = "already_registered" // a host of the registry owns it already
	adoptUnlisted   = "not_listed"         // the hosts given do not name its address
)

type adoptSubnetJSON struct {
	Subnet   string     `json:"subnet"`
	Address  string     `json:"address"`
	Host     *string    `json:"host"`
	Action   string     `json:"action"`
	Complete bool       `json:"complete"`
	Present  []string   `json:"present"`
	Missing  []string   `json:"missing"`
	State    *string    `json:"state,omitempty"`
	Change   *changeRef `json:"change,omitempty"`
	Error    *string    `json:"error,omitempty"`
}

type adoptOrphanJSON struct {
	Device  string `json:"device"`
	Prefix  string `json:"prefix"`
	NextHop string `json:"next_hop"`
	Reason  string `json:"reason"`
}

type adoptDeviceJSON struct {
	Device    string  `json:"device"`
	Status    string  `json:"status"`
	Error     *string `json:"error,omitempty"`
	ErrorKind *string `json:"error_kind,omitempty"`
}

type adoptJSON struct {
	Segment   string            `json:"segment"`
	DryRun    bool              `json:"dry_run"`
	Devices   []adoptDeviceJSON `json:"devices"`
	Subnets   []adoptSubnetJSON `json:"subnets"`
	Orphans   []adoptOrphanJSON `json:"orphans"`
	Unmatched []adoptHostOut    `json:"unmatched"`
}

type adoptHostOut struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// adopt answers POST /v1/segments/{name}/adopt: it reads every device of the segment's path,
// matches the routes inside the pool to hosts and, unless dry_run, registers the hosts named
// by hosts (or, with from_devices, every matched host as host-A-B-C-D) with the subnet they
// already have. Registration is the normal one (changes, audit, approval policy); the apply
// engine finds the routes present and types nothing. Orphans are listed, never registered.
func (s *Server) adopt(w http.ResponseWriter, r *http.Request) {
	inv := s.inv.Load()
	seg, ok := inv.Segment(chi.URLParam(r, "name"))
	if !ok {
		s.writeError(w, r, fabric.FieldErrorf(fabric.ENOTFOUND, "name", "no segment named %q", chi.URLParam(r, "name")))
		return
	}
	if seg.Pool == "" {
		// fabric.Adopt matches IPv4 routes to IPv4 host addresses; the devices are not read.
		s.writeError(w, r, fabric.FieldErrorf(fabric.EINVALID, "name", "segment %s is IPv6-only, and adopt brings IPv4 routes under management only; register its hosts with address6", seg.Name))
		return
	}
	var req adoptRequest
	if err := s.decodeLimited(w, r, &req, maxAdoptBody); err != nil {
		s.writeError(w, r, err)
		return
	}
	listed, err := req.hosts(seg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	adopter, ok := s.verifier.(Adopter)
	if !ok {
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "device readings are not configured on this server"))
		return
	}
	registering := !req.DryRun && (listed != nil || req.FromDevices)
	if registering && !s.requireChanges(w, r) {
		return
	}
	reading, err := adopter.Adopt(r.Context(), seg.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if registering && reading.Unreachable() > 0 {
		var names []string
		for _, d := range reading.Devices {
			if d.Status == verify.StatusUnreachable {
				names = append(names, d.Device)
			}
		}
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "device %s of segment %s could not be read; nothing was registered (a dry run shows why)",
			strings.Join(names, ", "), seg.Name))
		return
	}
	out := adoptJSON{Segment: seg.Name, DryRun: !registering, Devices: []adoptDeviceJSON{}, Subnets: []adoptSubnetJSON{}, Orphans: []adoptOrphanJSON{}, Unmatched: []adoptHostOut{}}
	for _, d := range reading.Devices {
		out.Devices = append(out.Devices, adoptDeviceJSON{Device: d.Device, Status: string(d.Status), Error: strOrNil(d.Error), ErrorKind: strOrNil(d.ErrorKind)})
	}
	byAddr := map[netip.Addr]adoptHost{}
	for _, h := range listed {
		byAddr[h.addr] = h
	}
	matched := map[netip.Addr]bool{}
	for _, a := range reading.Match.Adoptions {
		matched[a.Address] = true
		v := adoptSubnetJSON{Subnet: a.Subnet.String(), Address: a.Address.String(), Complete: a.Complete(),
			Present: orEmpty(a.Present), Missing: orEmpty(a.Missing)}
		name := ""
		switch h, inList := byAddr[a.Address]; {
		case a.Host != "":
			v.Action, name = adoptKnown, a.Host
		case listed != nil && !inList:
			v.Action = adoptUnlisted
		case listed != nil:
			v.Action, name = adoptWould, h.name
		case req.FromDevices:
			v.Action, name = adoptWould, fabric.AdoptedHostName(a.Address)
		default:
			v.Action = adoptFound
		}
		v.Host = strOrNil(name)
		if registering && v.Action == adoptWould {
			s.register(r, &v, fabric.Registration{Name: name, Address: a.Address, Subnet: a.Subnet})
		}
		out.Subnets = append(out.Subnets, v)
	}
	for _, o := range reading.Match.Orphans {
		out.Orphans = append(out.Orphans, adoptOrphanJSON{Device: o.Device, Prefix: o.Prefix.String(), NextHop: o.NextHop.String(), Reason: o.Reason})
	}
	for _, h := range listed {
		if !matched[h.addr] {
			out.Unmatched = append(out.Unmatched, adoptHostOut{Name: h.name, Address: h.addr.String()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// register registers one matched host and records the outcome in v. A refusal (a name taken
// by another host, the pending cap) is that subnet's result, not the request's: the other
// hosts are registered all the same.
func (s *Server) register(r *http.Request, v *adoptSubnetJSON, reg fabric.Registration) {
	h, _, err := s.hosts.Register(r.Context(), actor(r.Context()), reg)
	if err != nil {
		v.Action = adoptFailed
		msg := fabric.ErrorMessage(err)
		if fabric.ErrorCode(err) == fabric.EINTERNAL {
			s.log.ErrorContext(r.Context(), "adopt: register", "host", reg.Name, "err", err, "request_id", requestID(r.Context()))
			msg = "internal error; the server log has the details under this request_id"
		}
		v.Error = &msg
		return
	}
	if h.Subnet != reg.Subnet {
		// The name was registered before with another subnet: Register answers the existing
		// allocation, which is not the route found on the devices.
		v.Action = adoptFailed
		msg := fmt.Sprintf("host %s is registered already with subnet %s", h.Name, h.Subnet)
		v.Error = &msg
		return
	}
	v.Action = adoptRegistered
	hv := s.hostView(r, h)
	v.State, v.Change = &hv.State, hv.Change
}

// hosts validates the request's host list against the segment: every name a host name, every
// address a host address of the segment, none twice. nil means none was given.
func (req adoptRequest) hosts(seg fabric.Segment) ([]adoptHost, error) {
	if req.Hosts == nil {
		return nil, nil
	}
	if req.FromDevices {
		return nil, fabric.FieldErrorf(fabric.EINVALID, "from_devices", "give hosts or from_devices, not both")
	}
	if len(*req.Hosts) == 0 {
		return nil, fabric.FieldErrorf(fabric.EINVALID, "hosts", "is empty; omit it to list what the devices hold")
	}
	out := make([]adoptHost, 0, len(*req.Hosts))
	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	for i, h := range *req.Hosts {
		field := func(f string) string { return fmt.Sprintf("hosts[%d].%s", i, f) }
		if h.Name == nil {
			return nil, fabric.FieldErrorf(fabric.EINVALID, field("name"), "is required")
		}
		name, err := fabric.NormalizeHostName(*h.Name)
		if err != nil {
			return nil, fabric.FieldErrorf(fabric.EINVALID, field("name"), "%s", fabric.ErrorMessage(err))
		}
		if h.Address == nil || *h.Address == "" {
			return nil, fabric.FieldErrorf(fabric.EINVALID, field("address"), "is required")
		}
		a, err := netip.ParseAddr(*h.Address)
		if err != nil {
			return nil, fabric.FieldErrorf(fabric.EINVALID, field("address"), "%q is not an IP address", *h.Address)
		}
		if !seg.Hosts.Contains(a) {
			return nil, fabric.FieldErrorf(fabric.EINVALID, field("address"), "%s is outside segment %s (%s)", a, seg.Name, seg.Hosts)
		}
		if j, dup := names[name]; dup {
			return nil, fabric.FieldErrorf(fabric.EINVALID, field("name"), "%s is named twice (also hosts[%d])", name, j)
		}
		if j, dup := addrs[a]; dup {
			return nil, fabric.FieldErrorf(fabric.EINVALID, field("address"), "%s is listed twice (also hosts[%d])", a, j)
		}
		names[name], addrs[a] = i, i
		out = append(out, adoptHost{name: name, addr: a})
	}
	return out, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
