package httpapi

import (
	"context"
	"net/http"

	"github.com/returnpath/returnpath/internal/fabric"
)

// Reloader re-reads the service's configuration and applies its inventory (cmd's Main does).
type Reloader interface {
	Reload(ctx context.Context, actor fabric.Actor) (fabric.ReloadResult, error)
}

// SetReloader mounts POST /v1/admin/reload.
func (s *Server) SetReloader(r Reloader) { s.reloader = r }

// SetInventory makes the API answer from inv from now on (a reload, once inv is synced).
func (s *Server) SetInventory(inv *fabric.Inventory) { s.inv.Store(inv) }

type reloadJSON struct {
	ChangedSegments []string     `json:"changed_segments"`
	Reroutes        []changeJSON `json:"reroutes"`
	Superseded      []int64      `json:"superseded"`
	RestartRequired []string     `json:"restart_required"`
	Warnings        []string     `json:"warnings"`
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.reloader == nil {
		s.writeError(w, r, fabric.Errorf(fabric.EUNAVAILABLE, "reload is not available in this process"))
		return
	}
	res, err := s.reloader.Reload(r.Context(), actor(r.Context()))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := reloadJSON{ChangedSegments: nonNil(res.Changed), Reroutes: []changeJSON{}, Superseded: nonNil(res.Superseded),
		RestartRequired: nonNil(res.RestartRequired), Warnings: nonNil(res.Warnings)}
	for _, c := range res.Reroutes {
		out.Reroutes = append(out.Reroutes, toChangeJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
