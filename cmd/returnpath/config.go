package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
	"github.com/returnpath/returnpath/internal/events"
	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/session"
	"github.com/returnpath/returnpath/internal/webui"
)

// Config is returnpath.yaml, typed. Keys not listed here are errors.
type Config struct {
	Listen       string          `mapstructure:"listen"`
	DatabaseURL  string          `mapstructure:"database_url"`
	LogLevel     string          `mapstructure:"log_level"`
	MaxBodyBytes int64           `mapstructure:"max_body_bytes"`
	TLS          TLSConfig       `mapstructure:"tls"`
	Pools        []PoolConfig    `mapstructure:"pools"`
	Segments     []SegmentConfig `mapstructure:"segments"`
	Devices      []DeviceConfig  `mapstructure:"devices"`
	Approval     ApprovalConfig  `mapstructure:"approval"`
	Apply        ApplyConfig     `mapstructure:"apply"`
	Drift        DriftConfig     `mapstructure:"drift"`
	Verify       VerifyConfig    `mapstructure:"verify"`
	Probes       ProbesConfig    `mapstructure:"probes"`
	Limits       LimitsConfig    `mapstructure:"limits"`
	Metrics      MetricsConfig   `mapstructure:"metrics"`
	Events       EventsConfig    `mapstructure:"events"`
	UI           UIConfig        `mapstructure:"ui"`
	Leases       LeasesConfig    `mapstructure:"leases"`
	// Server and Token are what the client commands (host, changes, verify) use to reach a
	// running service.
	Server string `mapstructure:"server"`
	Token  string `mapstructure:"token"`

	path     string  // the file read, "" when none was
	problems []error // keys of the file that could not be decoded: unknown, or of a wrong type
}

// TLSConfig turns on HTTPS when both files are set.
type TLSConfig struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// PoolConfig is one entry of pools.
type PoolConfig struct {
	Name         string `mapstructure:"name"`
	Prefix       string `mapstructure:"prefix"`
	SubnetLength int    `mapstructure:"subnet_length"`
}

// SegmentConfig is one entry of segments.
type SegmentConfig struct {
	Name     string      `mapstructure:"name"`
	Hosts    string      `mapstructure:"hosts"`
	Pool     string      `mapstructure:"pool"`
	Hosts6   string      `mapstructure:"hosts6"` // the hosts' IPv6 network (dual stack, or alone: an IPv6-only segment)
	Pool6    string      `mapstructure:"pool6"`  // the IPv6 pool of their fixed-cidr-v6 subnets
	RouteVia []HopConfig `mapstructure:"route_via"`
	// Probes overrides the global probes for this segment's hosts: targets when set, max_age
	// when not 0.
	Probes ProbesConfig `mapstructure:"probes"`
}

// ProbesConfig is probes, global or per segment: the targets a host's return-path probe goes
// to when `host probe` names none (ADDR for ICMP echo, ADDR:PORT for a TCP connection), and
// how old a host's last probe may be before `verify --probes` counts it as failing.
type ProbesConfig struct {
	Targets []string      `mapstructure:"targets"`
	MaxAge  time.Duration `mapstructure:"max_age"`
}

// HopConfig is one stage of a segment's return path: one device, or several in parallel.
type HopConfig struct {
	Device string `mapstructure:"device"`
	// Devices are applied in parallel, in one stage (a redundant pair); exclusive with Device.
	Devices []string      `mapstructure:"devices"`
	NextHop NextHopConfig `mapstructure:"next_hop"`
}

// NextHopConfig is a hop's next_hop: "host", one address (Plain), or a fixed address per
// family ({ipv4: ADDR, ipv6: ADDR}).
type NextHopConfig struct {
	Plain string `mapstructure:"-"`
	IPv4  string `mapstructure:"ipv4"`
	IPv6  string `mapstructure:"ipv6"`
}

// nextHopHook decodes the plain form of next_hop (a string) into a NextHopConfig; the map
// form decodes field by field.
func nextHopHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(NextHopConfig{}) {
		return data, nil
	}
	if s, ok := data.(string); ok {
		return NextHopConfig{Plain: s}, nil
	}
	return data, nil
}

