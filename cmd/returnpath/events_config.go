package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/internal/events"
	"github.com/returnpath/returnpath/internal/fabric"
)

// EventsConfig is the events block: outgoing webhooks.
type EventsConfig struct {
	Webhooks      []WebhookConfig `mapstructure:"webhooks"`
	RetryDeadline time.Duration   `mapstructure:"retry_deadline"` // default 1h
}

// WebhookConfig is one entry of events.webhooks.
type WebhookConfig struct {
	Name      string   `mapstructure:"name"`
	URL       string   `mapstructure:"url"`
	Events    []string `mapstructure:"events"`
	SecretEnv string   `mapstructure:"secret_env"` // the variable holding the HMAC secret
	Format    string   `mapstructure:"format"`     // json (default) | slack
	Segments  []string `mapstructure:"segments"`   // empty: every segment, and events of no host
	Insecure  bool     `mapstructure:"insecure"`   // allow http://
	CAFile    string   `mapstructure:"ca_file"`    // PEM roots for the receiver's certificate
}

// UIConfig is the web desk.
type UIConfig struct {
	BaseURL string `mapstructure:"base_url"` // webhook bodies link to /changes/{id} under it
	// Enabled serves the review desk at /ui/ (default true); see ui_config.go for the rest.
	Enabled      bool               `mapstructure:"enabled"`
	SessionTTL   time.Duration      `mapstructure:"session_ttl"`
	TrustedProxy TrustedProxyConfig `mapstructure:"trusted_proxy"`
}

var webhookNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// eventProblems checks the events and ui blocks, returning every problem (the first of each
// webhook). It reads no secret and no file: resolveWebhooks does. Errors never quote a
// webhook's URL, whose path may be a credential (Slack's are).
func (c *Config) eventProblems() []error {
	var errs []error
	if c.UI.BaseURL != "" {
		u, err := url.Parse(c.UI.BaseURL)
		if err != nil || !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("ui.base_url: want an absolute http or https URL, got %q", c.UI.BaseURL))
		}
	}
	if c.Events.RetryDeadline <= 0 {
		errs = append(errs, fmt.Errorf("events.retry_deadline: want a positive duration, got %s", c.Events.RetryDeadline))
	}
	seen := map[string]bool{}
	for i, w := range c.Events.Webhooks {
		if err := c.webhookProblem(i, w, seen); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// webhookProblem returns the first problem of events.webhooks[i]; seen holds the names before it.
func (c *Config) webhookProblem(i int, w WebhookConfig, seen map[string]bool) error {
	key := fmt.Sprintf("events.webhooks[%d]", i)
	if !webhookNameRE.MatchString(w.Name) {
		return fmt.Errorf("%s.name: want 1 to 64 letters, digits, '.', '_' or '-', got %q", key, w.Name)
	}
	if seen[w.Name] {
		return fmt.Errorf("%s.name: %q is the name of an earlier webhook", key, w.Name)
	}
	seen[w.Name] = true
	u, err := url.Parse(w.URL)
	switch {
	case w.URL == "":
		return fmt.Errorf("%s.url: is required", key)
	case err != nil || !u.IsAbs() || u.Host == "":
		return fmt.Errorf("%s.url: want an absolute https URL", key)
	case u.Scheme == "http" && !w.Insecure:
		return fmt.Errorf("%s.url: want https (the events describe the network); set insecure: true to allow http", key)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s.url: want an https URL, got scheme %q", key, u.Scheme)
	}
	if len(w.Events) == 0 {
		return fmt.Errorf("%s.events: name at least one event (%s)", key, eventList())
	}
	for j, e := range w.Events {
		if fabric.EventKind(e).Validate() != nil {
			return fmt.Errorf("%s.events[%d]: want one of %s, got %q", key, j, eventList(), e)
		}
	}
	switch events.Format(w.Format) {
	case "", events.FormatJSON:
		if w.SecretEnv == "" {
			return fmt.Errorf("%s.secret_env: is required: receivers verify the signature with the secret", key)
		}
	case events.FormatSlack:
	default:
		return fmt.Errorf("%s.format: want json or slack, got %q", key, w.Format)
	}
	for j, seg := range w.Segments {
		if !slices.ContainsFunc(c.Segments, func(s SegmentConfig) bool { return s.Name == seg }) {
			return fmt.Errorf("%s.segments[%d]: no segment named %q", key, j, seg)
		}
	}
	return nil
}

func eventList() string {
	s := ""
	for i, k := range fabric.EventKinds {
		if i > 0 {
			s += ", "
		}
		s += string(k)
	}
	return s
}

// Webhooks resolves events.webhooks: each secret read from its environment variable (only its
// absence is ever reported, never its value) and each ca_file loaded.
func (c *Config) Webhooks() ([]events.Webhook, error) {
	if err := configError(c.path, c.eventProblems()); err != nil {
		return nil, err
	}
	return c.resolveWebhooks()
}

// resolveWebhooks is Webhooks for a configuration whose events block is valid; the error holds
// the problem of every webhook at fault.
func (c *Config) resolveWebhooks() ([]events.Webhook, error) {
	var errs []error
	out := make([]events.Webhook, 0, len(c.Events.Webhooks))
	for i, w := range c.Events.Webhooks {
		key := fmt.Sprintf("events.webhooks[%d]", i)
		hook := events.Webhook{Name: w.Name, URL: w.URL, Format: events.Format(w.Format),
			Subscription: fabric.Subscription{Segments: w.Segments}}
		if hook.Format == "" {
			hook.Format = events.FormatJSON
		}
		for _, e := range w.Events {
			hook.Subscription.Events = append(hook.Subscription.Events, fabric.EventKind(e))
		}
		if w.SecretEnv != "" {
			v, ok := os.LookupEnv(w.SecretEnv)
			if !ok || v == "" {
				errs = append(errs, fmt.Errorf("%s.secret_env: environment variable %s is not set", key, w.SecretEnv))
				continue
			}
			hook.Secret = drivers.Secret(v)
		}
		if w.CAFile != "" {
			b, err := os.ReadFile(w.CAFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.ca_file: %w", key, pathError(err)))
				continue
			}
			hook.RootCAs = x509.NewCertPool()
			if !hook.RootCAs.AppendCertsFromPEM(b) {
				errs = append(errs, fmt.Errorf("%s.ca_file: %s holds no PEM certificate", key, w.CAFile))
				continue
			}
		}
		out = append(out, hook)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// webhook returns the resolved webhook called name.
func (c *Config) webhook(name string) (events.Webhook, error) {
	hooks, err := c.Webhooks()
	if err != nil {
		return events.Webhook{}, err
	}
	for _, h := range hooks {
		if h.Name == name {
			return h, nil
		}
	}
	return events.Webhook{}, errors.New("events.webhooks: no webhook named " + fmt.Sprintf("%q", name))
}
