package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their paths and a pool
// that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "returnpath test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startMain starts Main on cfgText (with %DB% replaced by a fresh database) exactly as
// `returnpath serve` does, and returns it, its logs and the configuration file's path.
func startMain(t *testing.T, cfgText string) (*Main, *syncBuffer, string) {
	t.Helper()
	if os.Getenv("RETURNPATH_TEST_SW1_PASSWORD") == "" {
		t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	}
	path := writeConfig(t, strings.ReplaceAll(cfgText, "%DB%", pgtest.URL(t)))
	cfg, err := loadConfig(path, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	m := &Main{Config: cfg, Log: slog.New(slog.NewJSONHandler(logs, nil)), Migrate: true}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return m, logs, path
}

// syncBuffer is a log sink the service's goroutines write to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeHTTPS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	m, logs, _ := startMain(t, testConfig+"tls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\n")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + m.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("GET /healthz over HTTPS = %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	// No API in clear text on the TLS port (Go answers plain HTTP there with a 400).
	if resp, err := http.Get("http://" + m.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served /healthz on the TLS port")
		}
	}
	if strings.Contains(logs.String(), "plain HTTP") {
		t.Errorf("a warning about plain HTTP although TLS is on:\n%s", logs)
	}
}

func TestPlainHTTPOnNonLoopbackWarns(t *testing.T) {
	_, logs, _ := startMain(t, strings.Replace(testConfig, `listen: "127.0.0.1:0"`, `listen: "0.0.0.0:0"`, 1))
	if !strings.Contains(logs.String(), "serving plain HTTP on a non-loopback address") {
		t.Errorf("no warning for plain HTTP on 0.0.0.0:\n%s", logs)
	}
	_, logs, _ = startMain(t, testConfig)
	if strings.Contains(logs.String(), "serving plain HTTP on a non-loopback address") {
		t.Errorf("a warning for plain HTTP on loopback:\n%s", logs)
	}
}
