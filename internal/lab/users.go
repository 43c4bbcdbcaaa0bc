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
	"strings"
	"syscall"
)

// Machine-wide lab state: the lab users' passwords are shared by every lab on the machine so
// that labs running in parallel do not overwrite each other's passwords. labsDir holds one
// file per lab that is up (named after the lab, holding its directory): the last lab to go
// down removes the users, the sudoers drop-in and machineDir, so that the machine is as it
// was before the first lab.
const (
	machineDir  = "/var/lib/returnpath-lab"
	labsDir     = machineDir + "/labs"
	sudoersFile = "/etc/sudoers.d/returnpath-lab"
	netnsDir    = "/var/run/netns"
)

// machine names what the labs share on the machine; tests point it elsewhere.
type machine struct {
	dir, labs, sudoers, netns string
	users                     []string
}

var thisMachine = machine{dir: machineDir, labs: labsDir, sudoers: sudoersFile, netns: netnsDir, users: []string{userFRR, userLinux}}

// lockMachine takes the machine-wide lab lock (creating machineDir) and returns its release.
func lockMachine() (func(), error) { return thisMachine.lock() }

func (m machine) lock() (func(), error) {
	path := filepath.Join(m.dir, "lock")
	for {
		if err := os.MkdirAll(m.dir, 0o700); err != nil {
			return nil, fmt.Errorf("lab lock: %w", err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lab lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lab lock: %w", err)
		}
		// The last lab down removes the lock file while holding it: a lock taken on the
		// removed file guards nothing, so take the one the path names now.
		var held, named syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &named) == nil && held.Dev == named.Dev && held.Ino == named.Ino {
			return func() { f.Close() }, nil // closing releases the lock
		}
		f.Close()
	}
}

// liveLabs returns the other labs on the machine that are up: those registered in labs
// (whose directory still holds a state file), and, for labs built by a returnpath that did not
// register, every name with both a NAME-mgmt and a NAME-sw1 namespace in netns. self is left
// out.
func liveLabs(labs, netns, self string) []string {
	var out []string
	entries, _ := os.ReadDir(labs)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(labs, e.Name()))
		if e.Name() == self || err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(b)), stateFileName)); err == nil {
			out = append(out, e.Name())
		}
	}
	nss, _ := os.ReadDir(netns)
	for _, e := range nss {
		name, ok := strings.CutSuffix(e.Name(), "-mgmt")
		if !ok || name == self || slices.Contains(out, name) {
			continue
		}
		if _, err := os.Stat(filepath.Join(netns, name+"-sw1")); err == nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// releaseMachine deregisters the lab and, when no other lab is up, removes what the labs
// added to the machine: the users with their homes, the sudoers drop-in and machineDir.
func (l *Lab) releaseMachine(ctx context.Context) error { return thisMachine.release(ctx, l.Name) }

func (m machine) release(ctx context.Context, self string) error {
	if _, err := os.Stat(m.dir); errors.Is(err, os.ErrNotExist) {
		return nil // nothing was added, or the last lab already took it away
	}
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(filepath.Join(m.labs, self)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab down: %w", err)
	}
	if others := liveLabs(m.labs, m.netns, self); len(others) > 0 {
		return nil // they still log in as the lab users
	}
	var errs []error
	for _, name := range m.users {
		if _, err := user.Lookup(name); err != nil {
			continue
		}
		if _, err := run(ctx, nil, "userdel", "--remove", name); err != nil {
			errs = append(errs, fmt.Errorf("lab down: remove user %s: %w", name, err))
		}
	}
	if err := os.Remove(m.sudoers); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("lab down: %w", err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // keep the passwords: the users are still there
	}
	if err := os.RemoveAll(m.dir); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	return nil
}

// sudoersText lets rplinux run ip (under any of its merged-/usr paths) as root, nothing else.
var sudoersText = []byte("# Written by returnpath's network-namespace lab (internal/lab, docs/lab.md).\n" +
	"# " + userLinux + " may run ip as root without a password; nothing else.\n" +
	userLinux + " ALL=(root) NOPASSWD: /usr/bin/ip, /usr/sbin/ip, /bin/ip, /sbin/ip\n")

// setupUsers makes sure the lab users exist with their machine-wide passwords, writes the
// sudoers drop-in, and copies each device user's password into the lab directory. It returns
// the passwords by device name.
func (l *Lab) setupUsers(ctx context.Context) (map[string]string, error) {
	unlock, err := lockMachine()
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Registered before the users are made, under the lock: a lab going down meanwhile sees
	// this one and leaves the users be.
	if err := os.MkdirAll(labsDir, 0o700); err != nil {
		return nil, fmt.Errorf("lab users: %w", err)
	}
	if err := os.WriteFile(filepath.Join(labsDir, l.Name), []byte(l.Dir+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("lab users: %w", err)
	}

	groups := map[string][]string{userFRR: {"frrvty"}, userLinux: nil}
	passwords := map[string]string{}
	_, sw2 := l.Devices["sw2"]
	for _, d := range devicePlans(sw2) {
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
