package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"syscall"
)

// Machine-wide lab state: the lab users' passwords are shared by every lab on the machine so
// that labs running in parallel do not overwrite each other's passwords.
const (
	machineDir  = "/var/lib/returnpath-lab"
	sudoersFile = "/etc/sudoers.d/returnpath-lab"
)

// sudoersText lets rplinux run ip (under any of its merged-/usr paths) as root, nothing else.
var sudoersText = []byte("# Written by returnpath's network-namespace lab (internal/lab, docs/lab.md).\n" +
	"# " + userLinux + " may run ip as root without a password; nothing else.\n" +
	userLinux + " ALL=(root) NOPASSWD: /usr/bin/ip, /usr/sbin/ip, /bin/ip, /sbin/ip\n")

// setupUsers makes sure the lab users exist with their machine-wide passwords, writes the
// sudoers drop-in, and copies each device user's password into the lab directory. It returns
// the passwords by device name.
func (l *Lab) setupUsers(ctx context.Context) (map[string]string, error) {
	if err := os.MkdirAll(machineDir, 0o700); err != nil {
		return nil, fmt.Errorf("lab users: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(machineDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab users: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lab users: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too

	groups := map[string][]string{userFRR: {"frrvty"}, userLinux: nil}
	passwords := map[string]string{}
	for _, d := range devicePlans() {
		pw, err := ensureUser(ctx, d.user, groups[d.user])
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(l.Dir, d.name+".password"), pw, 0o600); err != nil {
			return nil, fmt.Errorf("lab users: %w", err)
		}
		passwords[d.name] = string(pw)
	}
	return passwords, ensureSudoers(ctx)
}

// ensureUser creates name if missing, adds it to groups, and sets its password to the
// machine-wide one (generated on first use). It returns the password.
func ensureUser(ctx context.Context, name string, groups []string) ([]byte, error) {
	pwFile := filepath.Join(machineDir, name+".password")
	pw, err := os.ReadFile(pwFile)
	if errors.Is(err, os.ErrNotExist) {
		pw = []byte(rand.Text())
		err = os.WriteFile(pwFile, pw, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("lab user %s: %w", name, err)
	}
	u, err := user.Lookup(name)
	if err != nil {
		args := []string{"useradd", "--create-home", "--shell", "/bin/bash", "--comment", "returnpath lab"}
		for _, g := range groups {
			args = append(args, "--groups", g)
		}
		if _, err := run(ctx, nil, append(args, name)...); err != nil {
			return nil, err
		}
		if u, err = user.Lookup(name); err != nil {
			return nil, fmt.Errorf("lab user %s: %w", name, err)
		}
	}
	have, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("lab user %s: %w", name, err)
	}
	for _, g := range groups {
		grp, err := user.LookupGroup(g)
		if err != nil {
			return nil, fmt.Errorf("lab user %s: %w", name, err)
		}
		if !slices.Contains(have, grp.Gid) {
			if _, err := run(ctx, nil, "usermod", "--append", "--groups", g, name); err != nil {
				return nil, err
			}
		}
	}
	// The password goes through stdin only, never into argv or errors.
	line := append([]byte(name+":"), pw...)
	if _, err := run(ctx, append(line, '\n'), "chpasswd"); err != nil {
		return nil, fmt.Errorf("lab user %s: set password: %w", name, err)
	}
	return pw, nil
}

// ensureSudoers installs the sudoers drop-in after visudo accepted it.
func ensureSudoers(ctx context.Context) error {
	if b, err := os.ReadFile(sudoersFile); err == nil && bytes.Equal(b, sudoersText) {
		return nil
	}
	tmp := filepath.Join(machineDir, "sudoers.tmp")
	if err := os.WriteFile(tmp, sudoersText, 0o440); err != nil {
		return fmt.Errorf("lab sudoers: %w", err)
	}
	if _, err := run(ctx, nil, "visudo", "-c", "-q", "-f", tmp); err != nil {
		return fmt.Errorf("lab sudoers: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(sudoersFile), 0o750); err != nil {
		return fmt.Errorf("lab sudoers: %w", err)
	}
	// Copy rather than rename: machineDir and /etc may be on different file systems.
	if err := os.WriteFile(sudoersFile+".tmp", sudoersText, 0o440); err != nil {
		return fmt.Errorf("lab sudoers: %w", err)
	}
	if err := os.Rename(sudoersFile+".tmp", sudoersFile); err != nil {
		return fmt.Errorf("lab sudoers: %w", err)
	}
	return os.Remove(tmp)
}
