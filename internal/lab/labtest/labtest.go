// Package labtest runs a test binary inside a network-namespace lab (internal/lab): TestMain
// calls Main, tests call Require.
//
// A Go process cannot move all its threads into another network namespace, so Main builds the
// lab and re-executes the test binary inside the lab's mgmt namespace, where the tests can dial
// the devices; the outer process only streams the output and tears the lab down.
package labtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/returnpath/returnpath/internal/lab"
)

// EnvLabDir names the lab directory in the re-executed child.
const EnvLabDir = "RETURNPATH_LAB_DIR"

// EnvRequireLab, set to 1, makes Require fail instead of skip when there is no lab (CI).
const EnvRequireLab = "RETURNPATH_REQUIRE_LAB"

var (
	current  *lab.Lab
	errNoLab = errors.New("no lab: TestMain does not call labtest.Main")
)

// Main is for TestMain: os.Exit(labtest.Main(m, lab.Options{})).
//
// If lab.Check fails, it runs the tests without a lab (Require then skips or fails). Otherwise
// it builds the lab (in opts.Dir, or a fresh temporary directory), re-executes the test
// binary inside the mgmt namespace with the same arguments and EnvLabDir set, streams its
// output, tears the lab down and returns the child's exit code. In the child it loads the lab
// and runs the tests. If EnvLabDir names a lab that is already up (returnpath lab up) and this
// process is not in its mgmt namespace, it re-executes inside that lab and leaves it up.
func Main(m *testing.M, opts lab.Options) int {
	if dir := os.Getenv(EnvLabDir); dir != "" {
		l, err := lab.Load(dir)
		switch {
		case err != nil:
			errNoLab = fmt.Errorf("no lab: %s=%s: %w", EnvLabDir, dir, err)
		case inNamespace(l.Mgmt):
			current = l
		default:
			// A lab brought up beforehand (returnpath lab up): run inside it and leave it up.
			return exitCode(runIn(l))
		}
		return m.Run()
	}
	if err := lab.Check(); err != nil {
		errNoLab = err
		return m.Run()
	}
	return exitCode(upAndRun(opts))
}

func exitCode(code int, err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "labtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// inNamespace reports whether this process runs in the named network namespace.
func inNamespace(ns string) bool {
	var self, want syscall.Stat_t
	return syscall.Stat("/proc/self/ns/net", &self) == nil &&
		syscall.Stat(filepath.Join("/var/run/netns", ns), &want) == nil &&
		self.Ino == want.Ino && self.Dev == want.Dev
}

// Temporary lab directories are named tempPrefix*; ownerFile in one names the test process
// that owns it, so that a later run can tear down labs whose owner was killed.
const (
	tempPrefix = "rplab-"
	ownerFile  = "labtest.owner"
)

func upAndRun(opts lab.Options) (code int, err error) {
	if opts.Dir == "" {
		sweep()
		dir, err := os.MkdirTemp("", tempPrefix)
		if err != nil {
			return 1, err
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(self()), 0o600); err != nil {
			return 1, err
		}
		opts.Dir = dir
	}
	l, err := lab.Up(context.Background(), opts)
	if err != nil {
		return 1, err
	}
	defer func() {
		// From the state file rather than l: the tests, in the child, may have added to the
		// lab (Lab.StartFleet) and recorded it there. Should it be unreadable, l still knows
		// what Up made.
		derr := lab.Down(l.Dir)
		if derr != nil {
			derr = errors.Join(derr, l.Down())
		}
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("lab down: %w", derr))
		}
	}()
	return runIn(l)
}

// self identifies this process: PID and start time (field 22 of /proc/self/stat).
func self() string {
	return identity(os.Getpid())
}

func identity(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return ""
	}
	return strconv.Itoa(pid) + " " + f[19]
}

// sweep tears down labs in temporary directories whose owning test process is gone (killed
// before it could run Down). Best effort: problems are reported and skipped.
func sweep() {
	owners, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*", ownerFile))
	for _, f := range owners {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(string(b) + " x")[0])
		if pid > 0 && identity(pid) == string(b) {
			continue // the owner still runs
		}
		dir := filepath.Dir(f)
		if err := lab.Down(dir); err != nil {
			fmt.Fprintf(os.Stderr, "labtest: tearing down the stale lab in %s: %v\n", dir, err)
			continue
		}
		os.RemoveAll(dir)
	}
}

// runIn re-executes this test binary inside l's mgmt namespace and returns its exit code.
func runIn(l *lab.Lab) (int, error) {
	exe, err := os.Executable() // resolved here: /proc/self/exe inside `ip netns exec` is ip
	if err != nil {
		return 1, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.Mgmt, exe}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), EnvLabDir+"="+l.Dir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Keep the lab until the child is gone: forward interrupts instead of dying on them.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigc)
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigc:
			cmd.Process.Signal(sig) //nolint:errcheck // the child may already be gone
		case err := <-done:
			var exit *exec.ExitError
			switch {
			case errors.As(err, &exit) && exit.ExitCode() >= 0:
				return exit.ExitCode(), nil
			case err != nil: // killed by a signal, or could not wait
				return 1, err
			}
			return 0, nil
		}
	}
}

// Require returns the lab of this test binary. Without one it skips the test, or fails it
// when RETURNPATH_REQUIRE_LAB=1.
func Require(t testing.TB) *lab.Lab {
	t.Helper()
	if current != nil {
		return current
	}
	if os.Getenv(EnvRequireLab) == "1" {
		t.Fatalf("%s=1 but %v", EnvRequireLab, errNoLab)
	}
	t.Skipf("%v (set %s=1 to fail instead)", errNoLab, EnvRequireLab)
	return nil
}
