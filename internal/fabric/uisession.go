package fabric

import "time"

// UISession is a signed-in session of the review desk (/ui/): who it acts as, the secret its
// forms quote against cross-site requests, and when it ends. The browser holds only the
// session's random id; the secret a token login pasted is never kept.
type UISession struct {
	Actor Actor
	// Proxy is set when an authenticating proxy named the user (ui.trusted_proxy), not a token.
	Proxy     bool
	CSRF      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}