// parseNextHop turns a next_hop into the domain's NextHop, reporting what does not parse
// under key; the domain checks the families against the segment's.
func parseNextHop(key string, n NextHopConfig, bad func(key, format string, args ...any)) fabric.NextHop {
	var out fabric.NextHop
	switch {
	case n.Plain == "host":
		out.Host = true
	case n.Plain != "":
		a, err := netip.ParseAddr(n.Plain)
		if err != nil {
			bad(key, "want \"host\", an IP address or {ipv4: ADDR, ipv6: ADDR}, got %q", n.Plain)
		}
		out.Addr = a
	case n.IPv4 == "" && n.IPv6 == "":
		bad(key, "want \"host\", an IP address or {ipv4: ADDR, ipv6: ADDR}")
	default:
		if n.IPv4 != "" {
			a, err := netip.ParseAddr(n.IPv4)
			if err != nil || !a.Is4() {
				bad(key, "ipv4: want an IPv4 address, got %q", n.IPv4)
			}
			out.Addr = a
		}
		if n.IPv6 != "" {
			a, err := netip.ParseAddr(n.IPv6)
			if err != nil || !a.Is6() || a.Is4In6() {
				bad(key, "ipv6: want an IPv6 address, got %q", n.IPv6)
			}
			out.Addr6 = a
		}
	}
	return out
}

// DeviceConfig is one entry of devices.
type DeviceConfig struct {
	Name           string        `mapstructure:"name"`
	Platform       string        `mapstructure:"platform"`
	Transport      string        `mapstructure:"transport"`
	Address        string        `mapstructure:"address"`
	VRF            string        `mapstructure:"vrf"`
	Username       string        `mapstructure:"username"`
	PasswordEnv    string        `mapstructure:"password_env"`
	PasswordFile   string        `mapstructure:"password_file"`
	PrivateKeyFile string        `mapstructure:"private_key_file"`
	KnownHosts     string        `mapstructure:"known_hosts"`
	HostKey        string        `mapstructure:"host_key"`
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	Timeout        time.Duration `mapstructure:"timeout"`
	MaxSessions    int           `mapstructure:"max_sessions"` // concurrent sessions across all processes (default 1)
	IdleTimeout    time.Duration `mapstructure:"idle_timeout"` // how long the session is kept open unused (default 5m)
	Linux          struct {
		Sudo  bool `mapstructure:"sudo"`
		Proto int  `mapstructure:"proto"`
	} `mapstructure:"linux"`
	GNMI struct {
		Insecure        bool   `mapstructure:"insecure"`
		SkipVerify      bool   `mapstructure:"skip_verify"`
		CAFile          string `mapstructure:"ca_file"`
		CertFile        string `mapstructure:"cert_file"`
		KeyFile         string `mapstructure:"key_file"`
		ServerName      string `mapstructure:"server_name"`
		Preset          string `mapstructure:"preset"`
		NetworkInstance string `mapstructure:"network_instance"`
		Protocol        string `mapstructure:"protocol"`
	} `mapstructure:"gnmi"`
	FortiOS struct {
		Device string `mapstructure:"device"`
	} `mapstructure:"fortios"`
	ASA struct {
		Interface string `mapstructure:"interface"`
	} `mapstructure:"asa"`
	Junos struct {
		Confirm time.Duration `mapstructure:"confirm"` // 0: commit at once
	} `mapstructure:"junos"`
	VyOS struct {
		Save bool `mapstructure:"save"`
	} `mapstructure:"vyos"`
	PANOS struct {
		VirtualRouter string `mapstructure:"virtual_router"`
		Interface     string `mapstructure:"interface"`
	} `mapstructure:"panos"`
}

// ApprovalConfig is the review policy.
type ApprovalConfig struct {
	FourEyes    bool              `mapstructure:"four_eyes"`
	AutoApprove []AutoApproveRule `mapstructure:"auto_approve"`
}

// ApplyConfig tunes the apply engine.
type ApplyConfig struct {
	Concurrency   int           `mapstructure:"concurrency"`
	RetryDeadline time.Duration `mapstructure:"retry_deadline"`
	BatchSize     int           `mapstructure:"batch_size"`
	GatherWindow  time.Duration `mapstructure:"gather_window"` // wait after a device's first ready op (default 10ms)
}

// DriftConfig is the periodic drift check.
type DriftConfig struct {
	Interval  time.Duration `mapstructure:"interval"`  // 0: off
	Remediate string        `mapstructure:"remediate"` // off | propose
}

// VerifyConfig tunes GET /v1/verify.
type VerifyConfig struct {
	// MaxAge is how old a device reading may be for verify to answer from it rather than
	// log in again (default 5s; admins may ask for ?fresh=true).
	MaxAge time.Duration `mapstructure:"max_age"`
}

