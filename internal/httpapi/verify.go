package httpapi

import (
	"context"
	"net/http"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/verify"
)

// Verifier reads the devices live and compares them with intent (*verify.Verifier).
type Verifier interface {
	Verify(ctx context.Context, f verify.Filter) (verify.Report, error)
}

// SetVerifier enables GET /v1/verify. Call it before the server handles requests; until then
// the endpoint answers 503.
func (s *Server) SetVerifier(v Verifier) { s.verifier = v }

// verify answers GET /v1/verify?device=&segment=&probes=: every selected device read live, compared
// with intent. Devices that cannot be read are part of the 200 answer (status unreachable);
// only an unknown device or segment (422) or a failure to read the registry is an error.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := verify.Filter{Device: q.Get("device"), Segment: q.Get("segment")}
	switch v := q.Get("fresh"); v {
	case "", "false":
	case "true":
		// Only an admin may make the service log in to every device on demand: anyone else
		// gets a reading at most verify.max_age old.
		if a := actor(r.Context()); !a.Role.Can(fabric.PermAdmin) {
			s.writeError(w, r, fabric.FieldErrorf(fabric.EFORBIDDEN, "fresh", "token %s has role %s; only admin tokens may ask for fresh=true", a.Name, a.Role))
			return
		}
		f.Fresh = true
	default:
		s.writeError(w, r, fabric.FieldErrorf(fabric.EINVALID, "fresh", "want true or false, got %q", v))
		return
	}
	switch v := q.Get("probes"); v {
	case "", "false":
	case "true":
		f.Probes = true
	default:
		s.writeError(w, r, fabric.FieldErrorf(fabric.EINVALID, "probes", "want true or false, got %q", v))
		return
	}
	if f.Device != "" {
		if _, ok := s.inv.Load().Device(f.Device); !ok {
			s.writeError(w, r, fabric.FieldErrorf(fabric.EINVALID, "device", "no device named %q", f.Device))
			return
		}
	}
	if f.Segment != "" {
		if _, ok := s.inv.Load().Segment(f.Segment); !ok {
			s.writeError(w, r, fabric.FieldErrorf(fabric.EINVALID, "segment", "no segment named %q", f.Segment))
			return
		}
	}
	if s.verifier == nil {
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "verification is not configured on this server"))
		return
	}
	rep, err := s.verifier.Verify(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
