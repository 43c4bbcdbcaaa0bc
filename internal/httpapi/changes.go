package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// ChangeService reviews changes.
type ChangeService interface {
	Change(ctx context.Context, id int64) (fabric.Change, error)
	List(ctx context.Context, f fabric.ChangeFilter) ([]fabric.Change, int64, error)
	Approve(ctx context.Context, actor fabric.Actor, id int64, planHash string) (fabric.Change, error)
	Reject(ctx context.Context, actor fabric.Actor, id int64, reason string) (fabric.Change, error)
	Retry(ctx context.Context, actor fabric.Actor, id int64) (fabric.Change, error)
	HostChange(ctx context.Context, hostID int64) (int64, fabric.ChangeStatus, string, bool)
	Remediate(ctx context.Context, actor fabric.Actor, ops []fabric.DeviceOp) (fabric.Change, error)
}

// SetChanges mounts the change workflow: host views then show their change.
func (s *Server) SetChanges(c ChangeService) { s.changes = c }

type changeHostJSON struct {
	Name     string `json:"name"`
	Address  string `json:"address,omitempty"` // none in an IPv6-only segment
	Subnet   string `json:"subnet,omitempty"`
	Address6 string `json:"address6,omitempty"`
	Subnet6  string `json:"subnet6,omitempty"`
}

type changeOpJSON struct {
	Device   string  `json:"device"`
	Stage    int     `json:"stage"`
	Action   string  `json:"action"`
	Prefix   string  `json:"prefix"`
	NextHop  string  `json:"next_hop"`
	VRF      string  `json:"vrf"`
	Preview  string  `json:"preview"`
	Status   string  `json:"status"`
	Attempts int     `json:"attempts"`
	Error    *string `json:"error"`
	Output   *string `json:"output"`
	// NextAttemptAt and GivesUpAt are set while the op is pending on a device that could
	// not be reached: its next login, and when the engine stops retrying and fails it.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	GivesUpAt     *time.Time `json:"gives_up_at,omitempty"`
}

type changeEventJSON struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Detail string    `json:"detail"`
}

type changeJSON struct {
	ID          int64             `json:"id"`
	Kind        string            `json:"kind"`
	Status      string            `json:"status"`
	Host        *changeHostJSON   `json:"host"`
	Segment     *string           `json:"segment"`
	RequestedBy string            `json:"requested_by"`
	ApprovedBy  *string           `json:"approved_by"`
	Reason      *string           `json:"reason"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	PlanHash    string            `json:"plan_hash"`
	Ops         []changeOpJSON    `json:"ops"`
	Events      []changeEventJSON `json:"events"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toChangeJSON(c fabric.Change) changeJSON {
	out := changeJSON{ID: c.ID, Kind: string(c.Kind), Status: string(c.Status), Segment: strOrNil(c.Segment), RequestedBy: c.RequestedBy,
		ApprovedBy: strOrNil(c.ApprovedBy), Reason: strOrNil(c.Reason), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		PlanHash: c.PlanHash, Ops: []changeOpJSON{}, Events: []changeEventJSON{}}
	if c.Host != nil {
		out.Host = &changeHostJSON{Name: c.Host.Name}
		if c.Host.Subnet.IsValid() {
			out.Host.Address, out.Host.Subnet = c.Host.Address.String(), c.Host.Subnet.String()
		}
		if c.Host.Subnet6.IsValid() {
			out.Host.Address6, out.Host.Subnet6 = c.Host.Address6.String(), c.Host.Subnet6.String()
		}
	}
	for _, o := range c.Ops {
		out.Ops = append(out.Ops, changeOpJSON{Device: o.Device, Stage: o.Stage, Action: string(o.Op.Action), Prefix: o.Op.Route.Prefix.String(),
			NextHop: o.Op.Route.NextHop.String(), VRF: o.Op.Route.VRF, Preview: o.Preview, Status: string(o.Status),
			Attempts: o.Attempts, Error: strOrNil(o.Error), Output: strOrNil(o.Output),
			NextAttemptAt: timeOrNil(o.NextAttemptAt), GivesUpAt: timeOrNil(o.GivesUpAt)})
	}
	for _, e := range c.Events {
		out.Events = append(out.Events, changeEventJSON(e))
	}
	return out
}

func (s *Server) requireChanges(w http.ResponseWriter, r *http.Request) bool {
	if s.changes == nil {
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "the change workflow is not running"))
		return false
	}
	return true
}

