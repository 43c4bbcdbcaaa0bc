package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const secret = "rp_s3cret-token-value"

func TestProblemMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		ctype, body string
		header      http.Header
		want        *Problem
		wantText    string
	}{
		{
			name: "problem document", status: 422, ctype: "application/problem+json",
			body: `{"type":"urn:returnpath:problem:invalid","title":"Unprocessable Entity","status":422,"code":"invalid","field":"address","detail":"\"x\" is not an IP address","request_id":"req-1","instance":"/v1/hosts"}`,
			want: &Problem{Type: "urn:returnpath:problem:invalid", Title: "Unprocessable Entity", Status: 422, Code: "invalid", Field: "address",
				Detail: `"x" is not an IP address`, RequestID: "req-1", Instance: "/v1/hosts", Method: "POST", Path: "/v1/hosts"},
			wantText: `POST /v1/hosts: 422 invalid: address: "x" is not an IP address (request_id req-1)`,
		},
		{
			name: "conflict with extra", status: 409, ctype: "application/problem+json",
			body: `{"type":"t","title":"Conflict","status":409,"code":"conflict","detail":"plan changed","extra":{"id":7}}`,
			want: &Problem{Type: "t", Title: "Conflict", Status: 409, Code: "conflict", Detail: "plan changed", Extra: json.RawMessage(`{"id":7}`),
				Method: "POST", Path: "/v1/hosts"},
			wantText: "POST /v1/hosts: 409 conflict: plan changed",
		},
		{
			name: "proxy page", status: 502, ctype: "text/html", body: "<html>\n  Bad   gateway</html>",
			header:   http.Header{"X-Request-Id": {"edge-9"}},
			want:     &Problem{Status: 502, Detail: "<html> Bad gateway</html>", RequestID: "edge-9", Method: "POST", Path: "/v1/hosts"},
			wantText: "POST /v1/hosts: 502 Bad Gateway: <html> Bad gateway</html> (request_id edge-9)",
		},
		{
			name: "status in body disagrees", status: 503, ctype: "application/problem+json",
			body:     `{"status":500,"code":"unavailable","detail":"database down"}`,
			want:     &Problem{Status: 503, Code: "unavailable", Detail: "database down", Method: "POST", Path: "/v1/hosts"},
			wantText: "POST /v1/hosts: 503 unavailable: database down",
		},
		{
			name: "token echoed back is scrubbed", status: 401, ctype: "application/problem+json",
			body:     `{"status":401,"code":"unauthorized","detail":"bad token ` + secret + `"}`,
			want:     &Problem{Status: 401, Code: "unauthorized", Detail: "bad token [token]", Method: "POST", Path: "/v1/hosts"},
			wantText: "POST /v1/hosts: 401 unauthorized: bad token [token]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := New(srv.URL, secret)
			err := c.Do(context.Background(), "POST", "/v1/hosts", map[string]string{"name": "a"}, nil)
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("Do() = %v (%T), want a *Problem", err, err)
			}
			if diff := cmp.Diff(p, tt.want); diff != "" {
				t.Errorf("problem (-got +want):\n%s", diff)
			}
			if got := err.Error(); got != tt.wantText {
				t.Errorf("Error() = %q, want %q", got, tt.wantText)
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	t.Parallel()
	var got struct {
		method, path, query, auth, ctype string
		body                             map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.query = r.Method, r.URL.Path, r.URL.RawQuery
		got.auth, got.ctype = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		_ = json.NewDecoder(r.Body).Decode(&got.body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		io.WriteString(w, `{"name":"docker-01","address":"10.10.10.101","segment":"rack1","subnet":"10.210.0.0/24","gateway":"10.210.0.1",
			"state":"pending","docker":{"bip":"10.210.0.1/24","ip-masq":false},"change":{"id":3,"status":"pending"},
			"created_by":"boot","created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T10:00:00Z"}`)
	}))
	defer srv.Close()
	c := New(srv.URL+"/", secret)
	h, created, err := c.RegisterHost(context.Background(), Registration{Name: "docker-01", Address: netip.MustParseAddr("10.10.10.101")})
	if err != nil {
		t.Fatal(err)
	}
	if got.method != "POST" || got.path != "/v1/hosts" || got.auth != "Bearer "+secret || got.ctype != "application/json" {
		t.Errorf("request = %+v", got)
	}
	if diff := cmp.Diff(got.body, map[string]any{"name": "docker-01", "address": "10.10.10.101"}); diff != "" {
		t.Errorf("body (-got +want):\n%s", diff)
	}
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	want := Host{Name: "docker-01", Address: netip.MustParseAddr("10.10.10.101"), Segment: "rack1", Subnet: netip.MustParsePrefix("10.210.0.0/24"),
		Gateway: netip.MustParseAddr("10.210.0.1"), State: "pending", Docker: Docker{Bip: netip.MustParsePrefix("10.210.0.1/24")},
		Change: &ChangeRef{ID: 3, Status: "pending"}, CreatedBy: "boot", CreatedAt: at, UpdatedAt: at}
	if diff := cmp.Diff(h, want, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("host (-got +want):\n%s", diff)
	}
	if !created {
		t.Error("created = false on a 201")
	}

	if _, err := c.Changes(context.Background(), ChangeFilter{Status: "pending", Host: "docker-01", Limit: 5, After: "x y"}); err != nil {
		t.Fatal(err)
	}
	if got.method != "GET" || got.path != "/v1/changes" || got.query != "after=x+y&host=docker-01&limit=5&status=pending" {
		t.Errorf("list request = %s %s?%s", got.method, got.path, got.query)
	}
	if _, err := c.HostWait(context.Background(), "docker-01", HostActive, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got.path != "/v1/hosts/docker-01" || got.query != "timeout=30s&wait=active" {
		t.Errorf("wait request = %s?%s", got.path, got.query)
	}
	// The server takes 1s to 5m.
	for wait, want := range map[time.Duration]string{200 * time.Millisecond: "1s", 90 * time.Second: "1m30s", time.Hour: "5m0s"} {
		if _, err := c.HostWait(context.Background(), "docker-01", HostRemoved, wait); err != nil {
			t.Fatal(err)
		}
		if got.query != "timeout="+want+"&wait=removed" {
			t.Errorf("HostWait(%v) query = %s, want timeout=%s", wait, got.query, want)
		}
	}
	if _, err := c.Approve(context.Background(), 12, "sha256:abc"); err != nil {
		t.Fatal(err)
	}
	if got.path != "/v1/changes/12/approve" || got.body["plan_hash"] != "sha256:abc" {
		t.Errorf("approve request = %s %v", got.path, got.body)
	}
}

func TestTransportErrorsHideTheToken(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused

	c := New("http://"+addr, secret)
	err = c.Do(context.Background(), "GET", "/v1/hosts", nil, nil)
	var te *TransportError
	if !errors.As(err, &te) {
		t.Fatalf("Do() = %v (%T), want a *TransportError", err, err)
	}
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), addr) {
		t.Errorf("Do() = %q, want it to say connection refused to %s", err, addr)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the token: %v", err)
	}
	// A very short token is not masked: that would garble the message.
	err = New("http://"+addr, "t").Do(context.Background(), "GET", "/v1/hosts", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Do() with token \"t\" = %v, want it to say connection refused", err)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := New(srv.URL, secret, WithTimeout(50*time.Millisecond))
	err := c.Do(context.Background(), "GET", "/v1/hosts", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do() = %v, want context.DeadlineExceeded", err)
	}
}

