package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/scrapli/scrapligo/driver/network"
	"github.com/scrapli/scrapligo/driver/options"
	"github.com/scrapli/scrapligo/platform"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// Defaults for drivers.Config fields left zero.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultOpTimeout      = 30 * time.Second
	defaultPort           = 22
)

func connectTimeout(cfg drivers.Config) time.Duration {
	if cfg.ConnectTimeout > 0 {
		return cfg.ConnectTimeout
	}
	return DefaultConnectTimeout
}

func opTimeout(cfg drivers.Config) time.Duration {
	if cfg.OpTimeout > 0 {
		return cfg.OpTimeout
	}
	return DefaultOpTimeout
}

// linesPerOpTimeout is how many lines of a batch one op timeout covers.
const linesPerOpTimeout = 1000

// applyTimeout bounds the push of a batch of n ops: the op timeout once per 1,000 lines begun.
// A device takes a big batch line by line, and how long each line takes grows with its
// configuration: FRR took 5,000 routes with 5,000 distinct next hops into 15,000 in 21 to 27 s
// on the lab (BenchmarkFRRAdd5000At), and under load past 30 s. A batch cut off by its
// deadline is indeterminate and costs the device a settle (two readings an op timeout apart)
// and a resend; a hung device is still found within an op timeout per 1,000 lines.
func applyTimeout(cfg drivers.Config, n int) time.Duration {
	return opTimeout(cfg) * time.Duration(max(1, (n+linesPerOpTimeout-1)/linesPerOpTimeout))
}

// checkOps refuses a batch before anything is sent when an op is invalid or lies outside the
// managed prefixes: a driver never touches a route outside the pools.
func checkOps(cfg drivers.Config, ops []route.RouteOp) error {
	for i, op := range ops {
		if err := op.Validate(); err != nil {
			return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "op %d (%s): %w", i, op, err)
		}
		if !route.Managed(op.Route.Prefix, cfg.Managed) {
			return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "op %d (%s): prefix outside the managed prefixes", i, op)
		}
	}
	return nil
}

// managedOnly keeps the routes inside cfg.Managed.
func managedOnly(cfg drivers.Config, rs []route.Route) []route.Route {
	out := rs[:0]
	for _, r := range rs {
		if route.Managed(r.Prefix, cfg.Managed) {
			out = append(out, r)
		}
	}
	return out
}

// address returns host:port for cfg.Address, port 22 when it is 0.
func address(cfg drivers.Config) (string, error) {
	if !cfg.Address.Addr().IsValid() {
		return "", drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "no management address")
	}
	port := cfg.Address.Port()
	if port == 0 {
		port = defaultPort
	}
	return netip.AddrPortFrom(cfg.Address.Addr(), port).String(), nil
}

