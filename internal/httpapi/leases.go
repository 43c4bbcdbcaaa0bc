package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// LeaseRegistry renews hosts' leases and counts stale hosts (postgres.Hosts implements it).
type LeaseRegistry interface {
	Renew(ctx context.Context, actor fabric.Actor, name string) (fabric.Host, error)
	CountStale(ctx context.Context) (int64, error)
}

// leaseJSON is a host's lease, shown when leases are on.
type leaseJSON struct {
	RenewedAt time.Time `json:"renewed_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Stale     bool      `json:"stale"`
}

func toLeaseJSON(l *fabric.Lease) *leaseJSON {
	if l == nil {
		return nil
	}
	return &leaseJSON{RenewedAt: l.RenewedAt, ExpiresAt: l.ExpiresAt, Stale: l.Stale}
}

// renewHost answers POST /v1/hosts/{name}/renew: the host's lease starts again, and a
// lease-expiry removal of it that has not started is cancelled.
func (s *Server) renewHost(w http.ResponseWriter, r *http.Request) {
	lr, ok := s.hosts.(LeaseRegistry)
	if !ok {
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "leases are not kept by this server"))
		return
	}
	h, err := lr.Renew(r.Context(), actor(r.Context()), chi.URLParam(r, "name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.hostView(r, h))
}

// queryBool parses a true/false query parameter; absent is false.
func queryBool(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, fabric.FieldErrorf(fabric.EINVALID, name, "want true or false, got %q", v)
	}
}