// LimitsConfig bounds what one caller can make the service do.
type LimitsConfig struct {
	RegistrationsPerMinute int `mapstructure:"registrations_per_minute"` // per token; default 120; 0 turns it off
	PendingPerSegment      int `mapstructure:"pending_per_segment"`      // pending registrations per segment; 0 = no cap
	LongPollsPerToken      int `mapstructure:"long_polls_per_token"`     // concurrent ?wait= requests per token (default 10)
	LongPolls              int `mapstructure:"long_polls"`               // concurrent ?wait= requests in all (default 1000)
}

// LeasesConfig is leases: with a ttl, each host's registration or renewal holds for ttl, and
// an active host not renewed for ttl + grace is removed (on_expiry: remove) or proposed for
// removal (propose, the default). Without it nothing expires.
type LeasesConfig struct {
	TTL      time.Duration `mapstructure:"ttl"`
	Grace    time.Duration `mapstructure:"grace"`
	OnExpiry string        `mapstructure:"on_expiry"`
}

// LeasePolicy returns leases typed; the zero policy (leases off) when the key is absent.
func (c *Config) LeasePolicy() fabric.LeasePolicy {
	l := c.Leases
	if l == (LeasesConfig{}) {
		return fabric.LeasePolicy{}
	}
	p := fabric.LeasePolicy{TTL: l.TTL, Grace: l.Grace, OnExpiry: fabric.LeaseAction(l.OnExpiry)}
	if p.OnExpiry == "" {
		p.OnExpiry = fabric.LeasePropose
	}
	return p
}

// MetricsConfig says where /metrics is served.
type MetricsConfig struct {
	Listen       string `mapstructure:"listen"`        // a separate listener for /metrics; "" serves it on listen
	RequireToken bool   `mapstructure:"require_token"` // /metrics needs a bearer token (any role)
}

// AutoApproveRule approves changes of one action in the listed segments without review.
type AutoApproveRule struct {
	Action   string   `mapstructure:"action"`
	Segments []string `mapstructure:"segments"`
}

// defaultConfigPaths are tried in order when --config is not given.
var defaultConfigPaths = []string{"./returnpath.yaml", "/etc/returnpath/returnpath.yaml"}

// loadConfig reads defaults, then the file, then RETURNPATH_* variables, then flags.
// requireFile is false for client commands that can work from flags alone. A key of the file
// that is unknown or of the wrong type is an error (all such keys are listed).
func loadConfig(path string, flags *pflag.FlagSet, requireFile bool) (*Config, error) {
	c, err := readConfig(path, flags, requireFile)
	if err != nil {
		return nil, err
	}
	if err := configError(c.path, c.problems); err != nil {
		return nil, err
	}
	return c, nil
}

// readConfig is loadConfig, except that keys that cannot be decoded are kept in the Config
// (for Check to list with every other problem) rather than returned. The error is for a file
// that cannot be read at all.
func readConfig(path string, flags *pflag.FlagSet, requireFile bool) (*Config, error) {
	v := viper.New()
	v.SetDefault("listen", ":8080")
	v.SetDefault("database_url", "postgres:///returnpath?host=/run/postgresql")
	v.SetDefault("log_level", "info")
	v.SetDefault("max_body_bytes", 64<<10)
	v.SetDefault("tls.cert_file", "")
	v.SetDefault("tls.key_file", "")
	v.SetDefault("approval.four_eyes", true)
	v.SetDefault("verify.max_age", 5*time.Second)
	v.SetDefault("probes.max_age", fabric.DefaultProbeMaxAge)
	v.SetDefault("limits.registrations_per_minute", 120)
	v.SetDefault("limits.pending_per_segment", 0)
	v.SetDefault("limits.long_polls_per_token", 10)
	v.SetDefault("limits.long_polls", 1000)
	v.SetDefault("metrics.listen", "")
	v.SetDefault("metrics.require_token", false)
	v.SetDefault("events.retry_deadline", time.Hour)
	v.SetDefault("ui.base_url", "")
	v.SetDefault("ui.enabled", true)
	v.SetDefault("ui.session_ttl", webui.DefaultSessionTTL)
	v.SetDefault("server", "")
	v.SetDefault("token", "")
	v.SetEnvPrefix("RETURNPATH")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path == "" {
		for _, p := range defaultConfigPaths {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	} else if requireFile {
		return nil, fmt.Errorf("no configuration file: pass --config PATH or create %s", strings.Join(defaultConfigPaths, " or "))
	}
	if flags != nil {
		for flag, key := range map[string]string{"listen": "listen", "database-url": "database_url", "server": "server", "token": "token"} {
			if f := flags.Lookup(flag); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return nil, err
				}
			}
		}
	}
	c := Config{path: path}
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(nextHopHook, mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(","))
	})
	c.problems = decodeProblems(err)
	// Unknown keys are found by a walk of their own rather than by the decoder (ErrorUnused or
	// Metadata.Unused): mapstructure stops recording a struct's unused keys at its first value
	// of the wrong type, and each unknown key gets its own error with the nearest known key.
	for _, k := range unknownKeys(v.AllSettings(), reflect.TypeOf(c), "") {
		c.problems = append(c.problems, unknownKeyError(k))
	}
	return &c, nil
}

