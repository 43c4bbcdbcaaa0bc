// Package drivers defines the contract between returnpath and the devices on a return path:
// read the static routes returnpath manages, apply a batch of route ops, render a native
// preview, close. Transport packages (drivers/ssh, drivers/gnmi) implement it; their
// libraries' types never leak out of them.
package drivers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/returnpath/returnpath/drivers/route"
)

// Driver is an open session to one device.
//
// Implementations only ever read, add or delete routes inside Config.Managed; a route outside
// those prefixes is invisible to them and never touched.
type Driver interface {
	// Routes returns the device's static routes whose prefixes lie inside the managed
	// prefixes, in all VRFs the device has, as the device's configuration (intent) holds them.
	Routes(ctx context.Context) ([]route.Route, error)
	// Apply pushes ops to the device as one batch, in the given order. A nil error means
	// every op was accepted. Otherwise the error is an *Error whose Kind says what the
	// caller may do next; for KindRejected, Rejections lists the refused ops with the
	// device's own text, and every op not listed was accepted.
	Apply(ctx context.Context, ops []route.RouteOp) error
	// Close ends the session. It is safe to call more than once.
	Close() error
}

// InstalledReader is implemented by drivers that can tell configured routes from routes the
// device has installed in its forwarding table (FRR installs asynchronously).
type InstalledReader interface {
	InstalledRoutes(ctx context.Context) ([]route.Route, error)
}

// Versioner is implemented by drivers that can report the platform's version in one line
// (`returnpath device check` prints it). Version only reads; it never changes the device.
type Versioner interface {
	Version(ctx context.Context) (string, error)
}

// Pinger is implemented by drivers whose session can be probed cheaply (a prompt round trip,
// a gNMI Capabilities request). A kept-open session that sat idle is pinged before it is used
// again: a nil error means it still answers; any error means it is to be closed and a new one
// opened. Ping never changes the device.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Reusable is implemented by drivers that can say whether their session may be used again
// after an operation failed with err. Without it, a session is reused only after success.
// Whatever a driver says, a session is never reused after KindUnreachable or
// KindIndeterminate: its state is unknown, and the engine reads the device again on a new
// session before deciding anything.
type Reusable interface {
	ReusableAfter(err error) bool
}

// Factory opens sessions to and renders previews for one platform.
type Factory struct {
	// Open connects to the device described by cfg.
	Open func(ctx context.Context, cfg Config) (Driver, error)
	// Preview renders ops in the device's native syntax, one entry per line or element, in
	// the order they would be sent. It is pure: no device is contacted.
	Preview func(cfg Config, ops []route.RouteOp) ([]string, error)
	// Check, when set, validates the platform's own settings in cfg (e.g. a firewall's
	// egress interface) when the service starts. Its error names the key at fault relative
	// to the device entry, as a *route.FieldError ("panos.virtual_router").
	Check func(cfg Config) error
}

// HostKeyPolicy says how SSH drivers treat the device's host key.
type HostKeyPolicy string

// Host key policies.
const (
	HostKeyStrict    HostKeyPolicy = "strict"     // must be in KnownHosts (the default)
	HostKeyAcceptNew HostKeyPolicy = "accept-new" // unknown keys are added to KnownHosts; changed keys still fail
)

// Secret holds a credential. It prints as "REDACTED" so that it cannot leak into logs or errors.
type Secret string

func (Secret) String() string               { return "REDACTED" }
func (Secret) GoString() string             { return "REDACTED" }
func (Secret) MarshalText() ([]byte, error) { return []byte("REDACTED"), nil }

// Reveal returns the secret's value, for handing to a transport library only.
func (s Secret) Reveal() string { return string(s) }

// Config describes one device and how to reach it. cmd/returnpath builds it from the
// configuration file; drivers receive plain, validated values.
type Config struct {
	Name       string
	Platform   route.Platform
	Address    netip.AddrPort // management address; port 0 means the transport's default
	VRF        string         // default VRF for ops that name none
	Managed    []netip.Prefix // the pools: the only prefixes the driver may read or change
	Username   string
	Password   Secret
	PrivateKey Secret // PEM; SSH only

	ConnectTimeout time.Duration // default 10s
	OpTimeout      time.Duration // default 30s

	SSH   SSHConfig
	Linux LinuxConfig
	GNMI  GNMIConfig

	FortiOS FortiOSConfig
	ASA     ASAConfig
	Junos   JunosConfig
	VyOS    VyOSConfig
	PANOS   PANOSConfig
}

