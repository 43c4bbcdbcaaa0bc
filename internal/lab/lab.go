// Package lab builds returnpath's test network in Linux network namespaces: a management
// bridge, an FRR switch and a Linux firewall reachable over SSH, one or two docker hosts with a
// container behind docker0, and an "internet" host behind the firewall's source NAT.
//
// Nothing is ever added to the root network namespace: every link is created inside a lab
// namespace with its peer placed directly in another one, and every daemon runs inside a lab
// namespace. A JSON state file in the lab directory records every namespace, process and
// runtime directory as it is made, so that Down can clean up after a crash.
//
// The lab adds the system users rpfrr (lands in vtysh) and rplinux (plain shell, may run ip
// through sudo) and the sudoers drop-in /etc/sudoers.d/returnpath-lab to the machine; the last
// lab to go down removes them again (see Lab.Down and docs/lab.md).
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DefaultDir is a lab directory for `returnpath lab up`: like the namespaces, it does not
// survive a reboot, and its parents are traversable by the lab users.
const DefaultDir = "/run/returnpath-lab"

// Options configure Up.
type Options struct {
	// Dir is the lab directory: keys, passwords, known_hosts, daemon configs and the state
	// file go here. It is created if missing. Every parent directory must be traversable by
	// other users (sshd reads authorized keys as the login user).
	Dir string
	// Name prefixes every namespace ("<Name>-sw1"); "" picks a random short name. At most
	// 8 lower-case letters and digits, starting with a letter.
	Name string
	// SecondHost adds host2 (10.10.30.0/24, the second segment) with container ctr2.
	SecondHost bool
	// Bip is an optional initial docker0 prefix for host1, as SetDockerBridge takes it. The
	// zero value leaves docker0 and the container without addresses.
	Bip netip.Prefix
	// IPv6 makes WriteConfig emit a dual-stack configuration (pool6, hosts6, next_hop per
	// family). The lab's links carry IPv6 addresses either way.
	IPv6 bool
}

// Device is a managed device of the lab, reachable over SSH from the mgmt namespace.
type Device struct {
	Name         string         // "sw1" or "fw1"
	Platform     string         // "frr" or "linux"
	Namespace    string         // network namespace the device lives in
	Mgmt         netip.AddrPort // sshd's address on the management bridge
	Username     string         // login user: rpfrr on sw1, rplinux on fw1
	Password     string         `json:"-"` // Username's password (read from PasswordFile)
	PasswordFile string         // file holding Password, without a trailing newline
	KeyFile      string         // client private key, authorised for Username (and for root on fw1)
	KnownHosts   string         // known_hosts file holding only this device's host key
	HostKeyFile  string         // the device's public host key
}

// Host is a docker host of the lab with one container behind its docker0 bridge.
type Host struct {
	Name      string     // "host1" or "host2"
	Namespace string     // network namespace of the host
	Container string     // network namespace standing in for the container ("<Name>-ctr1")
	Uplink    netip.Addr // the host's address towards the switch
	Gateway   netip.Addr // the switch's address on the host's segment
	Segment   netip.Prefix
	Mgmt      netip.Addr   // the host's address on the management bridge
	Uplink6   netip.Addr   // the host's IPv6 address towards the switch
	Gateway6  netip.Addr   // the switch's IPv6 address on the host's segment
	Segment6  netip.Prefix // the host's IPv6 segment (a /64)
}

// Lab is a running (or recorded) lab.
type Lab struct {
	Dir       string            // the lab directory
	Name      string            // namespace prefix
	Mgmt      string            // name of the management namespace, where tests and the service run
	Service   netip.Addr        // the mgmt bridge address (198.18.0.1) the service listens on
	Devices   map[string]Device // "sw1", "fw1"
	Hosts     map[string]Host   // "host1", and "host2" with Options.SecondHost
	Internet  netip.Addr        // the "internet" host behind the firewall (198.51.100.1)
	Internet6 netip.Addr        // its IPv6 address (fd00:198:51:100::1), routed without NAT
	// DualStack is Options.IPv6: WriteConfig writes the IPv6 pool, segments and next hops.
	DualStack  bool
	KnownHosts string // known_hosts holding every device's host key

	mu     sync.Mutex // guards st
	st     state
	saveMu sync.Mutex // serialises writes of the state file
}

// The lab's fixed addressing (see docs/lab.md).
var (
	serviceAddr  = netip.MustParsePrefix("198.18.0.1/24")
	internetAddr = netip.MustParseAddr("198.51.100.1")
	poolPrefix   = netip.MustParsePrefix("10.210.0.0/16")
	// The IPv6 counterparts: the internet host's address and the docker pool of /64s.
	internetAddr6 = netip.MustParseAddr("fd00:198:51:100::1")
	poolPrefix6   = netip.MustParsePrefix("fd00:210::/48")
)

const (
	stateFileName = "lab.json"
	userFRR       = "rpfrr"
	userLinux     = "rplinux"
	// proto marks the routes the linux driver manages on fw1 (drivers.LinuxConfig.Proto).
	linuxProto = 202
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// Roles of the lab's namespaces, in creation order.
func roles(second bool) []string {
	r := []string{"mgmt", "sw1", "fw1", "inet", "host1", "ctr1"}
	if second {
		r = append(r, "host2", "ctr2")
	}
	return r
}

// ns returns the namespace name of a role, or the argument itself if it already names one of
// the lab's namespaces.
func (l *Lab) ns(roleOrNS string) (string, error) {
	for _, n := range l.namespaces() {
		if roleOrNS == n || l.Name+"-"+roleOrNS == n {
			return n, nil
		}
	}
	return "", fmt.Errorf("lab %s has no namespace %q", l.Name, roleOrNS)
}

func (l *Lab) namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.st.Namespaces...)
}