// Inventory validates the fabric part of the configuration and returns it typed. The error
// lists every problem found (a *ConfigError).
func (c *Config) Inventory() (*fabric.Inventory, []string, error) {
	inv, warnings, problems := c.inventory()
	if err := configError(c.path, problems); err != nil {
		return nil, nil, err
	}
	return inv, warnings, nil
}

// inventory parses and validates the fabric part, returning every problem. A value that does
// not parse is reported here and left out of the domain's checks, which would only report it
// again in other words.
func (c *Config) inventory() (*fabric.Inventory, []string, []error) {
	inv := &fabric.Inventory{}
	var problems []error
	parsed := map[string]bool{} // keys reported here
	bad := func(key, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
		parsed[key] = true
	}
	for i, p := range c.Pools {
		key := fmt.Sprintf("pools[%d]", i)
		prefix, err := netip.ParsePrefix(p.Prefix)
		if err != nil {
			bad(key+".prefix", "%q is not a network in CIDR notation", p.Prefix)
		}
		inv.Pools = append(inv.Pools, fabric.Pool{Name: p.Name, Prefix: prefix, SubnetLength: p.SubnetLength})
	}
	global := fabric.ProbeSettings{Targets: parseProbeTargets("probes", c.Probes.Targets, bad), MaxAge: c.Probes.MaxAge}
	for i, s := range c.Segments {
		key := fmt.Sprintf("segments[%d]", i)
		var hosts, hosts6 netip.Prefix
		var err error
		if s.Hosts != "" || s.Hosts6 == "" {
			if hosts, err = netip.ParsePrefix(s.Hosts); err != nil {
				bad(key+".hosts", "%q is not a network in CIDR notation", s.Hosts)
			}
		}
		if s.Hosts6 != "" {
			if hosts6, err = netip.ParsePrefix(s.Hosts6); err != nil {
				bad(key+".hosts6", "%q is not a network in CIDR notation", s.Hosts6)
			}
		}
		seg := fabric.Segment{Name: s.Name, Hosts: hosts, Pool: s.Pool, Hosts6: hosts6, Pool6: s.Pool6, Probes: global}
		if s.Probes.Targets != nil {
			seg.Probes.Targets = parseProbeTargets(key+".probes", s.Probes.Targets, bad)
		}
		if s.Probes.MaxAge != 0 {
			seg.Probes.MaxAge = s.Probes.MaxAge
		}
		for j, h := range s.RouteVia {
			hop := fabric.Hop{Device: h.Device, Devices: h.Devices}
			hop.NextHop = parseNextHop(fmt.Sprintf("%s.route_via[%d].next_hop", key, j), h.NextHop, bad)
			seg.RouteVia = append(seg.RouteVia, hop)
		}
		inv.Segments = append(inv.Segments, seg)
	}
	for i, d := range c.Devices {
		key := fmt.Sprintf("devices[%d]", i)
		ap, err := parseAddress(d.Address)
		if err != nil {
			bad(key+".address", "%v", err)
		}
		vrf := d.VRF
		if vrf == "" {
			vrf = fabric.DefaultVRF
		}
		transport := d.Transport
		if transport == "" {
			transport = string(fabric.Platforms[fabric.Platform(d.Platform)])
		}
		inv.Devices = append(inv.Devices, fabric.Device{Name: d.Name, Platform: fabric.Platform(d.Platform),
			Transport: fabric.Transport(transport), Address: ap, VRF: vrf})
	}
	warnings, err := inv.Validate()
	errs := flatten(err)
	for _, e := range inv.ValidateProbes("probes", global) {
		errs = append(errs, e)
	}
	for i, s := range c.Segments {
		// A segment's own keys only: what it inherits was checked as probes.
		own := fabric.ProbeSettings{MaxAge: inv.Segments[i].Probes.MaxAge}
		if s.Probes.Targets != nil {
			own.Targets = inv.Segments[i].Probes.Targets
		}
		for _, e := range inv.ValidateProbes(fmt.Sprintf("segments[%d].probes", i), own) {
			if s.Probes.MaxAge != 0 || !strings.HasSuffix(e.Field, ".max_age") {
				errs = append(errs, e)
			}
		}
	}
	for _, e := range errs {
		var fe *fabric.Error
		if errors.As(e, &fe) && parsed[fe.Field] {
			continue
		}
		problems = append(problems, e)
	}
	return inv, warnings, problems
}

