package postgres

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channels returnpath NOTIFYs on. Every payload is a name (ChannelSessionWant: two).
const (
	// ChannelHost carries a host's name when its state changes or its change reaches a final
	// status (triggers of migration 0005). Registrations do not notify.
	ChannelHost = "returnpath_host"
	// ChannelTokens carries a token's name when it is revoked (RevokeToken).
	ChannelTokens = "returnpath_tokens"
	// ChannelSessionWant carries "<process> <device>" when a process could not get one of
	// the device's session slots (WantDeviceSession): a process keeping an idle session to
	// it open lets it go.
	ChannelSessionWant = "returnpath_session_want"
)

// hubChannels are the channels a Hub listens on.
var hubChannels = []string{ChannelHost, ChannelTokens, ChannelSessionWant}

// EventKind says what a hub event reports.
type EventKind int

const (
	// Notified: a notification arrived on Channel with Payload.
	Notified EventKind = iota
	// Connected: the hub (re)connected and listens again. Notifications sent while it was
	// away are lost: anything may have changed, so re-read what you depend on.
	Connected
	// Disconnected: the hub lost its connection (or was closed). Until the next Connected,
	// notifications go unheard.
	Disconnected
)

// Event is what a hub hands its handlers.
type Event struct {
	Kind    EventKind
	Channel string // for Notified
	Payload string // for Notified
}

// Hub listens for returnpath's notifications on one dedicated connection per process (a
// pooled connection would miss notifications while lent out, and LISTEN state would leak to
// other users of the pool) and dispatches them in process: to handlers, which run on the
// hub's goroutine, and to subscriptions, which are woken without ever blocking it. It
// reconnects with backoff when the connection drops, and tells everyone when it is back.
type Hub struct {
	cfg        *pgx.ConnConfig
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
	// idle is how long the hub waits for a notification before it checks, with a ping,
	// that the server is still there: a connection whose peer vanished without a reset
	// would otherwise wait forever.
	idle time.Duration

	mu        sync.Mutex
	connected bool
	handlers  []handler // in registration order
	subs      map[subKey]map[*Subscription]struct{}
	cancel    context.CancelFunc
	done      chan struct{}
}

type handler struct {
	channel string
	fn      func(Event)
}

type subKey struct{ channel, payload string }

// hubApplicationName shows the listener in pg_stat_activity.
const hubApplicationName = "returnpath-listener"

// NewHub returns a hub that connects with cfg (typically the pool's, db.Pool.Config().ConnConfig).
// It does nothing until Start.
func NewHub(cfg *pgx.ConnConfig, log *slog.Logger) *Hub {
	cfg = cfg.Copy()
	cfg.RuntimeParams["application_name"] = hubApplicationName
	return &Hub{cfg: cfg, log: log, minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second, idle: 30 * time.Second,
		subs: map[subKey]map[*Subscription]struct{}{}}
}

// Handle registers fn for notifications on channel and for every Connected and Disconnected
// event. fn runs on the hub's goroutine, after the handlers registered before it; for a
// notification before any subscription is woken for it, for Connected after every
// subscription has been woken to resync. It must be quick and must not block. Call Handle
// before Start.
func (h *Hub) Handle(channel string, fn func(Event)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.handlers = append(h.handlers, handler{channel, fn})
}

// Subscription wakes its owner, through C, when a notification with its payload arrives on
// its channel and when the hub reconnects (then re-read: anything could have happened while
// the hub was away). Wakes coalesce: C holds at most one.
type Subscription struct {
	C <-chan struct{}

	c   chan struct{}
	hub *Hub
	key subKey
}

// Subscribe returns a subscription to notifications on channel whose payload is payload. It
// is cheap (a long-poll subscribes per request); Close it when done.
func (h *Hub) Subscribe(channel, payload string) *Subscription {
	c := make(chan struct{}, 1)
	s := &Subscription{C: c, c: c, hub: h, key: subKey{channel, payload}}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[s.key]
	if m == nil {
		m = map[*Subscription]struct{}{}
		h.subs[s.key] = m
	}
	m[s] = struct{}{}
	return s
}

// Close ends the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.subs[s.key]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.subs, s.key)
		}
	}
}

func (s *Subscription) wake() {
	select {
	case s.c <- struct{}{}:
	default: // a wake is pending already: one is as good as two
	}
}

// WatchHost subscribes to changes of the named host (httpapi's long-polls use it).
func (h *Hub) WatchHost(name string) (<-chan struct{}, func()) {
	s := h.Subscribe(ChannelHost, name)
	return s.C, s.Close
}

// Connected reports whether the hub is listening now.
func (h *Hub) Connected() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.connected
}

// Start connects and listens in the background until Close; it returns at once. Until the
// first connection succeeds (it retries with backoff) the hub is disconnected.
func (h *Hub) Start(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done != nil {
		return
	}
	ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.done = make(chan struct{})
	go h.run(ctx)
}

// Close stops listening and closes the connection. Handlers get a last Disconnected.
func (h *Hub) Close() {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (h *Hub) run(ctx context.Context) {
	defer close(h.done)
	backoff := h.minBackoff
	for {
		conn, err := h.connect(ctx)
		if err == nil {
			up := time.Now()
			h.transition(true)
			err = h.receive(ctx, conn)
			h.transition(false)
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(cctx)
			cancel()
			// A connection that held for a while resets the backoff; one that drops as soon
			// as it is made (a flapping server) does not, so that the hub never spins.
			if time.Since(up) > time.Minute {
				backoff = h.minBackoff
			}
		}
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("notification listener: not connected; retrying", "err", err, "retry_in", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, h.maxBackoff)
	}
}

func (h *Hub) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, h.cfg)
	if err != nil {
		return nil, err
	}
	for _, ch := range hubChannels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return conn, nil
}

// receive dispatches notifications until the connection fails or ctx ends.
func (h *Hub) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, h.idle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if n != nil {
			h.dispatch(Event{Kind: Notified, Channel: n.Channel, Payload: n.Payload})
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// transition records the connection state, (on a reconnect) wakes every subscription so that
// it re-reads, and then tells handlers: once a handler has seen Connected, every subscription
// made before it has been woken, and none made after it will be by this connect.
func (h *Hub) transition(up bool) {
	kind := Disconnected
	if up {
		kind = Connected
	}
	h.mu.Lock()
	h.connected = up
	handlers := h.handlers
	if up {
		for _, m := range h.subs {
			for s := range m {
				s.wake()
			}
		}
	}
	h.mu.Unlock()
	for _, hd := range handlers {
		hd.fn(Event{Kind: kind})
	}
}

func (h *Hub) dispatch(e Event) {
	h.mu.Lock()
	handlers := h.handlers
	h.mu.Unlock()
	for _, hd := range handlers {
		if hd.channel == e.Channel {
			hd.fn(e)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[subKey{e.Channel, e.Payload}] {
		s.wake()
	}
}
