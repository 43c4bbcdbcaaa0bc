// Package httpapi serves returnpath's REST API (api/openapi.yaml): chi routes whose handlers
// decode strictly, call one service and encode; errors are RFC 9457 problem documents.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/returnpath/returnpath/internal/buildinfo"
	"github.com/returnpath/returnpath/internal/fabric"
)

// HostRegistry registers, lists and removes hosts.
type HostRegistry interface {
	Register(ctx context.Context, actor fabric.Actor, reg fabric.Registration) (fabric.Host, bool, error)
	Host(ctx context.Context, name string) (fabric.Host, error)
	List(ctx context.Context, f fabric.HostFilter) ([]fabric.Host, string, error)
	Remove(ctx context.Context, actor fabric.Actor, name string) (fabric.Host, error)
}

// Store answers the API's other questions.
type Store interface {
	Authenticate(ctx context.Context, secret string) (fabric.Actor, error)
	Audit(ctx context.Context, f fabric.AuditFilter) ([]fabric.AuditEntry, int64, error)
	PoolUsage(ctx context.Context, inv *fabric.Inventory) ([]fabric.PoolUsage, error)
	HostsByState(ctx context.Context) (map[fabric.HostState]int64, error)
	Ready(ctx context.Context) error
}

// Config holds the server's plain settings.
type Config struct {
	MaxBodyBytes int64 // default 64 KiB
	// RegistrationsPerMinute limits POST /v1/hosts per token, in this process
	// (limits.registrations_per_minute); 0 turns the limit off.
	RegistrationsPerMinute int
	// Now is the clock of the rate limit; nil means time.Now. Tests may replace it.
	Now func() time.Time

	LongPollsPerToken int           // concurrent ?wait= requests per token; default 10
	LongPolls         int           // concurrent ?wait= requests in all; default 1000
	LongPollRecheck   time.Duration // a waiting long-poll re-reads its host at least this often; default 5s

	// MetricsSeparate leaves /metrics out of Handler: MetricsHandler serves it on a listener
	// of its own (metrics.listen).
	MetricsSeparate bool
	// MetricsRequireToken makes /metrics ask for a live bearer token (any role).
	MetricsRequireToken bool

	// Build is what /healthz and returnpath_build_info report; zero means buildinfo.Read().
	Build buildinfo.Info
}

// Server is the HTTP API.
type Server struct {
	hosts      HostRegistry
	store      Store
	inv        atomic.Pointer[fabric.Inventory] // swapped whole by a reload
	log        *slog.Logger
	cfg        Config
	metrics    *Metrics
	router     chi.Router
	changes    ChangeService  // nil until the change workflow is mounted
	verifier   Verifier       // set by SetVerifier; GET /v1/verify answers 503 without it
	deliveries DeliveryLister // set by SetDeliveries; GET /v1/events/deliveries answers 503 without it
	reloader   Reloader       // set by SetReloader; POST /v1/admin/reload answers 503 without it

	registrations *rateLimiter // nil: registrations are not rate-limited
	watcher       HostWatcher  // set by SetHostWatcher; long-polls then wake on notifications
	longPolls     *longPolls
}

// New returns the API server. Its Handler serves every route.
func New(cfg Config, inv *fabric.Inventory, hosts HostRegistry, store Store, log *slog.Logger) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Build == (buildinfo.Info{}) {
		cfg.Build = buildinfo.Read()
	}
	if cfg.LongPollsPerToken <= 0 {
		cfg.LongPollsPerToken = defaultLongPollsPerToken
	}
	if cfg.LongPolls <= 0 {
		cfg.LongPolls = defaultLongPolls
	}
	if cfg.LongPollRecheck <= 0 {
		cfg.LongPollRecheck = defaultLongPollRecheck
	}
	s := &Server{hosts: hosts, store: store, log: log, cfg: cfg, longPolls: newLongPolls(cfg.LongPollsPerToken, cfg.LongPolls)}
	s.inv.Store(inv)
	if cfg.RegistrationsPerMinute > 0 {
		s.registrations = newRateLimiter(cfg.RegistrationsPerMinute, cfg.Now)
	}
	s.metrics = newMetrics(s)
	r := s.newRouter()
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	if !cfg.MetricsSeparate {
		r.Handle("/metrics", s.metricsEndpoint())
	}
	r.Route("/v1", func(r chi.Router) {
		r.Use(s.checkText)
		r.With(s.auth(fabric.PermHosts), s.limitRegistrations).Post("/hosts", s.registerHost)
		r.With(s.auth(fabric.PermRead)).Get("/hosts", s.listHosts)
		r.With(s.auth(fabric.PermRead)).Get("/hosts/{name}", s.getHost)
		r.With(s.auth(fabric.PermHosts)).Delete("/hosts/{name}", s.removeHost)
		r.With(s.auth(fabric.PermHosts)).Post("/hosts/{name}/probes", s.recordProbe)
		r.With(s.auth(fabric.PermHosts)).Post("/hosts/{name}/renew", s.renewHost)
		r.With(s.auth(fabric.PermRead)).Get("/pools", s.listPools)
		r.With(s.auth(fabric.PermRead)).Get("/segments", s.listSegments)
		r.With(s.auth(fabric.PermReview)).Post("/segments/{name}/adopt", s.adopt)
		r.With(s.auth(fabric.PermRead)).Get("/devices", s.listDevices)
		r.With(s.auth(fabric.PermRead)).Get("/audit", s.listAudit)
		r.With(s.auth(fabric.PermRead)).Get("/changes", s.listChanges)
		r.With(s.auth(fabric.PermRead)).Get("/changes/{id}", s.getChange)
		r.With(s.auth(fabric.PermReview)).Post("/changes/{id}/approve", s.approveChange)
		r.With(s.auth(fabric.PermReview)).Post("/changes/{id}/reject", s.rejectChange)
		r.With(s.auth(fabric.PermReview)).Post("/changes/{id}/retry", s.retryChange)
		r.With(s.auth(fabric.PermRead)).Get("/verify", s.verify)
		r.With(s.auth(fabric.PermReview)).Post("/verify/remediate", s.remediate)
		r.With(s.auth(fabric.PermAdmin)).Get("/events/deliveries", s.listDeliveries)
		r.With(s.auth(fabric.PermAdmin)).Post("/admin/reload", s.reload)
	})
	s.router = r
	return s
}