// parseProbeTargets parses key.targets: "ADDR" (ICMP echo) or "ADDR:PORT" (TCP). A target
// that does not parse is reported through bad and kept as the zero value, so that the
// domain's checks name the others by their own index.
func parseProbeTargets(key string, targets []string, bad func(key, format string, args ...any)) []netip.AddrPort {
	out := []netip.AddrPort{}
	for j, t := range targets {
		ap, err := fabric.ParseProbeTarget(t)
		if err != nil {
			bad(fmt.Sprintf("%s.targets[%d]", key, j), "%v", err)
		}
		out = append(out, ap)
	}
	return out
}

// MaxSessions returns each device's session budget (devices[].max_sessions); devices that set
// none are left out and get session.DefaultMaxSessions.
func (c *Config) MaxSessions() map[string]int {
	out := map[string]int{}
	for _, d := range c.Devices {
		if d.MaxSessions > 0 {
			out[d.Name] = d.MaxSessions
		}
	}
	return out
}

// IdleTimeouts returns how long each device's session is kept open unused
// (devices[].idle_timeout, default session.DefaultIdleTimeout).
func (c *Config) IdleTimeouts() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, d := range c.Devices {
		out[d.Name] = cmp.Or(d.IdleTimeout, session.DefaultIdleTimeout)
	}
	return out
}

// parseAddress accepts "198.18.0.11", "198.18.0.11:22" and "[2001:db8::1]:57400".
func parseAddress(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want an IP address with an optional :port, got %q", s)
	}
	return netip.AddrPortFrom(a, 0), nil
}

// Validate checks the settings that are not the inventory. The error lists every problem
// found (a *ConfigError).
func (c *Config) Validate() error { return configError(c.path, c.validate()) }

func (c *Config) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level: want debug, info, warn or error, got %q", c.LogLevel)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls: set both cert_file and key_file, or neither")
	}
	if c.MaxBodyBytes < 1024 {
		bad("max_body_bytes: %d is too small (at least 1024)", c.MaxBodyBytes)
	}
	if _, err := c.Policy(); err != nil {
		errs = append(errs, flatten(err)...)
	}
	switch c.Drift.Remediate {
	case "", "off", "propose":
	default:
		bad("drift.remediate: want off or propose, got %q", c.Drift.Remediate)
	}
	if c.Drift.Interval < 0 || (c.Drift.Interval > 0 && c.Drift.Interval < 10*time.Second) {
		bad("drift.interval: want 0 (off) or at least 10s, got %s", c.Drift.Interval)
	}
	if c.Apply.Concurrency < 0 || c.Apply.RetryDeadline < 0 || c.Apply.BatchSize < 0 {
		bad("apply: concurrency, retry_deadline and batch_size must not be negative")
	}
	if c.Apply.GatherWindow < 0 || c.Apply.GatherWindow > time.Second {
		bad("apply.gather_window: want 0 (the default, 10ms) up to 1s, got %s", c.Apply.GatherWindow)
	}
	if c.Verify.MaxAge < 0 {
		bad("verify.max_age: must not be negative, got %s", c.Verify.MaxAge)
	}
	for _, l := range []struct {
		key string
		n   int
	}{{"limits.registrations_per_minute", c.Limits.RegistrationsPerMinute}, {"limits.pending_per_segment", c.Limits.PendingPerSegment}} {
		if l.n < 0 {
			bad("%s: want 0 (off) or a positive number, got %d", l.key, l.n)
		}
	}
	for _, l := range []struct {
		key string
		n   int
	}{{"limits.long_polls_per_token", c.Limits.LongPollsPerToken}, {"limits.long_polls", c.Limits.LongPolls}} {
		if l.n < 1 {
			bad("%s: want at least 1, got %d", l.key, l.n)
		}
	}
	errs = append(errs, c.eventProblems()...)
	if c.Leases != (LeasesConfig{}) {
		errs = append(errs, c.LeasePolicy().Validate()...)
	}
	errs = append(errs, c.uiProblems()...)
	if c.Metrics.Listen != "" && c.Metrics.Listen == c.Listen {
		bad("metrics.listen: %q is the API's own listen address; leave it empty to serve /metrics there", c.Metrics.Listen)
	}
	return errs
}

