// Package client is a typed HTTP client for the returnpath API (api/openapi.yaml): JSON in and
// out, a bearer token, bounded timeouts, and errors as RFC 9457 problems.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultTimeout bounds one request (connect, send, wait for and read the answer) unless the
// caller's context ends sooner or the request is a long poll.
const DefaultTimeout = 30 * time.Second

// maxResponseBytes bounds how much of an answer is read.
const maxResponseBytes = 32 << 20

// Client talks to one returnpath server with one token. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	hc      *http.Client
	timeout time.Duration
	caFile  string
	err     error // a construction error, reported by every call
	agent   string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc for every exchange (its Timeout, if any, still applies). Tests use it
// to route through a contract-checking transport.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each ordinary request; long polls get their wait on top.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithCAFile trusts the PEM certificates in path in addition to the system roots.
func WithCAFile(path string) Option { return func(c *Client) { c.caFile = path } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.agent = ua } }

// New returns a client for server (e.g. "https://returnpath.example:8080") authenticating with
// token. A malformed server URL or CA file is reported by the first call, never with the token.
func New(server, token string, opts ...Option) *Client {
	c := &Client{token: token, timeout: DefaultTimeout, agent: "returnpath-client"}
	for _, o := range opts {
		o(c)
	}
	c.base, c.err = parseServer(server)
	if c.err == nil && strings.ContainsFunc(token, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		c.err = errors.New("token contains spaces or control characters")
	}
	if c.hc == nil && c.err == nil {
		c.hc, c.err = newHTTPClient(c.caFile)
	}
	return c
}

// Server is the base URL the client talks to.
func (c *Client) Server() string {
	if c.base == nil {
		return ""
	}
	return c.base.String()
}

func parseServer(server string) (*url.URL, error) {
	if server == "" {
		return nil, errors.New("no server URL")
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("server URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: want http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q has no host", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("server URL %q: put credentials in the token, not the URL", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

func newHTTPClient(caFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates in it", caFile)
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

// Problem is an RFC 9457 problem document answered by the server for a 4xx or 5xx status.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	Reason    string `json:"reason,omitempty"` // one refusal within Code, e.g. ReasonPlanChanged
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Extra holds endpoint-specific details, e.g. the new change when an approval is stale.
	Extra json.RawMessage `json:"extra,omitempty"`

	// Method and Path name the request that got this answer.
	Method string `json:"-"`
	Path   string `json:"-"`
}

// Problem codes (api/openapi.yaml, components.schemas.Problem.code).
const (
	CodeInvalid      = "invalid"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// Problem reasons (api/openapi.yaml, components.schemas.Problem.reason).
const (
	ReasonPlanChanged      = "plan_changed"       // the plan is not the one shown: review the new one in Extra
	ReasonPlanHashMismatch = "plan_hash_mismatch" // the quoted hash was never this plan's
)

func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", p.Method, p.Path, p.Status)
	if p.Code != "" {
		fmt.Fprintf(&b, " %s", p.Code)
	} else if t := http.StatusText(p.Status); t != "" {
		fmt.Fprintf(&b, " %s", t)
	}
	switch {
	case p.Field != "" && p.Detail != "":
		fmt.Fprintf(&b, ": %s: %s", p.Field, p.Detail)
	case p.Detail != "":
		fmt.Fprintf(&b, ": %s", p.Detail)
	case p.Field != "":
		fmt.Fprintf(&b, ": field %s", p.Field)
	}
	if p.RequestID != "" {
		fmt.Fprintf(&b, " (request_id %s)", p.RequestID)
	}
	return b.String()
}

// IsCode reports whether err is a Problem with the given code.
func IsCode(err error, code string) bool {
	var p *Problem
	return errors.As(err, &p) && p.Code == code
}

// IsNotFound reports whether err is a 404 problem.
func IsNotFound(err error) bool {
	var p *Problem
	return errors.As(err, &p) && p.Status == http.StatusNotFound
}

// TransportError is a failure to get any answer from the server: DNS, connect, TLS, timeout,
// or an answer that is not what the API sends.
type TransportError struct {
	Method, URL string
	Err         error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Method, e.URL, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Do sends in (if not nil) as JSON to path (e.g. "/v1/hosts", may carry a query) and decodes
// a 2xx answer into out (if not nil). A 4xx/5xx answer is a *Problem; no answer at all is a
// *TransportError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.do(ctx, method, path, in, out, c.timeout)
	return err
}

// do is Do with the answer's status and a timeout of its own (0: only ctx bounds it).
func (c *Client) do(ctx context.Context, method, path string, in, out any, timeout time.Duration) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	rel, err := url.Parse(path)
	if err != nil {
		return 0, fmt.Errorf("path %q: %w", path, err)
	}
	u := *c.base
	u.Path = c.base.Path + rel.Path
	u.RawPath = ""
	if rel.RawPath != "" {
		u.RawPath = c.base.EscapedPath() + rel.RawPath
	}
	u.RawQuery = rel.RawQuery
	shown := u.Redacted()

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("%s %s: encode request: %w", method, shown, err)
		}
		body = bytes.NewReader(b)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, &TransportError{Method: method, URL: shown, Err: err}
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.agent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, &TransportError{Method: method, URL: shown, Err: c.scrub(unwrapURLError(err))}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, &TransportError{Method: method, URL: shown, Err: fmt.Errorf("read answer (status %d): %w", resp.StatusCode, c.scrub(err))}
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, c.problem(method, rel.Path, resp, data)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, &TransportError{Method: method, URL: shown, Err: fmt.Errorf("unexpected status %d", resp.StatusCode)}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, &TransportError{Method: method, URL: shown, Err: fmt.Errorf("decode answer (status %d): %w", resp.StatusCode, err)}
	}
	return resp.StatusCode, nil
}

// problem decodes an error answer; one that is not a problem document (a proxy's HTML page,
// say) still becomes a Problem with its status and the start of its text.
func (c *Client) problem(method, path string, resp *http.Response, data []byte) error {
	p := &Problem{}
	if err := json.Unmarshal(data, p); err != nil || p.Status == 0 {
		p = &Problem{Detail: snippet(data)}
	}
	p.Status = resp.StatusCode
	if p.RequestID == "" {
		p.RequestID = resp.Header.Get("X-Request-Id")
	}
	p.Method, p.Path = method, path
	p.Detail = c.scrubString(p.Detail)
	return p
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// unwrapURLError drops *url.Error's own method and URL: TransportError carries them.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// minScrubLen is the shortest token that scrubbing masks: shorter strings occur in ordinary
// text ("t" in "connect"), and masking them would garble messages without hiding a secret.
const minScrubLen = 8

// scrub makes sure no error text carries the token, whatever a lower layer put in it.
func (c *Client) scrub(err error) error {
	if err == nil || len(c.token) < minScrubLen || !strings.Contains(err.Error(), c.token) {
		return err
	}
	return errors.New(c.scrubString(err.Error()))
}

func (c *Client) scrubString(s string) string {
	if len(c.token) < minScrubLen {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[token]")
}
