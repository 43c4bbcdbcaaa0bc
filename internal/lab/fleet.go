package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FleetSize is the most Linux devices StartFleet adds (their management addresses are
// 198.18.0.101 to 198.18.0.(100+FleetSize)).
const FleetSize = 99

// FleetNextHop is the address every fleet device can route through: the service's address on
// the management bridge, on-link from each device's management interface. A fleet device has
// no other link, so the kernel accepts a route via this address and no other.
var FleetNextHop = serviceAddr.Addr()

// Fleet is a set of extra Linux devices added to a running lab by StartFleet, for benchmarks
// with more than the default topology's two devices. Each device is its own namespace with one
// link (to the management bridge) and an sshd with the lab's Linux login (Username rplinux,
// fw1's client key, ip through sudo), as fw1 has. The default topology is unchanged.
type Fleet struct {
	Devices    []Device // "lx01", "lx02", ...; KeyFile is fw1's, PasswordFile unset
	KnownHosts string   // known_hosts holding every fleet device's host key

	l          *Lab
	namespaces []string
}

// StartFleet adds n Linux devices to the lab, each reachable over SSH from the mgmt
// namespace, and returns once every sshd runs. Every namespace and daemon is recorded in the
// lab's state as it is made, so Down removes them too; Stop removes them earlier. On failure
// it stops what it started.
func (l *Lab) StartFleet(ctx context.Context, n int) (_ *Fleet, err error) {
	if n < 1 || n > FleetSize {
		return nil, fmt.Errorf("lab fleet: want 1 to %d devices, got %d", FleetSize, n)
	}
	fw, ok := l.Devices["fw1"]
	if !ok {
		return nil, errors.New("lab fleet: the lab has no fw1, whose login the fleet shares")
	}
	f := &Fleet{l: l, KnownHosts: filepath.Join(l.Dir, "fleet.known_hosts")}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Stop())
		}
	}()
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("lx%02d", i)
		f.Devices = append(f.Devices, Device{
			Name:        name,
			Platform:    "linux",
			Namespace:   l.Name + "-" + name,
			Mgmt:        netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(100 + i)}), 22),
			Username:    userLinux,
			KeyFile:     fw.KeyFile,
			KnownHosts:  filepath.Join(l.Dir, name+".known_hosts"),
			HostKeyFile: filepath.Join(l.Dir, name, "ssh_host_ed25519_key.pub"),
		})
	}
	names := make([]string, n)
	for i, d := range f.Devices {
		names[i] = d.Name
		if err := l.addNamespace(ctx, d.Namespace); err != nil {
			return nil, err
		}
		f.namespaces = append(f.namespaces, d.Namespace)
	}
	// Each device's link to the management bridge, created in mgmt with its peer placed in the
	// device's namespace (nothing in the root namespace).
	var create, up []string
	for _, d := range f.Devices {
		create = append(create, fmt.Sprintf("link add name %s type veth peer name mgmt netns %s", d.Name, d.Namespace))
		up = append(up, "link set dev "+d.Name+" master mgmt0", "link set dev "+d.Name+" up")
	}
	if err := ipBatch(ctx, l.Mgmt, append(create, up...)); err != nil {
		return nil, fmt.Errorf("lab fleet: %w", err)
	}
	byName := map[string]Device{}
	for _, d := range f.Devices {
		byName[d.Name] = d
	}
	var all strings.Builder
	keys := make(map[string]string, n)
	if err := forEach(names, func(name string) error {
		d := byName[name]
		if err := ipBatch(ctx, d.Namespace, []string{"link set dev lo up",
			"addr add " + netip.PrefixFrom(d.Mgmt.Addr(), serviceAddr.Bits()).String() + " dev mgmt", "link set dev mgmt up"}); err != nil {
			return err
		}
		return l.fleetHostKey(ctx, d)
	}); err != nil {
		return nil, fmt.Errorf("lab fleet: %w", err)
	}
	for _, d := range f.Devices {
		pub, err := os.ReadFile(d.HostKeyFile)
		if err != nil {
			return nil, fmt.Errorf("lab fleet: %w", err)
		}
		fields := strings.Fields(string(pub))
		if len(fields) < 2 {
			return nil, fmt.Errorf("lab fleet: %s: not a public key", d.HostKeyFile)
		}
		line := fmt.Sprintf("%s %s %s\n", d.Mgmt.Addr(), fields[0], fields[1])
		keys[d.Name] = line
		all.WriteString(line)
	}
	if err := os.WriteFile(f.KnownHosts, []byte(all.String()), 0o644); err != nil {
		return nil, fmt.Errorf("lab fleet: %w", err)
	}
	if err := forEach(names, func(name string) error {
		d := byName[name]
		if err := os.WriteFile(d.KnownHosts, []byte(keys[name]), 0o644); err != nil {
			return err
		}
		return l.startSSHD(ctx, d)
	}); err != nil {
		return nil, fmt.Errorf("lab fleet: %w", err)
	}
	return f, nil
}

// fleetHostKey generates a fleet device's host key (replacing one left by an earlier fleet in
// the same lab directory: ssh-keygen would ask before overwriting).
func (l *Lab) fleetHostKey(ctx context.Context, d Device) error {
	if err := os.MkdirAll(filepath.Dir(d.HostKeyFile), 0o755); err != nil {
		return err
	}
	key := strings.TrimSuffix(d.HostKeyFile, ".pub")
	for _, p := range []string{key, d.HostKeyFile} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	_, err := run(ctx, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", d.Name+" host key", "-f", key)
	return err
}

// Stop stops the fleet's sshds and deletes its namespaces (their mgmt-side veths go with
// them), and forgets them in the lab's state. It is safe to call twice.
func (f *Fleet) Stop() error {
	l := f.l
	l.mu.Lock()
	var procs []process
	for _, p := range l.st.Processes {
		if slices.Contains(f.namespaces, p.Namespace) {
			procs = append(procs, p)
		}
	}
	l.mu.Unlock()
	var errs []error
	for _, p := range procs {
		if err := stopProcess(p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range slices.Backward(f.namespaces) {
		if err := deleteNamespace(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab fleet stop: %w", err)
	}
	gone := f.namespaces
	f.namespaces = nil
	return l.record(func(s *state) {
		s.Processes = slices.DeleteFunc(s.Processes, func(p process) bool { return slices.Contains(gone, p.Namespace) })
		s.Namespaces = slices.DeleteFunc(s.Namespaces, func(n string) bool { return slices.Contains(gone, n) })
	})
}

// VtyshBulk loads configuration lines into an FRR device as `vtysh -f` does: in one
// XFRR_start_configuration ... XFRR_end_configuration batch, directly (not over SSH). It is
// for benchmark set-up and clean-up of thousands of routes, which vtysh -c would commit one by
// one. FRR applies each line on its own (the wrapper is not a transaction); lines it refuses
// make it fail.
func (l *Lab) VtyshBulk(ctx context.Context, device string, lines []string) error {
	d, ok := l.Devices[device]
	if !ok || d.Platform != "frr" {
		return fmt.Errorf("lab %s: no FRR device %q", l.Name, device)
	}
	f, err := os.CreateTemp("", "rp-lab-vtysh-*.conf")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = run(ctx, nil, "ip", "netns", "exec", d.Namespace, "vtysh", "-N", d.Namespace, "--config_dir", frrRunRoot, "-f", f.Name())
	return err
}