func randomName() string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return "rp" + hex.EncodeToString(b)[:5]
}

// Up builds the lab described by opts and returns it once every daemon answers. On any
// failure it tears down what it made and returns the error.
func Up(ctx context.Context, opts Options) (_ *Lab, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	l, err := newLab(opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	defer func() {
		if err != nil {
			if derr := l.Down(); derr != nil {
				err = errors.Join(err, fmt.Errorf("tear down after failed up: %w", derr))
			}
		}
	}()
	if err := l.build(ctx, opts); err != nil {
		return nil, fmt.Errorf("lab %s up: %w", l.Name, err)
	}
	l.mu.Lock()
	l.st.UpDuration = time.Since(start)
	l.mu.Unlock()
	if err := l.save(); err != nil {
		return nil, err
	}
	return l, nil
}

func newLab(opts Options) (*Lab, error) {
	if opts.Dir == "" {
		return nil, errors.New("lab: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	if strings.ContainsAny(dir, " \t\n\"'%\\") {
		return nil, fmt.Errorf("lab dir %q: must not contain spaces, quotes, %% or backslashes (it goes into sshd_config)", dir)
	}
	name := opts.Name
	if name == "" {
		name = randomName()
	}
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("lab name %q: want 1-8 lower-case letters and digits, starting with a letter", name)
	}
	if _, err := os.Stat(filepath.Join("/var/run/netns", name+"-mgmt")); err == nil {
		return nil, fmt.Errorf("lab name %q is in use (namespace %s-mgmt exists)", name, name)
	}
	owns := dirMissingOrEmpty(dir)
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, stateFileName)); err == nil {
		return nil, fmt.Errorf("lab dir %s already holds a lab (run Down on it first)", dir)
	}
	l := &Lab{
		Dir:        dir,
		Name:       name,
		Mgmt:       name + "-mgmt",
		Service:    serviceAddr.Addr(),
		Devices:    map[string]Device{},
		Hosts:      map[string]Host{},
		Internet:   internetAddr,
		Internet6:  internetAddr6,
		DualStack:  opts.IPv6,
		KnownHosts: filepath.Join(dir, "known_hosts"),
	}
	l.st.OwnsDir = owns
	for _, h := range hostPlans(opts.SecondHost) {
		l.Hosts[h.name] = Host{
			Name:      h.name,
			Namespace: name + "-" + h.name,
			Container: name + "-" + h.ctr,
			Uplink:    h.uplink.Addr(),
			Gateway:   h.gateway.Addr(),
			Segment:   h.uplink.Masked(),
			Mgmt:      h.mgmt.Addr(),
			Uplink6:   h.uplink6.Addr(),
			Gateway6:  h.gateway6.Addr(),
			Segment6:  h.uplink6.Masked(),
		}
	}
	for _, d := range devicePlans() {
		l.Devices[d.name] = Device{
			Name:         d.name,
			Platform:     d.platform,
			Namespace:    name + "-" + d.name,
			Mgmt:         netip.AddrPortFrom(d.mgmt.Addr(), 22),
			Username:     d.user,
			PasswordFile: filepath.Join(dir, d.name+".password"),
			KeyFile:      filepath.Join(dir, d.name+"_client_key"),
			KnownHosts:   filepath.Join(dir, d.name+".known_hosts"),
			HostKeyFile:  filepath.Join(dir, d.name, "ssh_host_ed25519_key.pub"),
		}
	}
	return l, l.save()
}

// dirMissingOrEmpty reports whether dir does not exist or holds nothing: then all it will
// hold is the lab's.
func dirMissingOrEmpty(dir string) bool {
	entries, err := os.ReadDir(dir)
	return errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0
}

// prepareDir creates dir and makes it traversable (not listable) by the lab users: sshd
// reads authorized_keys files as the login user.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("lab dir: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("lab dir: %w", err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("lab dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("lab dir %s: parent %s is not traversable by other users (mode %v); sshd could not read authorized keys as %s", dir, p, fi.Mode().Perm(), userLinux)
		}
		if p == "/" {
			return nil
		}
	}
}

func (l *Lab) build(ctx context.Context, opts Options) error {
	// Users and keys do not depend on the namespaces: prepare them while the network is built.
	var wg sync.WaitGroup
	var userErr, keyErr error
	var passwords map[string]string
	wg.Add(2)
	go func() { defer wg.Done(); passwords, userErr = l.setupUsers(ctx) }()
	go func() { defer wg.Done(); keyErr = l.setupKeys(ctx) }()
	netErr := l.buildNetwork(ctx, opts.SecondHost)
	wg.Wait()
	if err := errors.Join(netErr, userErr, keyErr); err != nil {
		return err
	}
	for name, pw := range passwords {
		d := l.Devices[name]
		d.Password = pw
		l.Devices[name] = d
	}
	if err := l.startDaemons(ctx); err != nil {
		return err
	}
	if opts.Bip.IsValid() {
		if _, err := l.SetDockerBridge(ctx, "host1", opts.Bip); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) startDaemons(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- l.startFRR(ctx, l.Devices["sw1"]) }()
	go func() { errc <- l.startSSHD(ctx, l.Devices["sw1"]) }()
	go func() { errc <- l.startSSHD(ctx, l.Devices["fw1"]) }()
	var errs []error
	for range 3 {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}
