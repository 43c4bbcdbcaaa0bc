package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// streamLifetime ends a live stream after a while; the browser's EventSource reconnects, so a
// stream never outlives a session by long.
const streamLifetime = 10 * time.Minute

// live streams Server-Sent Events to an open page: "refresh" whenever what the page shows
// differs from what it was rendered with (fp). It re-reads when the database notifies (a
// host's state changed, a change ended) and every Config.Recheck, since registrations and
// approvals do not notify. The page's script then fetches itself again.
func (u *UI) live(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var read func() (string, error)
	switch q.Get("view") {
	case "changes":
		read = func() (string, error) {
			d, err := u.changesPage(r)
			return fingerprintChanges(d), err
		}
	case "change":
		id, err := strconv.ParseInt(q.Get("id"), 10, 64)
		if err != nil || id < 1 {
			u.fail(w, r, fabric.FieldErrorf(fabric.EINVALID, "id", "want a change id, got %q", q.Get("id")))
			return
		}
		read = func() (string, error) {
			c, err := u.changes.Change(r.Context(), id)
			return fingerprintChange(c), err
		}
	default:
		u.fail(w, r, fabric.FieldErrorf(fabric.EINVALID, "view", "want changes or change, got %q", q.Get("view")))
		return
	}
	if _, err := read(); err != nil { // a bad filter is a 422 now, not a stream of errors
		u.fail(w, r, err)
		return
	}
	if u.streams.Add(1) > int64(u.cfg.MaxStreams) {
		u.streams.Add(-1)
		w.Header().Set("Retry-After", "30")
		u.fail(w, r, &fabric.LimitError{Field: "ui", Message: "too many live pages are open; this one refreshes on its own", RetryAfter: 30 * time.Second})
		return
	}
	defer u.streams.Add(-1)
	wake, stop := u.bell.subscribe()
	defer stop()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	shown := q.Get("fp")
	tick := time.NewTicker(u.cfg.Recheck)
	defer tick.Stop()
	end := time.NewTimer(streamLifetime)
	defer end.Stop()
	for {
		fp, err := read()
		if err == nil && fp != shown {
			shown = fp
			if !u.send(rc, w, "event: refresh\ndata: "+fp+"\n\n") {
				return
			}
		} else if !u.send(rc, w, ": still here\n\n") {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

func (u *UI) send(rc *http.ResponseController, w http.ResponseWriter, s string) bool {
	// The server's write timeout is for ordinary responses; a stream extends it per write.
	_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := fmt.Fprint(w, s); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// fingerprintChanges sums up what the changes page shows: each change's id, status and last
// update.
func fingerprintChanges(d changesData) string {
	h := sha256.New()
	for _, list := range [][]changeView{d.Pending, d.Recent} {
		for _, c := range list {
			fmt.Fprintf(h, "%d|%s|%d\n", c.ID, c.Status, c.UpdatedAt.UnixNano())
		}
		fmt.Fprintln(h, "--")
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// fingerprintChange sums up a change page: its status, plan and every op's progress.
func fingerprintChange(c fabric.Change) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d|%s|%s|%d|%d\n", c.ID, c.Status, c.PlanHash, c.UpdatedAt.UnixNano(), len(c.Events))
	for _, o := range c.Ops {
		fmt.Fprintf(h, "%d|%s|%d\n", o.ID, o.Status, o.Attempts)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func equalConstant(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