// newRouter returns a router with the common middleware and problem answers for unknown
// routes and methods.
func (s *Server) newRouter() chi.Router {
	r := chi.NewRouter()
	r.Use(s.requestID, s.observe, s.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fabric.Errorf(fabric.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &requestError{status: http.StatusMethodNotAllowed, msg: fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)})
	})
	return r
}

// metricsEndpoint serves /metrics, behind a token when the config asks for one.
func (s *Server) metricsEndpoint() http.Handler {
	if s.cfg.MetricsRequireToken {
		return s.auth(anyRole)(s.metrics.handler())
	}
	return s.metrics.handler()
}

// MetricsHandler serves /metrics alone, for a listener of its own (Config.MetricsSeparate).
func (s *Server) MetricsHandler() http.Handler {
	r := s.newRouter()
	r.Handle("/metrics", s.metricsEndpoint())
	return r
}

// Router returns the chi router, so that other packages may mount more routes on it.
func (s *Server) Router() chi.Router { return s.router }

// Handler returns the http.Handler serving the API.
func (s *Server) Handler() http.Handler { return s.router }

// Metrics returns the server's metrics registry.
func (s *Server) Metrics() *Metrics { return s.metrics }

type ctxKey int

const (
	ctxRequestID ctxKey = iota
	ctxActor
	ctxCaller
)

// caller lets the auth middleware, deep in the chain, tell the request log who called.
type caller struct{ name string }

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID takes a safe X-Request-Id from the client or makes one, and echoes it.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDRE.MatchString(id) {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), ctxRequestID, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxCaller, &caller{})))
	})
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxRequestID).(string)
	return id
}

// actor returns the authenticated caller.
func actor(ctx context.Context) fabric.Actor {
	a, _ := ctx.Value(ctxActor).(fabric.Actor)
	return a
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// anyRole, as auth's permission, asks for a live token and nothing more.
const anyRole fabric.Permission = ""

// auth requires a live bearer token whose role holds perm: 401 without one, 403 with one
// that lacks the permission.
func (s *Server) auth(perm fabric.Permission) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Header.Get("Authorization")
			scheme, secret, ok := strings.Cut(h, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
				s.writeError(w, r, fabric.Errorf(fabric.EUNAUTHORIZED, "missing bearer token: send 'Authorization: Bearer <token>'"))
				return
			}
			a, err := s.store.Authenticate(r.Context(), strings.TrimSpace(secret))
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if perm != anyRole && !a.Role.Can(perm) {
				s.writeError(w, r, fabric.Errorf(fabric.EFORBIDDEN, "token %s has role %s, which may not do this (needs %s)", a.Name, a.Role, perm))
				return
			}
			if c, ok := r.Context().Value(ctxCaller).(*caller); ok {
				c.name = a.Name
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxActor, a)))
		})
	}
}

// decode reads a JSON request body strictly: the right media type, a size limit, no unknown
// fields, exactly one value.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	return s.decodeLimited(w, r, v, s.cfg.MaxBodyBytes)
}

// decodeLimited is decode with a body limit of its own, for the few requests that carry lists.
func (s *Server) decodeLimited(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &requestError{status: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "the request body must be application/json"}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("", "the request body must hold exactly one JSON object")
	}
	if field, ok := nulField(reflect.ValueOf(v), ""); ok {
		return badRequest(field, field+" must not contain NUL (\\u0000) characters")
	}
	return nil
}

func decodeError(err error, limit int64) error {
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &maxErr):
		return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the request body is larger than %d bytes", limit)}
	case errors.As(err, &typeErr):
		return badRequest(typeErr.Field, fmt.Sprintf("%s must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String())))
	case errors.As(err, &syntaxErr):
		return badRequest("", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset))
	case errors.Is(err, io.EOF):
		return badRequest("", "the request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: the body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(f, fmt.Sprintf("unknown field %q", f))
	}
	return badRequest("", "malformed JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	}
	return "number"
}

// health is the /healthz answer: liveness, and which build answers (an operator checking a
// rolling upgrade sees which replicas run the new version).
type health struct {
	Status string `json:"status"`
	buildinfo.Info
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, health{Status: "ok", Info: s.cfg.Build})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ready(ctx); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
