package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// state is what the lab made, recorded in Dir/lab.json as it goes so that Down(dir) can undo
// it after a crash.
type state struct {
	Namespaces  []string  `json:"namespaces"`   // created (or being created), in order
	Processes   []process `json:"processes"`    // daemons started
	RuntimeDirs []string  `json:"runtime_dirs"` // directories outside Dir to remove
	// OwnsDir: Dir was missing or empty when the lab came up, so everything in it is the
	// lab's (keys, passwords, the config, the lab's PostgreSQL) and Down removes it whole.
	OwnsDir    bool          `json:"owns_dir,omitempty"`
	UpDuration time.Duration `json:"up_duration_ns,omitempty"`
}

// process identifies a daemon the lab started. StartTime (field 22 of /proc/PID/stat) and
// Exe tell it apart from a later process that reuses the PID.
type process struct {
	Name      string   `json:"name"` // e.g. "sw1 zebra"
	Namespace string   `json:"namespace"`
	PID       int      `json:"pid"`
	StartTime uint64   `json:"start_time"`
	Exe       string   `json:"exe"`
	Cmdline   []string `json:"cmdline"`
}

type stateFile struct {
	Lab   *Lab  `json:"lab"`
	State state `json:"state"`
}

// save writes the state file atomically.
func (l *Lab) save() error {
	// Goroutines of Up record concurrently; one writer at a time keeps the temporary file theirs.
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	l.mu.Lock()
	b, err := json.MarshalIndent(stateFile{Lab: l, State: l.st}, "", "  ")
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	path := filepath.Join(l.Dir, stateFileName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	if testHookSaved != nil {
		testHookSaved()
	}
	return nil
}

// testHookSaved, when set by a test, runs after every save of the state file.
var testHookSaved func()

// record adds to the state and saves it before the caller makes the thing recorded.
func (l *Lab) record(f func(*state)) error {
	l.mu.Lock()
	f(&l.st)
	l.mu.Unlock()
	return l.save()
}

// Load reads the lab recorded in dir. Passwords are read back from their files.
func Load(dir string) (*Lab, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if err != nil {
		return nil, fmt.Errorf("load lab: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("load lab %s: %w", dir, err)
	}
	l := sf.Lab
	if l == nil || l.Name == "" {
		return nil, fmt.Errorf("load lab %s: state file records no lab", dir)
	}
	l.st = sf.State
	for name, d := range l.Devices {
		p, err := os.ReadFile(d.PasswordFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load lab %s: %w", dir, err)
		}
		d.Password = strings.TrimSpace(string(p))
		l.Devices[name] = d
	}
	return l, nil
}

// UpDuration is how long Up took to build the lab (zero for a lab that is not up yet).
func (l *Lab) UpDuration() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.UpDuration
}

// Down tears down what the state file in dir records: it stops the lab's daemons, deletes its
// namespaces and FRR runtime directories, removes the state file (and dir, when the lab made
// it), and, if it was the last lab on the machine, the lab users and their sudoers drop-in. A
// missing state file means there is nothing to do. It is idempotent and works after a crash.
func Down(dir string) error {
	l, err := Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return l.Down()
}

// Down stops the lab's daemons (only processes that still are the ones it started, plus any
// process left inside its namespaces), deletes its namespaces and runtime directories, removes
// the state file, and Dir when the lab owns it (see state.OwnsDir). When no other lab is up on
// the machine, it removes the users rpfrr and rplinux (with their homes), the sudoers drop-in
// and /var/lib/returnpath-lab too; while one is, they stay, for it logs in as them. It keeps
// going past errors and returns them all.
func (l *Lab) Down() error {
	l.mu.Lock()
	st := l.st
	l.mu.Unlock()
	var errs []error
	for i := len(st.Processes) - 1; i >= 0; i-- {
		if err := stopProcess(st.Processes[i]); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(st.Namespaces) - 1; i >= 0; i-- {
		if err := deleteNamespace(st.Namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	// By name too: an FRR daemon that was still daemonising when its namespace went (an Up
	// cut short) outlives both its recorded PID and the namespace. Its command line names the
	// namespace (-N), which is this lab's alone.
	for _, pid := range frrStragglers(st.Namespaces) {
		if err := stop(pid, "frr daemon"); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range st.RuntimeDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("lab down: %w", err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	l.mu.Lock()
	l.st = state{}
	l.mu.Unlock()
	if err := os.Remove(filepath.Join(l.Dir, stateFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab down: %w", err)
	}
	if st.OwnsDir {
		if err := os.RemoveAll(l.Dir); err != nil {
			return fmt.Errorf("lab down: %w", err)
		}
	}
	return l.releaseMachine(context.Background())
}

// frrStragglers returns FRR daemons whose -N pathspace is one of namespaces.
func frrStragglers(namespaces []string) []int {
	want := map[string]bool{}
	for _, ns := range namespaces {
		want[ns] = true
	}
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args := procCmdline(pid)
		if len(args) < 3 || !strings.HasPrefix(args[0], "/usr/lib/frr/") {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-N" && want[args[i+1]] {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}