// dial connects and authenticates to the device. Its errors are *drivers.Error of kind
// unreachable (nothing reached the device's CLI), auth or host_key; they never hold a secret.
func dial(ctx context.Context, cfg drivers.Config) (*ssh.Client, error) {
	addr, err := address(cfg)
	if err != nil {
		return nil, err
	}
	fail := func(kind drivers.Kind, err error) error {
		return &drivers.Error{Kind: kind, Device: cfg.Name, Op: "connect", Err: err}
	}
	hk := &hostKeys{cfg: cfg}
	cb, err := hk.callback()
	if err != nil {
		return nil, fail(drivers.KindHostKey, err)
	}
	auth, err := authMethods(cfg)
	if err != nil {
		return nil, fail(drivers.KindAuth, err)
	}
	timeout := connectTimeout(cfg)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fail(drivers.KindUnreachable, err)
	}
	// The handshake obeys the same deadline and the caller's context.
	_ = nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User:            cfg.Username,
		Auth:            auth,
		HostKeyCallback: cb,
		Timeout:         timeout,
	})
	stop()
	if err != nil {
		nc.Close()
		switch {
		case hk.err != nil:
			return nil, fail(drivers.KindHostKey, hk.err)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fail(drivers.KindAuth, fmt.Errorf("device refused the credentials of user %q: %w", cfg.Username, err))
		case ctx.Err() != nil:
			return nil, fail(drivers.KindUnreachable, fmt.Errorf("%w: %w", ctx.Err(), err))
		default:
			return nil, fail(drivers.KindUnreachable, err)
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

func authMethods(cfg drivers.Config) ([]ssh.AuthMethod, error) {
	var m []ssh.AuthMethod
	if cfg.PrivateKey != "" {
		signer, err := ssh.ParsePrivateKey([]byte(cfg.PrivateKey.Reveal()))
		if err != nil {
			// x/crypto's parse errors describe the format, never the key itself.
			return nil, fmt.Errorf("private key: %w", err)
		}
		m = append(m, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		pw := cfg.Password.Reveal()
		m = append(m, ssh.Password(pw), ssh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	if len(m) == 0 {
		return nil, errors.New("no password and no private key configured")
	}
	return m, nil
}

// hostKeys checks the device's host key against the configured known_hosts file and keeps
// the reason when it refuses one, so that dial can report a host_key error rather than the
// handshake's generic failure.
type hostKeys struct {
	cfg drivers.Config
	err error
}

// knownHostsMu serialises accept-new appends within this process.
var knownHostsMu sync.Mutex

func (h *hostKeys) callback() (ssh.HostKeyCallback, error) {
	path := h.cfg.SSH.KnownHosts
	policy := h.cfg.SSH.HostKey
	if policy == "" {
		policy = drivers.HostKeyStrict
	}
	if policy != drivers.HostKeyStrict && policy != drivers.HostKeyAcceptNew {
		return nil, fmt.Errorf("unknown host key policy %q (want strict or accept-new)", string(policy))
	}
	if path == "" {
		return nil, errors.New("no known_hosts file configured: host keys are checked strictly")
	}
	if policy == drivers.HostKeyAcceptNew {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		f.Close()
	}
	check, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0 && policy == drivers.HostKeyAcceptNew:
			if aerr := appendKnownHost(path, hostname, key); aerr != nil {
				h.err = aerr
				return aerr
			}
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0:
			h.err = fmt.Errorf("host key of %s is unknown (not in %s; set host_key: accept-new to trust it on first use): %w", hostname, path, err)
		case errors.As(err, &ke):
			h.err = fmt.Errorf("host key of %s does not match %s line %d: key mismatch, possible man-in-the-middle: %w", hostname, ke.Want[0].Filename, ke.Want[0].Line, err)
		default:
			h.err = fmt.Errorf("host key of %s: %w", hostname, err)
		}
		return h.err
	}, nil
}

func appendKnownHost(path, hostname string, key ssh.PublicKey) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("known_hosts: %w", err)
	}
	return f.Close()
}

// hostOf returns the host part of cfg's address, for scrapligo's bookkeeping.
func hostOf(cfg drivers.Config) (string, int) {
	port := int(cfg.Address.Port())
	if port == 0 {
		port = defaultPort
	}
	return cfg.Address.Addr().String(), port
}

// openCLI opens a scrapligo network driver over an SSH client of ours (dial: host keys,
// credentials, timeouts), for the platform definition def (an embedded name or YAML bytes).
// pty asks for a terminal (EOS's CLI wants one; vtysh must not have one); cli names the
// program in errors. Opening the CLI (on-open included) is bounded by ctx and the connect
// timeout; later operations by the op timeout.
func openCLI(ctx context.Context, cfg drivers.Config, def any, platformName string, pty bool, cli string) (*network.Driver, error) {
	return openCLIWith(ctx, cfg, def, platformName, pty, cli, defaultReadDelay)
}

// Pauses of scrapligo's read loop after each read. The transport's Read blocks until bytes
// arrive, so the pause costs nothing while a device is silent; it only paces reads while
// output streams in. A driver that sends one line and waits for its answer before the next
// (NX-OS, IOS XE, FortiOS entries) pays the pause once per line: it uses the short one.
const (
	defaultReadDelay = 200 * time.Microsecond
	perLineReadDelay = 20 * time.Microsecond
)

// openCLIWith is openCLI with the read loop's pause after each read.
func openCLIWith(ctx context.Context, cfg drivers.Config, def any, platformName string, pty bool, cli string, readDelay time.Duration) (*network.Driver, error) {
	client, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	host, port := hostOf(cfg)
	p, err := platform.NewPlatform(def, host,
		options.WithCustomTransport(&shellTransport{client: client, pty: pty}),
		options.WithPort(port),
		options.WithAuthBypass(),
		options.WithTimeoutOps(connectTimeout(cfg)), // on-open is part of connecting
		options.WithReadDelay(readDelay),
	)
	if err != nil {
		client.Close()
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "%s platform: %w", platformName, err)
	}
	nd, err := p.GetNetworkDriver()
	if err != nil {
		client.Close()
		return nil, drivers.Errorf(drivers.KindInternal, cfg.Name, "connect", "%s platform: %w", platformName, err)
	}
	opened := make(chan error, 1)
	go func() { opened <- nd.Open() }()
	select {
	case err = <-opened:
	case <-ctx.Done():
		client.Close()
		err = ctx.Err()
	}
	if err != nil {
		client.Close()
		return nil, drivers.Errorf(drivers.KindUnreachable, cfg.Name, "connect", "open %s: %w", cli, err)
	}
	nd.Channel.TimeoutOps = opTimeout(cfg)
	return nd, nil
}
