package main

import (
	"strings"
	"testing"
	"time"
)

func TestUIConfigProblems(t *testing.T) {
	ok := func() UIConfig { return UIConfig{Enabled: true, SessionTTL: 8 * time.Hour} }
	proxy := func(p TrustedProxyConfig) UIConfig { c := ok(); c.TrustedProxy = p; return c }
	for _, tc := range []struct {
		name string
		ui   UIConfig
		want string // the key the first error names; "" for none
	}{
		{name: "defaults", ui: ok()},
		{name: "ttl too short", ui: UIConfig{SessionTTL: time.Second}, want: "ui.session_ttl"},
		{name: "ttl too long", ui: UIConfig{SessionTTL: 1000 * time.Hour}, want: "ui.session_ttl"},
		{name: "proxy", ui: proxy(TrustedProxyConfig{Header: "X-Forwarded-Email", From: []string{"10.0.0.0/8", "192.0.2.7"}, DefaultRole: "viewer",
			RoleMap: []ProxyUserRole{{User: "alice@example.org", Role: "reviewer"}}})},
		{name: "proxy keys without header", ui: proxy(TrustedProxyConfig{From: []string{"10.0.0.0/8"}}), want: "ui.trusted_proxy.header"},
		{name: "bad header", ui: proxy(TrustedProxyConfig{Header: "X Email", From: []string{"10.0.0.0/8"}}), want: "ui.trusted_proxy.header"},
		{name: "cookie header", ui: proxy(TrustedProxyConfig{Header: "Cookie", From: []string{"10.0.0.0/8"}}), want: "ui.trusted_proxy.header"},
		{name: "no from", ui: proxy(TrustedProxyConfig{Header: "X-Forwarded-Email"}), want: "ui.trusted_proxy.from"},
		{name: "bad from", ui: proxy(TrustedProxyConfig{Header: "X-Forwarded-Email", From: []string{"10.0.0.0/33"}}), want: "ui.trusted_proxy.from[0]"},
		{name: "bad default role", ui: proxy(TrustedProxyConfig{Header: "X-Forwarded-Email", From: []string{"::1"}, DefaultRole: "root"}), want: "ui.trusted_proxy.default_role"},
		{name: "bad role", ui: proxy(TrustedProxyConfig{Header: "X-Forwarded-Email", From: []string{"::1"},
			RoleMap: []ProxyUserRole{{User: "a@example.org", Role: "boss"}}}), want: "ui.trusted_proxy.role_map[0].role"},
		{name: "user twice", ui: proxy(TrustedProxyConfig{Header: "X-Forwarded-Email", From: []string{"::1"},
			RoleMap: []ProxyUserRole{{User: "a@example.org", Role: "viewer"}, {User: "a@example.org", Role: "admin"}}}), want: "ui.trusted_proxy.role_map[1].user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{UI: tc.ui}
			errs := c.uiProblems()
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("uiProblems() = %v, want none", errs)
			case tc.want != "" && (len(errs) == 0 || !strings.HasPrefix(errs[0].Error(), tc.want+":")):
				t.Errorf("uiProblems() = %v, want an error naming %s", errs, tc.want)
			}
		})
	}
}

// TestUIConfigToDesk: the checked keys reach the desk; TLS or an https base_url make the
// cookie Secure.
func TestUIConfigToDesk(t *testing.T) {
	c := &Config{UI: UIConfig{SessionTTL: time.Hour, BaseURL: "https://rp.example/ui", TrustedProxy: TrustedProxyConfig{Header: "X-Forwarded-Email",
		From: []string{"192.0.2.7"}, RoleMap: []ProxyUserRole{{User: "a@example.org", Role: "reviewer"}}}}}
	got := c.uiConfig()
	if got.SessionTTL != time.Hour || !got.Secure || got.Proxy == nil || got.Proxy.From[0].String() != "192.0.2.7/32" ||
		got.Proxy.RoleMap["a@example.org"] != "reviewer" {
		t.Errorf("uiConfig() = %+v", got)
	}
	if (&Config{UI: UIConfig{SessionTTL: time.Hour}}).uiConfig().Secure {
		t.Errorf("plain HTTP without an https base_url: Secure cookie")
	}
}
