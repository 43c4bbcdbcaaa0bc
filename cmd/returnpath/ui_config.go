package main

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/webui"
)

// TrustedProxyConfig is ui.trusted_proxy: an authenticating proxy (single sign-on) in front
// of the desk names the user in Header; requests from anywhere but From ignore the header.
// RoleMap is a list, not a map keyed by user: the configuration reader splits keys at dots
// and lowercases them, which would mangle e-mail addresses.
type TrustedProxyConfig struct {
	Header      string          `mapstructure:"header"`
	From        []string        `mapstructure:"from"`
	DefaultRole string          `mapstructure:"default_role"`
	RoleMap     []ProxyUserRole `mapstructure:"role_map"`
}

// ProxyUserRole is one entry of ui.trusted_proxy.role_map.
type ProxyUserRole struct {
	User string `mapstructure:"user"`
	Role string `mapstructure:"role"`
}

var headerNameRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// uiProblems checks the ui block's desk settings, naming each key at fault.
func (c *Config) uiProblems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.UI.SessionTTL < time.Minute || c.UI.SessionTTL > 30*24*time.Hour {
		bad("ui.session_ttl: want between 1m and 720h, got %s", c.UI.SessionTTL)
	}
	p := c.UI.TrustedProxy
	if p.Header == "" {
		if len(p.From) > 0 || len(p.RoleMap) > 0 || p.DefaultRole != "" {
			bad("ui.trusted_proxy.header: is required when the proxy's other keys are set (e.g. X-Forwarded-Email)")
		}
		return errs
	}
	switch h := strings.ToLower(p.Header); {
	case !headerNameRE.MatchString(p.Header):
		bad("ui.trusted_proxy.header: want a header name (letters, digits, '-'), got %q", p.Header)
	case h == "authorization" || h == "cookie" || h == "host":
		bad("ui.trusted_proxy.header: %q cannot carry the user's name", p.Header)
	}
	if len(p.From) == 0 {
		bad("ui.trusted_proxy.from: name the proxy's addresses (CIDRs): without them anyone could set %s", p.Header)
	}
	for i, f := range p.From {
		if _, err := parseCIDROrAddr(f); err != nil {
			bad("ui.trusted_proxy.from[%d]: want a CIDR or an address, got %q", i, f)
		}
	}
	if p.DefaultRole != "" {
		if err := fabric.Role(p.DefaultRole).Validate(); err != nil {
			bad("ui.trusted_proxy.default_role: unknown role %q (want viewer, bootstrap, reviewer or admin)", p.DefaultRole)
		}
	}
	seen := map[string]bool{}
	for i, e := range p.RoleMap {
		key := fmt.Sprintf("ui.trusted_proxy.role_map[%d]", i)
		switch {
		case strings.TrimSpace(e.User) == "" || e.User != strings.TrimSpace(e.User):
			bad("%s.user: want the user's name as the proxy sends it, got %q", key, e.User)
		case seen[e.User]:
			bad("%s.user: %q is mapped twice", key, e.User)
		}
		seen[e.User] = true
		if err := fabric.Role(e.Role).Validate(); err != nil {
			bad("%s.role: unknown role %q (want viewer, bootstrap, reviewer or admin)", key, e.Role)
		}
	}
	return errs
}

func parseCIDROrAddr(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// uiConfig turns the checked ui block into the desk's settings.
func (c *Config) uiConfig() webui.Config {
	cfg := webui.Config{SessionTTL: c.UI.SessionTTL, Secure: c.TLS.CertFile != "" || strings.HasPrefix(c.UI.BaseURL, "https://")}
	if p := c.UI.TrustedProxy; p.Header != "" {
		tp := &webui.TrustedProxy{Header: p.Header, DefaultRole: fabric.Role(p.DefaultRole), RoleMap: map[string]fabric.Role{}}
		for _, f := range p.From {
			if pfx, err := parseCIDROrAddr(f); err == nil {
				tp.From = append(tp.From, pfx)
			}
		}
		for _, e := range p.RoleMap {
			tp.RoleMap[e.User] = fabric.Role(e.Role)
		}
		cfg.Proxy = tp
	}
	return cfg
}