// SSHConfig holds SSH-only settings.
type SSHConfig struct {
	KnownHosts string // path of the known_hosts file
	HostKey    HostKeyPolicy
}

// LinuxConfig holds settings of the linux platform.
type LinuxConfig struct {
	Proto int  // route protocol number that marks returnpath's routes (default 202)
	Sudo  bool // run ip through sudo -n
}

// FortiOSConfig holds settings of the fortinet_fortios platform.
type FortiOSConfig struct {
	Device string // egress interface of every static route ("set device"); FortiOS requires one
}

// ASAConfig holds settings of the cisco_asa platform.
type ASAConfig struct {
	Interface string // nameif of the interface every static route leaves by ("route IF ...")
}

// JunosConfig holds settings of the juniper_junos platform.
type JunosConfig struct {
	// Confirm, when set, commits each batch with "commit confirmed" for that long (whole
	// minutes) and confirms it only once the read-back shows the batch; 0 commits at once.
	Confirm time.Duration
}

// VyOSConfig holds settings of the vyos platform.
type VyOSConfig struct {
	Save bool // "save" after each commit, so that the batch survives a reboot
}

// PANOSConfig holds settings of the paloalto_panos platform.
type PANOSConfig struct {
	VirtualRouter string // virtual router of the default VRF (default "default")
	Interface     string // egress interface set on every route, e.g. ethernet1/2; "" for none
}

// GNMIConfig holds gNMI-only settings.
type GNMIConfig struct {
	Insecure        bool   // plain gRPC, no TLS
	SkipVerify      bool   // TLS without verifying the server certificate
	CAFile          string // PEM CA bundle to verify the server
	CertFile        string // client certificate (mTLS)
	KeyFile         string // client key (mTLS)
	ServerName      string // overrides the TLS server name
	Preset          string // openconfig vendor preset: arista, cisco_iosxr, juniper, nokia, or "" for spec defaults
	NetworkInstance string // overrides the preset's network-instance name
	Protocol        string // overrides the preset's static protocol name
}

// Kind classifies a driver failure by what the caller may safely do next.
type Kind int

// Failure kinds.
const (
	KindInternal      Kind = iota // a bug or an unexpected reply; do not retry blindly
	KindUnreachable               // nothing was sent to the device: safe to retry
	KindRejected                  // the device refused: do not retry; Rejections hold its text
	KindIndeterminate             // the session broke after bytes were sent: re-read before deciding
	KindAuth                      // the device refused the credentials: do not retry
	KindHostKey                   // the host key is unknown or changed: do not retry
)

func (k Kind) String() string {
	switch k {
	case KindUnreachable:
		return "unreachable"
	case KindRejected:
		return "rejected"
	case KindIndeterminate:
		return "indeterminate"
	case KindAuth:
		return "auth"
	case KindHostKey:
		return "host_key"
	default:
		return "internal"
	}
}

// Retryable reports whether an operation that failed with k may be sent again as it is.
func (k Kind) Retryable() bool { return k == KindUnreachable }

// Rejection is one op the device refused, with the device's own text.
type Rejection struct {
	Index  int // position in the batch passed to Apply
	Op     route.RouteOp
	Output string
}

// Error is a driver failure. Its text never contains credentials.
type Error struct {
	Kind       Kind
	Device     string
	Op         string // what was being done: "connect", "read", "apply"
	Err        error
	Rejections []Rejection
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", e.Device, e.Op, e.Kind)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	for _, r := range e.Rejections {
		fmt.Fprintf(&b, "; %s: %s", r.Op, r.Output)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain, or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Errorf builds an *Error of the given kind.
func Errorf(kind Kind, device, op, format string, args ...any) *Error {
	return &Error{Kind: kind, Device: device, Op: op, Err: fmt.Errorf(format, args...)}
}
