package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// run runs argv with stdin and returns its combined output; the error carries the output.
// Callers never put secrets into argv (they go through stdin).
func run(ctx context.Context, stdin []byte, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// ipBatch runs ip commands inside namespace ns in one process.
func ipBatch(ctx context.Context, ns string, cmds []string) error {
	if len(cmds) == 0 {
		return nil
	}
	_, err := run(ctx, []byte(strings.Join(cmds, "\n")+"\n"), "ip", "-n", ns, "-batch", "-")
	return err
}

// addNamespace records and creates a network namespace.
func (l *Lab) addNamespace(ctx context.Context, ns string) error {
	if err := l.record(func(s *state) { s.Namespaces = append(s.Namespaces, ns) }); err != nil {
		return err
	}
	if _, err := run(ctx, nil, "ip", "netns", "add", ns); err != nil {
		// Not ours (it may exist already): Down must not delete it.
		return errors.Join(err, l.record(func(s *state) {
			s.Namespaces = slices.DeleteFunc(s.Namespaces, func(n string) bool { return n == ns })
		}))
	}
	// No duplicate address detection on the lab's links: their link-local addresses would
	// stay tentative for a second or more after Up, and IPv6 forwarding over a link whose
	// link-local address is tentative drops packets (TestRecipeIPv6 saw the first pings die).
	// Set before any link exists, so "default" covers every link created or moved in here.
	if _, err := run(ctx, nil, "ip", "netns", "exec", ns, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"); err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	return nil
}

// deleteNamespace stops every process still inside ns and deletes it. A missing namespace is
// not an error.
func deleteNamespace(ns string) error {
	path := filepath.Join("/var/run/netns", ns)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	var errs []error
	for _, pid := range pidsInNamespace(st.Ino) {
		if err := stop(pid, "process in "+ns); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := run(context.Background(), nil, "ip", "netns", "del", ns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// pidsInNamespace lists the processes whose network namespace has inode ino.
func pidsInNamespace(ino uint64) []int {
	entries, _ := os.ReadDir("/proc")
	want := "net:[" + strconv.FormatUint(ino, 10) + "]"
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/net")); err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat returns a process's state letter and start time from /proc/PID/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	// The command name may contain spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

func procCmdline(pid int) []string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// alive reports whether p is still the process the lab started and has not exited.
func (p process) alive() bool {
	state, start, err := procStat(p.PID)
	if err != nil || state == 'Z' || start != p.StartTime {
		return false
	}
	// sshd rewrites its command line (process title), so identity is start time plus binary.
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.PID), "exe"))
	return err == nil && exe == p.Exe
}

// stopProcess stops p if it still is the process the lab started.
func stopProcess(p process) error {
	if !p.alive() {
		return nil
	}
	return stop(p.PID, p.Name)
}

// stop sends SIGTERM, waits for the process to exit, and falls back to SIGKILL.
func stop(pid int, name string) error {
	gone := func() bool {
		state, _, err := procStat(pid)
		return err != nil || state == 'Z' // no reaper may be running: a zombie is dead
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := syscall.Kill(pid, sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("stop %s (pid %d): %w", name, pid, err)
		}
		if poll(2*time.Second, gone) {
			return nil
		}
	}
	return fmt.Errorf("stop %s (pid %d): still running after SIGKILL", name, pid)
}

// poll calls cond every few milliseconds until it is true or d has passed.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
}

// startDaemon runs argv inside ns; the daemon forks itself into the background and writes
// pidFile, whose PID is then recorded. The daemon's early output goes to logFile.
func (l *Lab) startDaemon(ctx context.Context, name, ns, pidFile, logFile string, argv ...string) error {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	defer lf.Close()
	full := append([]string{"ip", "netns", "exec", ns}, argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("start %s: %w: %s", name, err, bytes.TrimSpace(log))
	}
	var pid int
	if !poll(5*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	}) {
		return fmt.Errorf("start %s: no pid in %s after 5s", name, pidFile)
	}
	_, start, err := procStat(pid)
	if err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("start %s: pid %d: %w: %s", name, pid, err, bytes.TrimSpace(log))
	}
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	if err != nil {
		return fmt.Errorf("start %s: pid %d: %w", name, pid, err)
	}
	p := process{Name: name, Namespace: ns, PID: pid, StartTime: start, Exe: exe, Cmdline: procCmdline(pid)}
	return l.record(func(s *state) { s.Processes = append(s.Processes, p) })
}
