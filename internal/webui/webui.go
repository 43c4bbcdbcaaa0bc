// Package webui serves the review desk at /ui/: server-rendered pages (html/template, embedded
// templates and assets, no front-end build) where reviewers read pending route changes as each
// device will receive them, approve, reject or retry them, and look over the fabric. It calls
// the same services as the REST API through small interfaces of its own, so that the approval
// rules (plan hash, four eyes) are decided in one place and only rendered here.
package webui

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/verify"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the desk is mounted on the API server's router.
const Prefix = "/ui"

// cookieName holds the session id, and only that.
const cookieName = "rp_session"

// loginCookie holds the random value the sign-in form quotes (a double-submit token: there is
// no session yet to hold a CSRF secret).
const loginCookie = "rp_login"

// DefaultSessionTTL is how long a sign-in lasts when ui.session_ttl is not set.
const DefaultSessionTTL = 8 * time.Hour

// maxFormBytes bounds a form post.
const maxFormBytes = 64 << 10

// Store holds the desk's sessions and answers who a token is (*postgres.DB).
type Store interface {
	Authenticate(ctx context.Context, secret string) (fabric.Actor, error)
	CreateUISession(ctx context.Context, a fabric.Actor, proxy bool, ttl time.Duration) (string, fabric.UISession, error)
	UISession(ctx context.Context, id string) (fabric.UISession, error)
	DeleteUISession(ctx context.Context, actor, id string) error
	PoolUsage(ctx context.Context, inv *fabric.Inventory) ([]fabric.PoolUsage, error)
}

// Changes is the change workflow the API uses (*postgres.Changes): the desk decides nothing
// about approval itself.
type Changes interface {
	Change(ctx context.Context, id int64) (fabric.Change, error)
	List(ctx context.Context, f fabric.ChangeFilter) ([]fabric.Change, int64, error)
	Approve(ctx context.Context, actor fabric.Actor, id int64, planHash string) (fabric.Change, error)
	Reject(ctx context.Context, actor fabric.Actor, id int64, reason string) (fabric.Change, error)
	Retry(ctx context.Context, actor fabric.Actor, id int64) (fabric.Change, error)
	Remediate(ctx context.Context, actor fabric.Actor, ops []fabric.DeviceOp) (fabric.Change, error)
}

// Hosts lists live hosts a page at a time (*postgres.Hosts).
type Hosts interface {
	List(ctx context.Context, f fabric.HostFilter) ([]fabric.Host, string, error)
}

// Verifier compares the devices with intent (*verify.Verifier). Page views ask without Fresh,
// so they share readings up to verify.max_age old and never multiply device logins.
type Verifier interface {
	Verify(ctx context.Context, f verify.Filter) (verify.Report, error)
}

// TrustedProxy lets an authenticating proxy (single sign-on) name the user in a header.
type TrustedProxy struct {
	Header      string         // e.g. X-Forwarded-Email
	From        []netip.Prefix // only requests from these addresses may set it
	RoleMap     map[string]fabric.Role
	DefaultRole fabric.Role // for users not in RoleMap; "" refuses them
}

// Config holds the desk's plain settings.
type Config struct {
	SessionTTL time.Duration // DefaultSessionTTL when 0
	// Secure marks the cookie Secure on every response (the service serves TLS); it is also
	// Secure whenever the request came over TLS.
	Secure bool
	Proxy  *TrustedProxy // nil: no proxy sign-in
	// Recheck is how often a live page's stream re-reads what it shows when no notification
	// came (registrations do not notify); default 5s.
	Recheck time.Duration
	// MaxStreams bounds the live-update streams open at once in this process; default 200.
	MaxStreams int
}

// UI is the review desk.
type UI struct {
	cfg      Config
	store    Store
	changes  Changes
	hosts    Hosts
	verifier Verifier // nil: the fabric page shows no device readings
	inv      atomic.Pointer[fabric.Inventory]
	log      *slog.Logger
	pages    map[string]*template.Template
	bell     bell
	streams  atomic.Int64
}

