package verify

import (
	"context"
	"sync"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// reading is one device read: its routes, or why they could not be read.
type reading struct {
	routes []fabric.Route
	err    error
	at     time.Time     // when the read started
	took   time.Duration // how long it took
}

// readings shares device reads between concurrent verifications (one read per device in
// flight, however many callers wait for it) and keeps the last one for maxAge, so that callers
// of GET /v1/verify cannot make the service log in to a device once per request. Failed reads
// are kept too: a dead device is not retried by every caller.
type readings struct {
	mu       sync.Mutex
	last     map[string]reading
	inflight map[string]*flight
	gen      map[string]uint64 // bumped by forget: a read begun before it is not kept
}

// forget drops device's reading, and keeps a read in flight from being stored: the device was
// just changed.
func (rs *readings) forget(device string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.gen == nil {
		rs.gen = map[string]uint64{}
	}
	rs.gen[device]++
	delete(rs.last, device)
	delete(rs.inflight, device)
}

// forgetAll forgets every device's reading (see forget): the inventory changed.
func (rs *readings) forgetAll() {
	rs.mu.Lock()
	var devices []string
	for d := range rs.last {
		devices = append(devices, d)
	}
	for d := range rs.inflight {
		devices = append(devices, d)
	}
	rs.mu.Unlock()
	for _, d := range devices {
		rs.forget(d)
	}
}

type flight struct {
	done chan struct{}
	r    reading
}

// get returns a reading of device no older than maxAge, reading it with read if needed.
func (rs *readings) get(ctx context.Context, device string, maxAge time.Duration, now func() time.Time,
	read func(context.Context) ([]fabric.Route, error)) reading {
	rs.mu.Lock()
	if r, ok := rs.last[device]; ok && maxAge > 0 && now().Sub(r.at) <= maxAge {
		rs.mu.Unlock()
		return r
	}
	f, ok := rs.inflight[device]
	if !ok {
		f = &flight{done: make(chan struct{})}
		if rs.inflight == nil {
			rs.inflight, rs.last = map[string]*flight{}, map[string]reading{}
		}
		rs.inflight[device] = f
		go rs.run(device, rs.gen[device], f, now, read)
	}
	rs.mu.Unlock()
	select {
	case <-f.done:
		return f.r
	case <-ctx.Done():
		return reading{err: ctx.Err(), at: now()}
	}
}

// readTimeout bounds one shared read, waiting for a session slot included.
const readTimeout = 2 * time.Minute

// run reads the device on its own context: a caller that gives up does not cancel the read
// others wait for.
func (rs *readings) run(device string, gen uint64, f *flight, now func() time.Time, read func(context.Context) ([]fabric.Route, error)) {
	start, at := time.Now(), now()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	routes, err := read(ctx)
	f.r = reading{routes: routes, err: err, at: at, took: time.Since(start)}
	rs.mu.Lock()
	if rs.gen[device] == gen {
		rs.last[device] = f.r
		delete(rs.inflight, device)
	}
	rs.mu.Unlock()
	close(f.done)
}