func TestBadAnswerIsATransportError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>not json</html>")
	}))
	defer srv.Close()
	var out Host
	err := New(srv.URL, secret).Do(context.Background(), "GET", "/v1/hosts/a", nil, &out)
	var te *TransportError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "decode answer (status 200)") {
		t.Errorf("Do() = %v, want a decode TransportError", err)
	}
}

func TestConstructionErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, server, token string
		opts                []Option
		want                string
	}{
		{"no server", "", secret, nil, "no server URL"},
		{"bad scheme", "ftp://x", secret, nil, "want http or https"},
		{"credentials in URL", "https://u:" + secret + "@x", secret, nil, "put credentials in the token"},
		{"token with newline", "http://x", "abc\r\nX-Evil: 1", nil, "token contains spaces or control characters"},
		{"CA file missing", "https://x", secret, []Option{WithCAFile(filepath.Join(dir, "nope.pem"))}, "no such file"},
		{"CA file not PEM", "https://x", secret, []Option{WithCAFile(notPEM)}, "no PEM certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := New(tt.server, tt.token, tt.opts...).Do(context.Background(), "GET", "/v1/hosts", nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Do() = %v, want an error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
}

func TestTLSWithCAFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"ok"}`)
	}))
	defer srv.Close()
	var out struct{ Status string }
	err := New(srv.URL, secret).Do(context.Background(), "GET", "/healthz", nil, &out)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: Do() = %v, want a certificate error", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pemOf(srv.Certificate().Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(srv.URL, secret, WithCAFile(ca)).Do(context.Background(), "GET", "/healthz", nil, &out); err != nil || out.Status != "ok" {
		t.Errorf("with the CA: Do() = %v, %+v", err, out)
	}
}

func TestStaleChange(t *testing.T) {
	t.Parallel()
	for _, extra := range []string{`{"id":9,"plan_hash":"h2"}`, `{"change":{"id":9,"plan_hash":"h2"}}`} {
		p := &Problem{Status: 409, Code: CodeConflict, Extra: json.RawMessage(extra)}
		ch, ok := p.StaleChange()
		if !ok || ch.ID != 9 || ch.PlanHash != "h2" {
			t.Errorf("StaleChange(%s) = %+v, %v", extra, ch, ok)
		}
	}
	if _, ok := (&Problem{Status: 409}).StaleChange(); ok {
		t.Error("StaleChange() without extra = true")
	}
}
func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// BenchmarkGetChange measures one authenticated GET of a change with ten ops over loopback
// HTTP/1.1 keep-alive, decoding included.
func BenchmarkGetChange(b *testing.B) {
	ch := Change{ID: 1, Kind: "add", Status: "pending", PlanHash: "sha256:x", Events: []Event{}}
	for i := range 10 {
		ch.Ops = append(ch.Ops, ChangeOp{Device: "sw1", Action: "add", Prefix: netip.MustParsePrefix("10.210.0.0/24"),
			NextHop: netip.MustParseAddr("10.10.10.101"), VRF: "default", Preview: "ip route 10.210.0.0/24 10.10.10.101", Status: "pending", Attempts: i})
	}
	body, _ := json.Marshal(ch)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer srv.Close()
	c := New(srv.URL, secret)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Change(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
}
