package postgres

// WatchTokens makes db's token cache follow revocations made by any process: a revoked name
// is dropped as soon as h hears of it, the whole cache is flushed whenever h (re)connects
// (revocations sent while it was away went unheard), and the cache is bypassed, every token
// looked up in the database, while h is not connected. Call it before h.Start.
func (db *DB) WatchTokens(h *Hub) {
	db.auth.reset(false) // until the hub listens, a revocation could go unheard
	h.Handle(ChannelTokens, func(e Event) {
		switch e.Kind {
		case Notified:
			db.auth.forget(e.Payload)
		case Connected:
			db.auth.reset(true)
		case Disconnected:
			db.auth.reset(false)
		}
	})
}

// reset empties the cache and turns it on or off.
func (c *authCache) reset(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
	c.gen++
	c.off = !on
}
