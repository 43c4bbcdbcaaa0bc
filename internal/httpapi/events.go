package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// DeliveryLister lists outgoing webhook deliveries.
type DeliveryLister interface {
	List(ctx context.Context, f fabric.DeliveryFilter) ([]fabric.Delivery, int64, error)
}

// SetDeliveries mounts GET /v1/events/deliveries.
func (s *Server) SetDeliveries(d DeliveryLister) { s.deliveries = d }

type deliveryJSON struct {
	ID             int64      `json:"id"`
	Webhook        string     `json:"webhook"`
	Event          string     `json:"event"`
	ChangeID       *int64     `json:"change_id"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	ResponseStatus *int       `json:"response_status"`
	LastError      *string    `json:"last_error"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
}

func toDeliveryJSON(d fabric.Delivery) deliveryJSON {
	out := deliveryJSON{ID: d.ID, Webhook: d.Webhook, Event: string(d.Event), Status: string(d.Status), Attempts: d.Attempts,
		LastError: strOrNil(d.LastError), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, DeliveredAt: d.DeliveredAt}
	if d.ChangeID != 0 {
		out.ChangeID = &d.ChangeID
	}
	if d.ResponseStatus != 0 {
		out.ResponseStatus = &d.ResponseStatus
	}
	return out
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	if s.deliveries == nil {
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "webhook deliveries are not recorded by this server"))
		return
	}
	q := r.URL.Query()
	limit, err := queryLimit(q.Get("limit"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := fabric.DeliveryFilter{Status: fabric.DeliveryStatus(q.Get("status")), Webhook: q.Get("webhook"), Limit: limit}
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
	list, next, err := s.deliveries.List(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, idPage(list, next, toDeliveryJSON))
}
