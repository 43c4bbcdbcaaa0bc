package httpapi

import (
	"net/http"
	"strconv"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/verify"
)

// remediate runs a verification and files one change that restores intent on every device
// that drifts and could be read: POST /v1/verify/remediate?device=&segment=. The change is
// reviewed like any other unless the approval policy auto-approves remediation.
func (s *Server) remediate(w http.ResponseWriter, r *http.Request) {
	if !s.requireChanges(w, r) {
		return
	}
	if s.verifier == nil {
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "verification is not configured on this server"))
		return
	}
	q := r.URL.Query()
	// A remediation is planned from the devices as they are now, never from a shared reading.
	rep, err := s.verifier.Verify(r.Context(), verify.Filter{Device: q.Get("device"), Segment: q.Get("segment"), Fresh: true})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.changes.Remediate(r.Context(), actor(r.Context()), RemediationOps(rep))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/changes/"+strconv.FormatInt(c.ID, 10))
	writeJSON(w, http.StatusCreated, toChangeJSON(c))
}

// RemediationOps turns a verification report into the ops that restore intent.
func RemediationOps(rep verify.Report) []fabric.DeviceOp {
	var ops []fabric.DeviceOp
	for _, d := range rep.Devices {
		if d.Status != verify.StatusDrift {
			continue
		}
		var drift fabric.Drift
		for _, m := range d.Missing {
			drift.Missing = append(drift.Missing, fabric.IntentRoute{Route: fabric.Route{VRF: m.VRF, Prefix: m.Prefix, NextHop: m.NextHop}, Host: m.Host})
		}
		for _, u := range d.Unexpected {
			drift.Unexpected = append(drift.Unexpected, fabric.Route{VRF: u.VRF, Prefix: u.Prefix, NextHop: u.NextHop})
		}
		for _, wn := range d.WrongNextHop {
			drift.WrongNextHop = append(drift.WrongNextHop, fabric.WrongNextHop{
				Want: fabric.IntentRoute{Route: fabric.Route{VRF: wn.VRF, Prefix: wn.Prefix, NextHop: wn.Want}, Host: wn.Host},
				Got:  fabric.Route{VRF: wn.VRF, Prefix: wn.Prefix, NextHop: wn.Got},
			})
		}
		ops = append(ops, fabric.RemediationOps(d.Device, drift)...)
	}
	return ops
}