// Policy returns the approval policy; the error lists every rule at fault.
func (c *Config) Policy() (fabric.ApprovalPolicy, error) {
	p := fabric.ApprovalPolicy{FourEyes: c.Approval.FourEyes}
	var errs []error
	for i, r := range c.Approval.AutoApprove {
		var k fabric.ChangeKind
		switch r.Action {
		case "add":
			k = fabric.ChangeAdd
		case "remove", "delete":
			k = fabric.ChangeRemove
		case "remediate":
			k = fabric.ChangeRemediate
		default:
			errs = append(errs, fmt.Errorf("approval.auto_approve[%d].action: want add, remove or remediate, got %q", i, r.Action))
		}
		for j, seg := range r.Segments {
			if !slices.ContainsFunc(c.Segments, func(s SegmentConfig) bool { return s.Name == seg }) {
				errs = append(errs, fmt.Errorf("approval.auto_approve[%d].segments[%d]: no segment named %q", i, j, seg))
			}
		}
		p.AutoApprove = append(p.AutoApprove, fabric.AutoApproveRule{Kind: k, Segments: r.Segments})
	}
	return p, errors.Join(errs...)
}

// Checked is a configuration checked whole: the inventory and what was resolved from it.
type Checked struct {
	Inventory *fabric.Inventory
	Warnings  []string
	Drivers   map[string]drivers.Config
	Webhooks  []events.Webhook
	Policy    fabric.ApprovalPolicy
}

// Check validates the whole configuration and resolves its secrets and files, as serve needs
// them. The error lists every problem found (a *ConfigError): keys the file should not have,
// values of the wrong type, then the settings, the inventory, the devices and the webhooks.
func (c *Config) Check() (*Checked, error) {
	problems := slices.Clone(c.problems)
	problems = append(problems, c.validate()...)
	inv, warnings, invProblems := c.inventory()
	problems = append(problems, invProblems...)
	dcs, err := c.DriverConfigs(inv)
	problems = append(problems, flatten(err)...)
	hooks, err := c.resolveWebhooks()
	problems = append(problems, flatten(err)...)
	policy, _ := c.Policy() // its problems are validate's
	if err := configError(c.path, problems); err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(dcs)) {
		if g := dcs[name].GNMI; g.Insecure || g.SkipVerify {
			warnings = append(warnings, "gNMI TLS verification is off for device "+name)
		}
	}
	return &Checked{Inventory: inv, Warnings: warnings, Drivers: dcs, Webhooks: hooks, Policy: policy}, nil
}

