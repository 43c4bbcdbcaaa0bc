package httpapi

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// rateLimiter is a token bucket per API token name: a bucket holds up to perMinute
// registrations and refills at perMinute a minute, so a token may register that many hosts at
// once and then that many a minute. The buckets live in this process, not in the database, so
// that a registration costs no extra query; behind a balancer spreading one token over N
// serve processes, the token gets up to N times the limit.
type rateLimiter struct {
	perMinute int
	now       func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	level float64 // registrations left
	at    time.Time
}

// maxBuckets bounds the limiter's memory; past it, full buckets (idle tokens) are dropped,
// which loses nothing since a new bucket starts full.
const maxBuckets = 10000

func newRateLimiter(perMinute int, now func() time.Time) *rateLimiter {
	return &rateLimiter{perMinute: perMinute, now: now, buckets: map[string]*bucket{}}
}

// take spends one registration of key's bucket, or says how long until one is back.
func (l *rateLimiter) take(key string) (wait time.Duration, ok bool) {
	now := l.now()
	capacity := float64(l.perMinute)
	perSecond := capacity / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now, capacity, perSecond)
		}
		b = &bucket{level: capacity, at: now}
		l.buckets[key] = b
	}
	if now.After(b.at) { // a clock stepping back refills nothing
		b.level = min(capacity, b.level+now.Sub(b.at).Seconds()*perSecond)
		b.at = now
	}
	if b.level >= 1 {
		b.level--
		return 0, true
	}
	return time.Duration((1 - b.level) / perSecond * float64(time.Second)), false
}

func (l *rateLimiter) prune(now time.Time, capacity, perSecond float64) {
	for k, b := range l.buckets {
		if b.level+now.Sub(b.at).Seconds()*perSecond >= capacity {
			delete(l.buckets, k)
		}
	}
}

// limitRegistrations spends one of the caller's registrations (limits.registrations_per_minute)
// before the request reaches the registry, or answers 429 with Retry-After. Every attempt
// counts, whatever its outcome: a retrying loop is what the limit is for.
func (s *Server) limitRegistrations(next http.Handler) http.Handler {
	if s.registrations == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := actor(r.Context())
		if wait, ok := s.registrations.take(a.Name); !ok {
			s.writeError(w, r, &fabric.LimitError{Field: "limits.registrations_per_minute", RetryAfter: wait,
				Message: fmt.Sprintf("token %s has used its %d registrations a minute (limits.registrations_per_minute); try again in %s",
					a.Name, s.registrations.perMinute, wait.Round(time.Second))})
			return
		}
		next.ServeHTTP(w, r)
	})
}