func changeID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id < 1 {
		return 0, fabric.FieldErrorf(fabric.EINVALID, "id", "want a change id (a positive whole number), got %q", chi.URLParam(r, "id"))
	}
	return id, nil
}

func (s *Server) listChanges(w http.ResponseWriter, r *http.Request) {
	if !s.requireChanges(w, r) {
		return
	}
	q := r.URL.Query()
	limit, err := queryLimit(q.Get("limit"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := fabric.ChangeFilter{Status: fabric.ChangeStatus(q.Get("status")), Host: q.Get("host"), Limit: limit}
	if f.Status != "" {
		if err := f.Status.Validate(); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if f.Before, err = keysetAfter(q); err != nil {
		s.writeError(w, r, err)
		return
	}
	list, next, err := s.changes.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, idPage(list, next, toChangeJSON))
}

func (s *Server) getChange(w http.ResponseWriter, r *http.Request) {
	if !s.requireChanges(w, r) {
		return
	}
	id, err := changeID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.changes.Change(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toChangeJSON(c))
}

// changeAction handles approve, reject and retry: they differ only in the body and the call.
func (s *Server) changeAction(do func(r *http.Request, id int64) (fabric.Change, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.requireChanges(w, r) {
			return
		}
		id, err := changeID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		c, err := do(r, id)
		var stale *fabric.StalePlanError
		if errors.As(err, &stale) {
			s.writeError(w, r, withExtra{err: err, extra: toChangeJSON(stale.Change)})
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toChangeJSON(c))
	}
}

func (s *Server) approveChange(w http.ResponseWriter, r *http.Request) {
	s.changeAction(func(r *http.Request, id int64) (fabric.Change, error) {
		var req struct {
			PlanHash *string `json:"plan_hash"`
		}
		if err := s.decode(w, r, &req); err != nil {
			return fabric.Change{}, err
		}
		if req.PlanHash == nil || *req.PlanHash == "" {
			return fabric.Change{}, fabric.FieldErrorf(fabric.EINVALID, "plan_hash", "is required: quote the plan_hash of the change you reviewed")
		}
		return s.changes.Approve(r.Context(), actor(r.Context()), id, *req.PlanHash)
	})(w, r)
}

func (s *Server) rejectChange(w http.ResponseWriter, r *http.Request) {
	s.changeAction(func(r *http.Request, id int64) (fabric.Change, error) {
		var req struct {
			Reason *string `json:"reason"`
		}
		if err := s.decode(w, r, &req); err != nil {
			return fabric.Change{}, err
		}
		if req.Reason == nil || *req.Reason == "" {
			return fabric.Change{}, fabric.FieldErrorf(fabric.EINVALID, "reason", "is required")
		}
		if len(*req.Reason) > 2000 {
			return fabric.Change{}, fabric.FieldErrorf(fabric.EINVALID, "reason", "is %d characters long; at most 2000", len(*req.Reason))
		}
		return s.changes.Reject(r.Context(), actor(r.Context()), id, *req.Reason)
	})(w, r)
}

func (s *Server) retryChange(w http.ResponseWriter, r *http.Request) {
	s.changeAction(func(r *http.Request, id int64) (fabric.Change, error) {
		return s.changes.Retry(r.Context(), actor(r.Context()), id)
	})(w, r)
}

// withExtra attaches a body for the problem's "extra" member.
type withExtra struct {
	err   error
	extra any
}

func (e withExtra) Error() string     { return e.err.Error() }
func (e withExtra) Unwrap() error     { return e.err }
func (e withExtra) ProblemExtra() any { return e.extra }

func changeRefOf(id int64, status fabric.ChangeStatus, reason string) *changeRef {
	return &changeRef{ID: id, Status: string(status), Reason: strOrNil(reason)}
}
