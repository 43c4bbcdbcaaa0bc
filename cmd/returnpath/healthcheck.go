package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func newHealthcheckCmd() *cobra.Command {
	var rawURL string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck [--listen ADDR | --url URL]",
		Short: "Exit 0 if the server on this machine answers GET /healthz, else 1 (for a container's HEALTHCHECK)",
		Long: `Asks the server for GET /healthz and exits 0 if it answers 200 with status ok, 1 otherwise
(Docker's HEALTHCHECK convention). The images have no curl: this is their probe.

The address is the configuration's listen (--config, RETURNPATH_LISTEN or --listen); an
unspecified host (":8080", "0.0.0.0:8080", "[::]:8080") is reached on 127.0.0.1. With tls:
configured it speaks HTTPS and accepts only the certificate in tls.cert_file, whatever names
it holds. --url overrides all of that.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hc := healthProbe{url: rawURL, timeout: timeout}
			if hc.url == "" {
				cfg, err := loadConfig(configFlag(cmd), cmd.Flags(), false)
				if err != nil {
					return exitCode{1, err}
				}
				https := cfg.TLS.CertFile != "" && cfg.TLS.KeyFile != ""
				if hc.url, err = healthURL(cfg.Listen, https); err != nil {
					return exitCode{1, err}
				}
				if https {
					if hc.pin, err = firstCertificate(cfg.TLS.CertFile); err != nil {
						return exitCode{1, err}
					}
				}
			}
			version, err := hc.check(cmd.Context())
			if err != nil {
				return exitCode{1, err}
			}
			tprintf(cmd.OutOrStdout(), "healthy: %s answers, version %s\n", hc.url, version)
			return nil
		},
	}
	f := cmd.Flags()
	f.String("listen", "", "the server's listen address (default: listen from the configuration, :8080)")
	f.StringVar(&rawURL, "url", "", "the full URL to GET instead, e.g. https://returnpath.example:8080/healthz (system CA roots)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// healthURL turns a listen address into the URL of /healthz on this machine.
func healthURL(listen string, https bool) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen: %q is not host:port: %w", listen, err)
	}
	if a, err := netip.ParseAddr(host); host == "" || err == nil && a.IsUnspecified() {
		// Go listens on [::] dual-stack, so 127.0.0.1 reaches every unspecified listener.
		host = "127.0.0.1"
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: "/healthz"}).String(), nil
}

// firstCertificate returns the DER of the first certificate in a PEM file: the server's own.
func firstCertificate(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w", pathError(err))
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("tls.cert_file %s: no certificate in it", path)
		}
		if blk.Type == "CERTIFICATE" {
			return blk.Bytes, nil
		}
	}
}

// healthProbe is one GET /healthz.
type healthProbe struct {
	url     string
	timeout time.Duration
	// pin, when set, is the only certificate the server may present. The probe dials an
	// address (127.0.0.1) that the certificate's names usually do not cover, so the usual
	// name check would fail on a healthy server; comparing with the configured certificate
	// still proves that the answer comes from this server.
	pin []byte
}

// check returns the version the server reports, or why it is not healthy.
func (p healthProbe) check(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a probe of this machine never goes through HTTPS_PROXY
	if p.pin != nil {
		tr.TLSClientConfig = &tls.Config{
			InsecureSkipVerify: true, // replaced by VerifyPeerCertificate: see pin
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], p.pin) {
					return errors.New("the server's certificate is not the one in tls.cert_file")
				}
				return nil
			},
		}
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return "", fmt.Errorf("--url: %w", err)
	}
	req.Header.Set("User-Agent", "returnpath-healthcheck")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var h struct {
		Status  string `json:"status"`
		Version string `json:"version"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", p.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", p.url, resp.Status)
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Status != "ok" {
		return "", fmt.Errorf("GET %s: 200 but not {\"status\":\"ok\"}", p.url)
	}
	return h.Version, nil
}