// New returns the desk. verifier may be nil.
func New(cfg Config, inv *fabric.Inventory, store Store, changes Changes, hosts Hosts, verifier Verifier, log *slog.Logger) (*UI, error) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 5 * time.Second
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 200
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	u := &UI{cfg: cfg, store: store, changes: changes, hosts: hosts, verifier: verifier, log: log, pages: pages}
	u.bell.subs = map[chan struct{}]struct{}{}
	u.inv.Store(inv)
	return u, nil
}

// SetInventory makes the desk show inv from now on (a reload).
func (u *UI) SetInventory(inv *fabric.Inventory) { u.inv.Store(inv) }

// Notify wakes every live page to re-read what it shows: a host's state changed or a change
// ended (postgres.ChannelHost), or the listener reconnected.
func (u *UI) Notify() { u.bell.ring() }

// Handler serves the desk; mount it at Prefix.
func (u *UI) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		u.render(w, r, http.StatusNotFound, "message", &page{Title: "Not found", Message: "There is no page at this address."})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		u.render(w, r, http.StatusMethodNotAllowed, "message", &page{Title: "Not allowed", Message: r.Method + " is not allowed here."})
	})
	static, _ := fs.Sub(staticFS, "static")
	r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
	r.Get("/login", u.loginForm)
	r.Post("/login", u.login)
	r.Group(func(r chi.Router) {
		r.Use(u.authenticate)
		r.Get("/", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, Prefix+"/changes", http.StatusSeeOther)
		})
		r.Get("/changes", u.listChanges)
		r.Get("/changes/{id}", u.showChange)
		r.Get("/fabric", u.showFabric)
		r.Get("/live", u.live)
		r.Group(func(r chi.Router) {
			r.Use(u.checkCSRF)
			r.Post("/logout", u.logout)
			r.With(u.require(fabric.PermReview)).Post("/changes/{id}/approve", u.approve)
			r.With(u.require(fabric.PermReview)).Post("/changes/{id}/reject", u.reject)
			r.With(u.require(fabric.PermReview)).Post("/changes/{id}/retry", u.retry)
			r.With(u.require(fabric.PermReview)).Post("/fabric/remediate", u.remediate)
		})
	})
	return http.StripPrefix(Prefix, r)
}

// csp forbids inline scripts and styles, framing, and forms posting anywhere else.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

type ctxKey int

const (
	ctxSession ctxKey = iota
	ctxSessionID
)

func sessionOf(ctx context.Context) fabric.UISession {
	s, _ := ctx.Value(ctxSession).(fabric.UISession)
	return s
}

// authenticate finds the request's session: the trusted proxy's user when the request comes
// from the proxy, else the cookie's session. Without one, pages redirect to the sign-in form
// and posts are refused.
func (u *UI) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var id string
		var s fabric.UISession
		var err error
		if c, cerr := r.Cookie(cookieName); cerr == nil && c.Value != "" {
			id = c.Value
			s, err = u.store.UISession(ctx, id)
		} else {
			err = fabric.Errorf(fabric.EUNAUTHORIZED, "not signed in")
		}
		if user, ok := u.proxyUser(r); ok {
			if err != nil || !s.Proxy || s.Actor.Name != user {
				id, s, err = u.proxySession(w, r, user)
				if err != nil {
					u.fail(w, r, err)
					return
				}
			}
		}
		if err != nil {
			if fabric.ErrorCode(err) != fabric.EUNAUTHORIZED {
				u.fail(w, r, err)
				return
			}
			if r.Method == http.MethodGet && r.URL.Path != "/live" {
				http.Redirect(w, r, Prefix+"/login?next="+urlQueryEscape(Prefix+r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			u.render(w, r, http.StatusUnauthorized, "message", &page{Title: "Signed out", Message: "Your session has ended: sign in again."})
			return
		}
		ctx = context.WithValue(ctx, ctxSession, s)
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxSessionID, id)))
	})
}

// proxyUser returns the user the trusted proxy named, if the request came from it.
func (u *UI) proxyUser(r *http.Request) (string, bool) {
	p := u.cfg.Proxy
	if p == nil {
		return "", false
	}
	user := strings.TrimSpace(r.Header.Get(p.Header))
	if user == "" || len(user) > 254 || strings.ContainsFunc(user, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return "", false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return "", false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "", false
	}
	addr = addr.Unmap()
	for _, from := range p.From {
		if from.Contains(addr) {
			return user, true
		}
	}
	return "", false
}