// DriverConfigs resolves each device's credentials and settings for the drivers. Secrets are
// read here, once, and only their absence is reported (never their value). The error holds
// the first problem of every device at fault.
func (c *Config) DriverConfigs(inv *fabric.Inventory) (map[string]drivers.Config, error) {
	out := map[string]drivers.Config{}
	managed := inv.ManagedPrefixes()
	// One device's settings, up to its first problem; every device is checked.
	device := func(i int, d DeviceConfig) (*drivers.Config, error) {
		key := fmt.Sprintf("devices[%d]", i)
		dev, _ := inv.Device(d.Name)
		dc := drivers.Config{Name: d.Name, Platform: dev.Platform, Address: dev.Address, VRF: dev.VRF, Managed: managed,
			Username: d.Username, ConnectTimeout: d.ConnectTimeout, OpTimeout: d.Timeout}
		if dc.ConnectTimeout == 0 {
			dc.ConnectTimeout = 10 * time.Second
		}
		if dc.OpTimeout == 0 {
			dc.OpTimeout = 30 * time.Second
		}
		if d.Username == "" {
			return nil, fmt.Errorf("%s.username: is required", key)
		}
		set := 0
		if d.PasswordEnv != "" {
			set++
			pw, ok := os.LookupEnv(d.PasswordEnv)
			if !ok || pw == "" {
				return nil, fmt.Errorf("%s.password_env: environment variable %s is not set", key, d.PasswordEnv)
			}
			dc.Password = drivers.Secret(pw)
		}
		if d.PasswordFile != "" {
			set++
			b, err := os.ReadFile(d.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("%s.password_file: %w", key, pathError(err))
			}
			dc.Password = drivers.Secret(strings.TrimRight(string(b), "\r\n"))
		}
		if d.PrivateKeyFile != "" {
			set++
			b, err := os.ReadFile(d.PrivateKeyFile)
			if err != nil {
				return nil, fmt.Errorf("%s.private_key_file: %w", key, pathError(err))
			}
			dc.PrivateKey = drivers.Secret(b)
		}
		if set == 0 && !(dev.Transport == fabric.TransportGNMI && d.GNMI.CertFile != "") {
			return nil, fmt.Errorf("%s: set one of password_env, password_file or private_key_file", key)
		}
		if set > 1 {
			return nil, fmt.Errorf("%s: set only one of password_env, password_file or private_key_file", key)
		}
		if dev.Transport == fabric.TransportSSH {
			dc.SSH.KnownHosts = d.KnownHosts
			switch d.HostKey {
			case "", "strict":
				dc.SSH.HostKey = drivers.HostKeyStrict
				if d.KnownHosts == "" {
					return nil, fmt.Errorf("%s.known_hosts: is required with strict host key checking (or set host_key: accept-new explicitly)", key)
				}
			case "accept-new":
				dc.SSH.HostKey = drivers.HostKeyAcceptNew
				if d.KnownHosts == "" {
					return nil, fmt.Errorf("%s.known_hosts: is required to record accepted keys", key)
				}
			default:
				return nil, fmt.Errorf("%s.host_key: want strict or accept-new, got %q", key, d.HostKey)
			}
		}
		if d.MaxSessions < 0 || d.MaxSessions > 64 {
			return nil, fmt.Errorf("%s.max_sessions: want 1 to 64 concurrent sessions (0: the default, 1), got %d", key, d.MaxSessions)
		}
		if d.IdleTimeout != 0 && (d.IdleTimeout < time.Second || d.IdleTimeout > 24*time.Hour) {
			return nil, fmt.Errorf("%s.idle_timeout: want 1s to 24h (0: the default, %s), got %s", key, session.DefaultIdleTimeout, d.IdleTimeout)
		}
		dc.Linux.Sudo, dc.Linux.Proto = d.Linux.Sudo, d.Linux.Proto
		if dc.Linux.Proto == 0 {
			dc.Linux.Proto = 202
		}
		if dc.Linux.Proto < 1 || dc.Linux.Proto > 255 {
			return nil, fmt.Errorf("%s.linux.proto: want a route protocol number from 1 to 255, got %d", key, dc.Linux.Proto)
		}
		g := d.GNMI
		dc.GNMI = drivers.GNMIConfig{Insecure: g.Insecure, SkipVerify: g.SkipVerify, CAFile: g.CAFile, CertFile: g.CertFile, KeyFile: g.KeyFile,
			ServerName: g.ServerName, Preset: g.Preset, NetworkInstance: g.NetworkInstance, Protocol: g.Protocol}
		dc.FortiOS.Device, dc.ASA.Interface = d.FortiOS.Device, d.ASA.Interface
		dc.Junos.Confirm = d.Junos.Confirm
		dc.VyOS.Save = d.VyOS.Save
		dc.PANOS = drivers.PANOSConfig{VirtualRouter: d.PANOS.VirtualRouter, Interface: d.PANOS.Interface}
		if dc.PANOS.VirtualRouter == "" {
			dc.PANOS.VirtualRouter = "default"
		}
		if f, ok := Factories()[dc.Platform]; ok && f.Check != nil {
			if err := f.Check(dc); err != nil {
				var fe *route.FieldError
				if errors.As(err, &fe) {
					return nil, fmt.Errorf("%s.%s: %s", key, fe.Field, fe.Message)
				}
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		}
		return &dc, nil
	}
	var errs []error
	for i, d := range c.Devices {
		dc, err := device(i, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[d.Name] = *dc
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", filepath.Clean(pe.Path), pe.Err)
	}
	return err
}
