package httpapi

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// ProbeRecorder records the return-path probes hosts report (postgres.Hosts implements it).
// A HostRegistry that also implements it enables POST /v1/hosts/{name}/probes.
type ProbeRecorder interface {
	RecordProbe(ctx context.Context, actor fabric.Actor, name string, p fabric.Probe) (fabric.Host, error)
}

// ProbeCounter counts active hosts whose last probe failed, for metrics (postgres.DB
// implements it); a Store that implements it adds returnpath_hosts_probe_failing.
type ProbeCounter interface {
	HostsFailingProbe(ctx context.Context) (int64, error)
}

// probeJSON is a probe as the API shows it (Probe in api/openapi.yaml).
type probeJSON struct {
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

func toProbeJSON(p *fabric.Probe) *probeJSON {
	if p == nil {
		return nil
	}
	v := &probeJSON{Target: probeTarget(p.Target), Family: p.Family(), Method: p.Method(), Source: p.Source.String(),
		Result: string(p.Result), Sent: p.Sent, Received: p.Received, At: p.At.UTC(), RecordedBy: p.By}
	if p.Result == fabric.ProbeOK {
		ms := float64(p.RTT.Microseconds()) / 1000
		v.RTTMS = &ms
	}
	return v
}

// probeTarget writes an ICMP target as its address and a TCP one as ADDR:PORT, as
// fabric.ParseProbeTarget reads them.
func probeTarget(t netip.AddrPort) string {
	if t.Port() == 0 {
		return t.Addr().String()
	}
	return t.String()
}

type probeRequest struct {
	Target   *string   `json:"target"`
	Source   *string   `json:"source"`
	Result   *string   `json:"result"`
	Sent     *int      `json:"sent"`
	Received *int      `json:"received"`
	RTTMS    *float64  `json:"rtt_ms"`
	At       time.Time `json:"at"`
}

// probe turns the request into a fabric.Probe, naming the field at fault for values that do
// not parse; the domain checks the rest.
func (req probeRequest) probe() (fabric.Probe, error) {
	var p fabric.Probe
	if req.Target == nil {
		return p, fabric.FieldErrorf(fabric.EINVALID, "target", "is required")
	}
	t, err := fabric.ParseProbeTarget(*req.Target)
	if err != nil {
		return p, fabric.FieldErrorf(fabric.EINVALID, "target", "%v", err)
	}
	p.Target = t
	if req.Source == nil {
		return p, fabric.FieldErrorf(fabric.EINVALID, "source", "is required: the docker0 gateway address the probe was sent from")
	}
	if p.Source, err = netip.ParseAddr(*req.Source); err != nil {
		return p, fabric.FieldErrorf(fabric.EINVALID, "source", "%q is not an IP address", *req.Source)
	}
	if req.Result == nil || req.Sent == nil || req.Received == nil {
		return p, fabric.FieldErrorf(fabric.EINVALID, "result", "result, sent and received are required")
	}
	p.Result, p.Sent, p.Received = fabric.ProbeResult(*req.Result), *req.Sent, *req.Received
	if req.RTTMS != nil {
		if *req.RTTMS < 0 || *req.RTTMS > float64(fabric.ProbeMaxTimeout.Milliseconds()) {
			return p, fabric.FieldErrorf(fabric.EINVALID, "rtt_ms", "want 0 to %d, got %g", fabric.ProbeMaxTimeout.Milliseconds(), *req.RTTMS)
		}
		p.RTT = time.Duration(*req.RTTMS * float64(time.Millisecond))
		if p.RTT == 0 {
			p.RTT = time.Microsecond // a reply faster than the clock shows still came back
		}
	}
	p.At = req.At
	return p, nil
}

// recordProbe answers POST /v1/hosts/{name}/probes: a host reports a return-path probe it
// ran. Only a token that may register hosts in the host's segment may report for it.
func (s *Server) recordProbe(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.hosts.(ProbeRecorder)
	if !ok {
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "probes are not recorded by this server"))
		return
	}
	var req probeRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := req.probe()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h, err := rec.RecordProbe(r.Context(), actor(r.Context()), chi.URLParam(r, "name"), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.metrics.probes.WithLabelValues(string(h.LastProbe.Result)).Inc()
	writeJSON(w, http.StatusCreated, toProbeJSON(h.LastProbe))
}
