package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/buildinfo"
)

func TestHealthURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		listen string
		https  bool
		want   string
	}{
		{name: "port only", listen: ":8080", want: "http://127.0.0.1:8080/healthz"},
		{name: "IPv4 any", listen: "0.0.0.0:8080", want: "http://127.0.0.1:8080/healthz"},
		{name: "IPv6 any", listen: "[::]:8080", want: "http://127.0.0.1:8080/healthz"},
		{name: "a given address", listen: "10.0.0.5:9000", https: true, want: "https://10.0.0.5:9000/healthz"},
		{name: "IPv6 address", listen: "[2001:db8::1]:8443", https: true, want: "https://[2001:db8::1]:8443/healthz"},
		{name: "a name", listen: "returnpath.internal:8080", want: "http://returnpath.internal:8080/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := healthURL(tt.listen, tt.https)
			if err != nil || got != tt.want {
				t.Errorf("healthURL(%q, %v) = %q, %v; want %q", tt.listen, tt.https, got, err, tt.want)
			}
		})
	}
	if _, err := healthURL("8080", false); err == nil {
		t.Error(`healthURL("8080") succeeded; want an error naming listen`)
	} else if !strings.Contains(err.Error(), "listen") {
		t.Errorf(`healthURL("8080") = %v; want an error naming listen`, err)
	}
}

// TestHealthcheck probes a real server started as `returnpath serve` starts it, then a port
// nobody listens on and a server that is not healthy.
func TestHealthcheck(t *testing.T) {
	m, _, cfgPath := startMain(t, testConfig)
	out, err := run(t, "healthcheck", "--config", cfgPath, "--listen", m.Addr())
	if err != nil || !strings.Contains(out, "version "+buildinfo.Read().Version) {
		t.Errorf("healthcheck of a running server = %v\n%s", err, out)
	}
	// RETURNPATH_LISTEN is how a container tells the probe a listen address other than :8080.
	t.Setenv("RETURNPATH_LISTEN", m.Addr())
	if out, err := run(t, "healthcheck", "--config", cfgPath); err != nil {
		t.Errorf("healthcheck with RETURNPATH_LISTEN = %v\n%s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, err = run(t, "healthcheck", "--config", cfgPath, "--listen", closed)
	wantExit(t, err, 1, "connection refused")

	for _, tt := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{name: "503", status: http.StatusServiceUnavailable, body: `{"status":"ok"}`, want: "503"},
		{name: "not ok", status: http.StatusOK, body: `{"status":"starting"}`, want: `not {"status":"ok"}`},
		{name: "not JSON", status: http.StatusOK, body: `ok`, want: `not {"status":"ok"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			_, err := run(t, "healthcheck", "--url", srv.URL+"/healthz")
			wantExit(t, err, 1, tt.want)
		})
	}
}

// TestHealthcheckHTTPS: with tls: configured, the probe reaches 127.0.0.1 and accepts the
// configured certificate, and only that one.
func TestHealthcheckHTTPS(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	m, _, cfgPath := startMain(t, strings.Replace(testConfig, `listen: "127.0.0.1:0"`, `listen: "0.0.0.0:0"`, 1)+
		"tls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\n")
	_, port, _ := net.SplitHostPort(m.Addr())
	if out, err := run(t, "healthcheck", "--config", cfgPath, "--listen", ":"+port); err != nil || !strings.Contains(out, "https://127.0.0.1:"+port) {
		t.Errorf("healthcheck over HTTPS = %v\n%s", err, out)
	}

	otherCert, otherKey, _ := selfSigned(t)
	other := writeConfig(t, "listen: \":"+port+"\"\ntls:\n  cert_file: "+otherCert+"\n  key_file: "+otherKey+"\n")
	_, err := run(t, "healthcheck", "--config", other)
	wantExit(t, err, 1, "not the one in tls.cert_file")
}