// proxySession signs the proxy's user in with the role the configuration maps them to.
func (u *UI) proxySession(w http.ResponseWriter, r *http.Request, user string) (string, fabric.UISession, error) {
	role, ok := u.cfg.Proxy.RoleMap[user]
	if !ok {
		role = u.cfg.Proxy.DefaultRole
	}
	if role == "" {
		return "", fabric.UISession{}, fabric.Errorf(fabric.EFORBIDDEN, "%s has no role on this desk (ui.trusted_proxy.role_map)", user)
	}
	a := fabric.Actor{Name: user, Role: role, Owner: user}
	id, s, err := u.store.CreateUISession(r.Context(), a, true, u.cfg.SessionTTL)
	if err != nil {
		return "", s, err
	}
	u.setSessionCookie(w, r, id, s.ExpiresAt)
	return id, s, nil
}

func (u *UI) secure(r *http.Request) bool { return u.cfg.Secure || r.TLS != nil }

func (u *UI) setSessionCookie(w http.ResponseWriter, r *http.Request, id string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: Prefix + "/", Expires: expires, HttpOnly: true,
		Secure: u.secure(r), SameSite: http.SameSiteStrictMode})
}

func (u *UI) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: Prefix + "/", MaxAge: -1, HttpOnly: true,
		Secure: u.secure(r), SameSite: http.SameSiteStrictMode})
}

// require refuses a signed-in user whose role lacks perm (the API's rule for the same call).
func (u *UI) require(perm fabric.Permission) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := sessionOf(r.Context()).Actor
			if !a.Role.Can(perm) {
				u.fail(w, r, fabric.Errorf(fabric.EFORBIDDEN, "%s has role %s, which may not do this (needs %s)", a.Name, a.Role, perm))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// crossSite reports a request a browser marked as coming from another site: refused before
// any token is compared.
func crossSite(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return site != "" && site != "same-origin" && site != "none"
}

// checkCSRF refuses a post whose form does not quote the session's CSRF token.
func (u *UI) checkCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			u.fail(w, r, fabric.Errorf(fabric.EINVALID, "the form could not be read"))
			return
		}
		want := csrfToken(sessionOf(r.Context()))
		got := r.PostForm.Get("csrf")
		if crossSite(r) || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			u.fail(w, r, fabric.Errorf(fabric.EFORBIDDEN, "this form is out of date or did not come from this desk: reload the page and try again"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func csrfToken(s fabric.UISession) string { return hex.EncodeToString(s.CSRF) }

// bell wakes the live streams.
type bell struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (b *bell) subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	b.mu.Lock()
	b.subs[c] = struct{}{}
	b.mu.Unlock()
	return c, func() {
		b.mu.Lock()
		delete(b.subs, c)
		b.mu.Unlock()
	}
}

func (b *bell) ring() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// status maps a domain error to the page's HTTP status.
func status(err error) int {
	switch fabric.ErrorCode(err) {
	case fabric.EINVALID:
		return http.StatusUnprocessableEntity
	case fabric.ENOTFOUND:
		return http.StatusNotFound
	case fabric.ECONFLICT:
		return http.StatusConflict
	case fabric.EFORBIDDEN:
		return http.StatusForbidden
	case fabric.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case fabric.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case fabric.ETOOMANY:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// fail answers with a page saying what went wrong, in the domain's user-safe words; internal
// errors are logged and shown as a generic text.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := status(err)
	if code >= 500 {
		var limit *fabric.LimitError
		if !errors.As(err, &limit) {
			u.log.ErrorContext(r.Context(), "review desk", "err", err, "path", r.URL.Path)
		}
	}
	u.render(w, r, code, "message", &page{Title: httpStatusTitle(code), Message: fabric.ErrorMessage(err), Problem: true})
}

func httpStatusTitle(code int) string {
	switch code {
	case http.StatusForbidden:
		return "Not allowed"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusUnauthorized:
		return "Signed out"
	case http.StatusNotFound:
		return "Not found"
	}
	return http.StatusText(code)
}
