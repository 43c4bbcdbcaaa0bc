package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const sshdPath = "/usr/sbin/sshd"

// setupKeys generates each device's host key and client key pair, the authorized_keys files
// and the known_hosts files.
func (l *Lab) setupKeys(ctx context.Context) error {
	authDir := filepath.Join(l.Dir, "authorized_keys")
	if err := os.MkdirAll(authDir, 0o755); err != nil {
		return fmt.Errorf("lab keys: %w", err)
	}
	devs := slices.Sorted(maps.Keys(l.Devices))
	if err := forEach(devs, func(name string) error {
		d := l.Devices[name]
		if err := os.MkdirAll(filepath.Join(l.Dir, name), 0o755); err != nil {
			return fmt.Errorf("lab keys: %w", err)
		}
		hostKey := strings.TrimSuffix(d.HostKeyFile, ".pub")
		// A lab dir used before keeps its old keys; ssh-keygen would ask before overwriting.
		for _, f := range []string{hostKey, d.HostKeyFile, d.KeyFile, d.KeyFile + ".pub"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("lab keys: %w", err)
			}
		}
		if _, err := run(ctx, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name+" host key", "-f", hostKey); err != nil {
			return err
		}
		_, err := run(ctx, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "returnpath lab client for "+name, "-f", d.KeyFile)
		return err
	}); err != nil {
		return err
	}
	authorized := map[string]string{userFRR: "sw1", userLinux: "fw1", "root": "fw1"}
	for user, dev := range authorized {
		pub, err := os.ReadFile(l.Devices[dev].KeyFile + ".pub")
		if err != nil {
			return fmt.Errorf("lab keys: %w", err)
		}
		if err := os.WriteFile(filepath.Join(authDir, user), pub, 0o644); err != nil {
			return fmt.Errorf("lab keys: %w", err)
		}
	}
	var all bytes.Buffer
	for _, name := range devs {
		d := l.Devices[name]
		pub, err := os.ReadFile(d.HostKeyFile)
		if err != nil {
			return fmt.Errorf("lab keys: %w", err)
		}
		f := strings.Fields(string(pub))
		if len(f) < 2 {
			return fmt.Errorf("lab keys: %s: not a public key", d.HostKeyFile)
		}
		line := fmt.Sprintf("%s %s %s\n", d.Mgmt.Addr(), f[0], f[1])
		all.WriteString(line)
		if err := os.WriteFile(d.KnownHosts, []byte(line), 0o644); err != nil {
			return fmt.Errorf("lab keys: %w", err)
		}
	}
	if err := os.WriteFile(l.KnownHosts, all.Bytes(), 0o644); err != nil {
		return fmt.Errorf("lab keys: %w", err)
	}
	return nil
}

// sshdConfig renders a device's sshd_config. Login users and root's access are per device:
// rpfrr on sw1 lands in vtysh; on fw1, rplinux gets a shell and root may log in by key only.
func (l *Lab) sshdConfig(d Device) string {
	dir := filepath.Join(l.Dir, d.Name)
	var b strings.Builder
	fmt.Fprintf(&b, `# sshd for lab device %s (namespace %s), written by internal/lab.
ListenAddress %s
PidFile %s
HostKey %s
AuthorizedKeysFile %s/authorized_keys/%%u
# The lab dir may sit below /tmp, which StrictModes rejects.
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitEmptyPasswords no
AllowTcpForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 100:30:200
`, d.Name, d.Namespace, d.Mgmt, filepath.Join(dir, "sshd.pid"), strings.TrimSuffix(d.HostKeyFile, ".pub"), l.Dir)
	if d.Platform == "frr" {
		fmt.Fprintf(&b, `PermitRootLogin no
AllowUsers %s
Match User %s
	ForceCommand /usr/bin/vtysh -N %s --config_dir %s
`, userFRR, userFRR, d.Namespace, frrRunRoot)
	} else {
		fmt.Fprintf(&b, `PermitRootLogin prohibit-password
AllowUsers %s root
Subsystem sftp internal-sftp
`, userLinux)
	}
	return b.String()
}

// startSSHD writes the device's sshd_config and starts sshd inside its namespace.
func (l *Lab) startSSHD(ctx context.Context, d Device) error {
	// sshd's privilege separation directory; Debian's init script normally makes it.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return fmt.Errorf("sshd %s: %w", d.Name, err)
	}
	dir := filepath.Join(l.Dir, d.Name)
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(l.sshdConfig(d)), 0o644); err != nil {
		return fmt.Errorf("sshd %s: %w", d.Name, err)
	}
	log := filepath.Join(dir, "sshd.log")
	return l.startDaemon(ctx, d.Name+" sshd", d.Namespace, filepath.Join(dir, "sshd.pid"), log,
		sshdPath, "-f", cfg, "-E", log)
}
