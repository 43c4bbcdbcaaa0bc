package httpapi

import (
	"context"
	"net/url"
	"sync"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// MaxWait is the longest a long-poll (GET /v1/hosts/{name}?wait=) may wait. The HTTP server's
// WriteTimeout must exceed it with a margin (cmd/returnpath derives it from MaxWait): a wait
// that outlived the write timeout would end in an empty reply instead of the host.
const MaxWait = 5 * time.Minute

// Defaults of the long-poll settings in Config.
const (
	defaultLongPollsPerToken = 10
	defaultLongPolls         = 1000
	defaultLongPollRecheck   = 5 * time.Second
	// longPollRetryAfter is what a refused long-poll is told: slots free up as other waits
	// end, which cannot be predicted, so a short pause, then try again.
	longPollRetryAfter = 2 * time.Second
)

// HostWatcher wakes long-polls when a host may have changed. The channel receives when the
// named host's state changed or its change ended, and whenever the watcher may have missed
// such news (after a reconnect). stop ends the watch.
type HostWatcher interface {
	WatchHost(name string) (wake <-chan struct{}, stop func())
}

// SetHostWatcher makes long-polls sleep until woken (and re-read the host only then, or at
// the slow safety re-read, Config.LongPollRecheck). Without one they re-read at that pace only.
func (s *Server) SetHostWatcher(w HostWatcher) { s.watcher = w }

// waitParams are a long-poll's query parameters; want is "" for a plain read.
type waitParams struct {
	want    fabric.HostState
	timeout time.Duration
}

func parseWait(q url.Values) (waitParams, error) {
	p := waitParams{want: fabric.HostState(q.Get("wait")), timeout: 30 * time.Second}
	if p.want == "" {
		return p, nil
	}
	if p.want != fabric.HostActive && p.want != fabric.HostRemoved {
		return p, fabric.FieldErrorf(fabric.EINVALID, "wait", "want active or removed, got %q", string(p.want))
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxWait {
			return p, fabric.FieldErrorf(fabric.EINVALID, "timeout", "want a duration such as 30s, at most %s, got %q", MaxWait, v)
		}
		p.timeout = d
	}
	return p, nil
}

// waitHost long-polls the named host until it reaches the wanted state, its change ends
// without getting there (rejected, failed, rolled back), or the timeout; then it answers with
// the host as it is. It reads the host once, then again only when woken for this host (or
// after a reconnect of the watcher) or at the slow safety re-read: not in a polling loop.
func (s *Server) waitHost(ctx context.Context, token, name string, p waitParams) (fabric.Host, error) {
	release, err := s.longPolls.acquire(token)
	if err != nil {
		return fabric.Host{}, err
	}
	defer release()
	// Watch before the first read: a change between the read and the watch would go unheard.
	var wake <-chan struct{}
	if s.watcher != nil {
		var stop func()
		wake, stop = s.watcher.WatchHost(name)
		defer stop()
	}
	h, err := s.hosts.Host(ctx, name)
	if err != nil {
		return h, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	recheck := time.NewTicker(s.cfg.LongPollRecheck)
	defer recheck.Stop()
	for {
		if h.State == p.want {
			return h, nil
		}
		// The host read carries its newest change: no second query per read.
		if c := h.Change; c != nil && c.Status.Final() && c.Status != fabric.ChangeApplied {
			return h, nil // the change ended without getting there: answer with its state
		}
		select {
		case <-ctx.Done():
			return h, nil // timeout: answer with the current state
		case <-wake:
		case <-recheck.C:
		}
		next, err := s.hosts.Host(ctx, name)
		if err != nil {
			if fabric.ErrorCode(err) == fabric.ENOTFOUND && p.want == fabric.HostRemoved {
				h.State = fabric.HostRemoved
				return h, nil
			}
			if ctx.Err() != nil {
				return h, nil
			}
			return h, err
		}
		h = next
	}
}

// longPolls caps concurrent long-polls per token and in all: each holds a request, a
// goroutine and a subscription for up to MaxWait.
type longPolls struct {
	perToken, total int // the caps

	mu      sync.Mutex
	all     int
	byToken map[string]int
}

func newLongPolls(perToken, total int) *longPolls {
	return &longPolls{perToken: perToken, total: total, byToken: map[string]int{}}
}

// acquire takes a slot for token, or refuses with a LimitError (429 with Retry-After).
func (l *longPolls) acquire(token string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.byToken[token] >= l.perToken:
		return nil, &fabric.LimitError{Field: "limits.long_polls_per_token", RetryAfter: longPollRetryAfter,
			Message: "this token has too many long-polls (?wait=) open at once; try again shortly"}
	case l.all >= l.total:
		return nil, &fabric.LimitError{Field: "limits.long_polls", RetryAfter: longPollRetryAfter,
			Message: "the server holds too many long-polls (?wait=) at once; try again shortly"}
	}
	l.byToken[token]++
	l.all++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.all--
			if l.byToken[token]--; l.byToken[token] == 0 {
				delete(l.byToken, token)
			}
		})
	}, nil
}
