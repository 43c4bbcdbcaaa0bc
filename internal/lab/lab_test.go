package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Environment of the re-executed child in TestDownAfterCrash.
const (
	envCrashDir   = "RETURNPATH_LAB_CRASH_DIR"
	envCrashAfter = "RETURNPATH_LAB_CRASH_AFTER"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashDir); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashChild builds a lab and dies with SIGKILL right after the state file has been saved n
// times (n = 0: after Up returned), leaving whatever it made behind.
func crashChild(dir string) int {
	n, _ := strconv.Atoi(os.Getenv(envCrashAfter))
	saves := 0
	testHookSaved = func() {
		saves++
		if saves == n {
			syscall.Kill(os.Getpid(), syscall.SIGKILL) //nolint:errcheck
		}
	}
	if _, err := Up(context.Background(), Options{Dir: dir, SecondHost: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL) //nolint:errcheck
	return 0
}

// requireLab skips the test when this machine cannot run the lab, or fails it when
// RETURNPATH_REQUIRE_LAB=1 (CI).
func requireLab(t testing.TB) {
	t.Helper()
	if err := Check(); err != nil {
		if os.Getenv("RETURNPATH_REQUIRE_LAB") == "1" {
			t.Fatalf("RETURNPATH_REQUIRE_LAB=1 but %v", err)
		}
		t.Skipf("%v (set RETURNPATH_REQUIRE_LAB=1 to fail instead)", err)
	}
}

// labDir returns a fresh directory whose parents other users can traverse (t.TempDir's are
// 0700, which keeps sshd from reading authorized keys as the login user).
func labDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rplabtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func up(t testing.TB, opts Options) *Lab {
	t.Helper()
	requireLab(t)
	if opts.Dir == "" {
		opts.Dir = labDir(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return l
}

// ssh runs the OpenSSH client from the lab's mgmt namespace with strict host key checking
// against known_hosts. With password set, the password is supplied through SSH_ASKPASS and
// public keys are not offered; otherwise only the key is used.
func ssh(ctx context.Context, t *testing.T, l *Lab, knownHosts, user, key, passwordFile string, addr netip.AddrPort, stdin string, args ...string) (string, error) {
	t.Helper()
	argv := []string{"netns", "exec", l.Mgmt, "ssh", "-F", "none",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "ConnectTimeout=5", "-p", strconv.Itoa(int(addr.Port()))}
	env := os.Environ()
	if passwordFile != "" {
		askpass := filepath.Join(t.TempDir(), "askpass")
		script := "#!/bin/sh\nexec cat " + passwordFile + "\n"
		if err := os.WriteFile(askpass, []byte(script), 0o700); err != nil {
			t.Fatal(err)
		}
		argv = append(argv, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1")
		env = append(env, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force")
	} else {
		argv = append(argv, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", key)
	}
	argv = append(argv, user+"@"+addr.Addr().String())
	cmd := exec.CommandContext(ctx, "ip", append(argv, args...)...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling tty: askpass only
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestDevices(t *testing.T) {
	t.Parallel()
	l := up(t, Options{SecondHost: true})
	t.Logf("lab %s up in %v", l.Name, l.UpDuration())
	sw, fw := l.Devices["sw1"], l.Devices["fw1"]
	ctx := t.Context()

	t.Run("sw1 key login lands in vtysh", func(t *testing.T) {
		t.Parallel()
		out, err := ssh(ctx, t, l, sw.KnownHosts, sw.Username, sw.KeyFile, "", sw.Mgmt, "show running-config\nexit\n")
		if err != nil {
			t.Fatalf("ssh: %v: %s", err, out)
		}
		for _, want := range []string{"sw1# ", "ip route 0.0.0.0/0 10.10.20.2"} {
			if !strings.Contains(out, want) {
				t.Errorf("vtysh session output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("sw1 password login lands in vtysh", func(t *testing.T) {
		t.Parallel()
		out, err := ssh(ctx, t, l, l.KnownHosts, sw.Username, "", sw.PasswordFile, sw.Mgmt, "show version\n")
		if err != nil {
			t.Fatalf("ssh: %v: %s", err, out)
		}
		if !strings.Contains(out, "FRRouting 8") || !strings.Contains(out, "sw1# ") {
			t.Errorf("vtysh session output lacks the FRR version and the sw1 prompt:\n%s", out)
		}
	})
	t.Run("sw1 refuses a wrong password", func(t *testing.T) {
		t.Parallel()
		wrong := filepath.Join(t.TempDir(), "wrong")
		if err := os.WriteFile(wrong, []byte("not-"+sw.Password), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := ssh(ctx, t, l, l.KnownHosts, sw.Username, "", wrong, sw.Mgmt, "show version\n")
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("wrong password: err %v, output %q; want Permission denied", err, out)
		}
	})
	t.Run("fw1 rplinux runs sudo -n ip route", func(t *testing.T) {
		t.Parallel()
		out, err := ssh(ctx, t, l, fw.KnownHosts, fw.Username, fw.KeyFile, "", fw.Mgmt, "", "sudo -n ip route show default")
		if err != nil {
			t.Fatalf("ssh: %v: %s", err, out)
		}
		if got, want := strings.TrimSpace(out), "default via 203.0.113.2 dev outside"; got != want {
			t.Errorf("sudo -n ip route show default = %q, want %q", got, want)
		}
		out, err = ssh(ctx, t, l, fw.KnownHosts, fw.Username, fw.KeyFile, "", fw.Mgmt, "", "sudo -n id")
		if err == nil {
			t.Errorf("sudo -n id succeeded (%q); the sudoers drop-in must allow ip only", out)
		}
	})
	t.Run("fw1 rplinux password login", func(t *testing.T) {
		t.Parallel()
		out, err := ssh(ctx, t, l, l.KnownHosts, fw.Username, "", fw.PasswordFile, fw.Mgmt, "", "id -un")
		if err != nil {
			t.Fatalf("ssh: %v: %s", err, out)
		}
		if got := strings.TrimSpace(out); got != userLinux {
			t.Errorf("id -un = %q, want %q", got, userLinux)
		}
	})
	t.Run("fw1 root by key", func(t *testing.T) {
		t.Parallel()
		out, err := ssh(ctx, t, l, fw.KnownHosts, "root", fw.KeyFile, "", fw.Mgmt, "", "id -u")
		if err != nil {
			t.Fatalf("ssh: %v: %s", err, out)
		}
		if got := strings.TrimSpace(out); got != "0" {
			t.Errorf("id -u = %q, want 0", got)
		}
	})
	t.Run("host keys are per device", func(t *testing.T) {
		t.Parallel()
		// sw1's known_hosts holds only sw1's key: fw1 must fail strict checking with it.
		out, err := ssh(ctx, t, l, sw.KnownHosts, fw.Username, fw.KeyFile, "", fw.Mgmt, "", "true")
		if err == nil || !strings.Contains(out, "Host key verification failed") {
			t.Errorf("fw1 with sw1's known_hosts: err %v, output %q; want host key verification failure", err, out)
		}
	})
	t.Run("Vtysh reports FRR errors", func(t *testing.T) {
		t.Parallel()
		_, err := l.Vtysh(ctx, "sw1", "ip route 10.210.10.0/33 10.10.10.101")
		if err == nil || !strings.Contains(err.Error(), "% Unknown command") {
			t.Errorf("Vtysh with a /33: err %v, want %% Unknown command", err)
		}
		if _, err := l.Vtysh(ctx, "fw1", "show version"); err == nil {
			t.Error("Vtysh on fw1 succeeded; fw1 is not an FRR device")
		}
	})
	t.Run("hosts reach the service address", func(t *testing.T) {
		t.Parallel()
		for _, h := range []string{"host1", "host2"} {
			if err := l.Ping(ctx, h, l.Service); err != nil {
				t.Errorf("%s: %v", h, err)
			}
		}
	})
	t.Run("Status", func(t *testing.T) {
		t.Parallel()
		s, err := l.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Healthy() {
			t.Errorf("status not healthy:\n%s", s)
		}
		if got, want := len(s.Namespaces), 8; got != want {
			t.Errorf("%d namespaces, want %d:\n%s", got, want, s)
		}
		if got, want := len(s.Processes), 4; got != want { // zebra, staticd, 2 sshd
			t.Errorf("%d daemons, want %d:\n%s", got, want, s)
		}
	})
	t.Run("Load", func(t *testing.T) {
		t.Parallel()
		got, err := Load(l.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, l, cmpopts.IgnoreUnexported(Lab{}), cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}, netip.Prefix{})); diff != "" {
			t.Errorf("Load(dir) differs from the lab Up returned (-got +want):\n%s", diff)
		}
	})
}

// TestRecipe is the recipe end to end: a container's traffic to the internet dies until the
// switch and the firewall have a return route for the docker0 subnet.
func TestRecipe(t *testing.T) {
	t.Parallel()
	l := up(t, Options{})
	ctx := t.Context()
	bip := netip.MustParsePrefix("10.210.10.1/24")
	ctr, err := l.SetDockerBridge(ctx, "host1", bip)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("10.210.10.2"); ctr != want {
		t.Errorf("container address %v, want %v", ctr, want)
	}
	// The container reaches its gateway, so a failure below is the missing return path.
	if err := l.Ping(ctx, "ctr1", bip.Addr()); err != nil {
		t.Fatalf("container cannot reach docker0: %v", err)
	}
	if err := l.Ping(ctx, "ctr1", l.Internet); err == nil {
		t.Fatal("ping from ctr1 to the internet works without return routes; the lab does not reproduce the problem")
	}
	if _, err := l.Vtysh(ctx, "sw1", "ip route 10.210.10.0/24 10.10.10.101"); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(ctx, "fw1", "ip", "route", "add", "10.210.10.0/24", "via", "10.10.20.1"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// FRR installs asynchronously; Ping itself waits up to about two seconds for replies.
	var pingErr error
	for range 5 {
		if pingErr = l.Ping(ctx, "ctr1", l.Internet); pingErr == nil {
			break
		}
	}
	if pingErr != nil {
		t.Fatalf("ping from ctr1 to the internet with return routes: %v", pingErr)
	}
	// Moving docker0 to another subnet breaks the path again: the routes are per subnet.
	if _, err := l.SetDockerBridge(ctx, "host1", netip.MustParsePrefix("10.210.11.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := l.Ping(ctx, "ctr1", l.Internet); err == nil {
		t.Error("ping from 10.210.11.2 works with return routes for 10.210.10.0/24 only")
	}
}

// TestRecipeIPv6 is the recipe with Docker's fixed-cidr-v6: IPv6 is routed without NAT all
// the way to the internet host, so the container's reply needs a return route on sw1 and fw1,
// and without them the ping dies.
func TestRecipeIPv6(t *testing.T) {
	t.Parallel()
	l := up(t, Options{})
	ctx := t.Context()
	h := l.Hosts["host1"]
	if want := netip.MustParseAddr("fd00:10:10:10::101"); h.Uplink6 != want || h.Segment6 != netip.MustParsePrefix("fd00:10:10:10::/64") {
		t.Errorf("host1 Uplink6 %v Segment6 %v, want %v in fd00:10:10:10::/64", h.Uplink6, h.Segment6, want)
	}
	// Both families at once: docker0 keeps its IPv4 address when it gains the IPv6 one.
	if _, err := l.SetDockerBridge(ctx, "host1", netip.MustParsePrefix("10.210.10.1/24")); err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParsePrefix("fd00:210:0:10::1/64")
	ctr, err := l.SetDockerBridge6(ctx, "host1", gw)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("fd00:210:0:10::2"); ctr != want {
		t.Errorf("container address %v, want %v", ctr, want)
	}
	if err := l.Ping(ctx, "ctr1", gw.Addr()); err != nil {
		t.Fatalf("container cannot reach docker0 over IPv6: %v", err)
	}
	// The forward path works: the host's uplink reaches the internet host over IPv6.
	if err := l.Ping(ctx, "host1", l.Internet6); err != nil {
		t.Fatalf("host1 cannot reach the internet host over IPv6: %v", err)
	}
	if err := l.Ping(ctx, "ctr1", l.Internet6); err == nil {
		t.Fatal("IPv6 ping from ctr1 to the internet works without return routes; the lab does not reproduce the problem")
	}
	if _, err := l.Vtysh(ctx, "sw1", "ipv6 route fd00:210:0:10::/64 "+h.Uplink6.String()); err != nil {
		t.Fatal(err)
	}
	// Only sw1's route: the reply still dies at fw1.
	if err := l.Ping(ctx, "ctr1", l.Internet6); err == nil {
		t.Fatal("IPv6 ping from ctr1 works with a return route on sw1 only; fw1 should still lack one")
	}
	if out, err := l.Exec(ctx, "fw1", "ip", "-6", "route", "add", "fd00:210:0:10::/64", "via", swToFw6.Addr().String()); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var pingErr error
	for range 5 {
		if pingErr = l.Ping(ctx, "ctr1", l.Internet6); pingErr == nil {
			break
		}
	}
	if pingErr != nil {
		t.Fatalf("IPv6 ping from ctr1 to the internet with return routes: %v", pingErr)
	}
	// The IPv4 path is unaffected and still lacks its routes.
	if err := l.Ping(ctx, "ctr1", l.Internet); err == nil {
		t.Error("IPv4 ping works with IPv6 return routes only")
	}
}

func TestSecondHost(t *testing.T) {
	t.Parallel()
	l := up(t, Options{SecondHost: true, Bip: netip.MustParsePrefix("10.210.20.1/24")})
	ctx := t.Context()
	if _, err := l.SetDockerBridge(ctx, "host2", netip.MustParsePrefix("10.210.30.1/24")); err != nil {
		t.Fatal(err)
	}
	// Up applied Options.Bip to host1.
	out, err := l.Exec(ctx, "ctr1", "ip", "-br", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "10.210.20.2/24") {
		t.Errorf("ctr1 eth0 = %q, want 10.210.20.2/24 from Options.Bip", out)
	}
	// Each host reaches the other segment's host through the switch.
	if err := l.Ping(ctx, "host2", l.Hosts["host1"].Uplink); err != nil {
		t.Error(err)
	}
	if _, err := l.Vtysh(ctx, "sw1", "ip route 10.210.30.0/24 10.10.30.101"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(ctx, "fw1", "ip", "route", "add", "10.210.30.0/24", "via", "10.10.20.1"); err != nil {
		t.Fatal(err)
	}
	var pingErr error
	for range 5 {
		if pingErr = l.Ping(ctx, "ctr2", l.Internet); pingErr == nil {
			break
		}
	}
	if pingErr != nil {
		t.Errorf("ctr2 to the internet with return routes: %v", pingErr)
	}
}

// TestUpAgainAfterDown: the CLI reuses one directory for every `lab up`.
func TestUpAgainAfterDown(t *testing.T) {
	t.Parallel()
	requireLab(t)
	dir := labDir(t)
	for i := range 2 {
		l, err := Up(t.Context(), Options{Dir: dir})
		if err != nil {
			t.Fatalf("Up #%d: %v", i+1, err)
		}
		s, err := l.Status(t.Context())
		if err != nil || !s.Healthy() {
			t.Errorf("Up #%d: status %v:\n%s", i+1, err, s)
		}
		if err := Down(dir); err != nil {
			t.Fatalf("Down #%d: %v", i+1, err)
		}
		// l still holds the records; none of them may exist any more.
		s, err = l.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range s.Namespaces {
			if n.Exists {
				t.Errorf("namespace %s exists after Down", n.Name)
			}
		}
		for _, p := range s.Processes {
			if p.Running {
				t.Errorf("%s (pid %d) runs after Down", p.Name, p.PID)
			}
		}
		if _, err := Load(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load after Down: %v, want ErrNotExist", err)
		}
	}
}

// TestUpFailureCleansUp: a failed Up removes what it made and nothing else.
func TestUpFailureCleansUp(t *testing.T) {
	t.Parallel()
	requireLab(t)
	name := randomName()
	// Someone else's namespace where the lab wants its fourth one.
	foreign := name + "-inet"
	if out, err := exec.Command("ip", "netns", "add", foreign).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", foreign).Run() })
	dir := labDir(t)
	_, err := Up(t.Context(), Options{Dir: dir, Name: name})
	if err == nil || !strings.Contains(err.Error(), foreign) {
		t.Fatalf("Up with %s taken: %v, want an error naming it", foreign, err)
	}
	for _, r := range []string{"mgmt", "sw1", "fw1"} {
		if _, err := os.Stat(filepath.Join("/var/run/netns", name+"-"+r)); err == nil {
			t.Errorf("namespace %s-%s left behind by a failed Up", name, r)
		}
	}
	if _, err := os.Stat(filepath.Join("/var/run/netns", foreign)); err != nil {
		t.Errorf("failed Up removed %s, which it did not create: %v", foreign, err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after a failed Up: %v, want none", err)
	}
}

func TestSetDockerBridgeRejects(t *testing.T) {
	t.Parallel()
	for _, bip := range []string{"10.210.10.0/24", "10.210.10.254/24", "10.210.10.1/31", "10.210.10.1/7", "fd00::1/64"} {
		if got, err := containerAddr(netip.MustParsePrefix(bip)); err == nil {
			t.Errorf("containerAddr(%s) = %v, want an error", bip, got)
		}
	}
	for bip, want := range map[string]string{"10.210.10.1/24": "10.210.10.2", "10.210.10.253/24": "10.210.10.254", "10.0.0.1/30": "10.0.0.2"} {
		got, err := containerAddr(netip.MustParsePrefix(bip))
		if err != nil || got.String() != want {
			t.Errorf("containerAddr(%s) = %v, %v; want %s", bip, got, err, want)
		}
	}
}

func TestSetDockerBridge6Rejects(t *testing.T) {
	t.Parallel()
	for _, gw := range []string{"fd00:210::/64", "fd00:210::1/127", "fd00:210::1/47", "10.210.10.1/24",
		"::ffff:10.0.0.1/120", "fe80::1/64", "ff02::1/64", "fd00:210::3/126", "2001:db8::ff/120"} {
		if got, err := containerAddr6(netip.MustParsePrefix(gw)); err == nil {
			t.Errorf("containerAddr6(%s) = %v, want an error", gw, got)
		}
	}
	for gw, want := range map[string]string{"fd00:210:0:10::1/64": "fd00:210:0:10::2", "2001:db8::fe/120": "2001:db8::ff", "2001:db8::1/126": "2001:db8::2"} {
		got, err := containerAddr6(netip.MustParsePrefix(gw))
		if err != nil || got.String() != want {
			t.Errorf("containerAddr6(%s) = %v, %v; want %s", gw, got, err, want)
		}
	}
}

// rootSnapshot is the root namespace's network state, without counters and lifetimes.
func rootSnapshot(t *testing.T) map[string]any {
	t.Helper()
	cmds := [][]string{
		{"ip", "-j", "addr"}, {"ip", "-j", "route", "show", "table", "all"},
		{"ip", "-j", "rule"}, {"ip", "-j", "link"},
	}
	if _, err := exec.LookPath("nft"); err == nil {
		cmds = append(cmds, []string{"nft", "-j", "list", "ruleset"})
	}
	snap := map[string]any{}
	for _, c := range cmds {
		out, err := exec.Command(c[0], c[1:]...).Output()
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		snap[strings.Join(c, " ")] = v
	}
	return snap
}

func TestRootNamespaceUnchanged(t *testing.T) {
	t.Parallel()
	requireLab(t)
	volatile := cmpopts.IgnoreMapEntries(func(k string, _ any) bool {
		return k == "valid_life_time" || k == "preferred_life_time" || k == "expires"
	})
	before := rootSnapshot(t)
	dir := labDir(t)
	l, err := Up(t.Context(), Options{Dir: dir, SecondHost: true})
	if err != nil {
		t.Fatal(err)
	}
	during := rootSnapshot(t)
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	after := rootSnapshot(t)
	if diff := cmp.Diff(during, before, volatile); diff != "" {
		t.Errorf("root namespace changed while the lab was up (-during +before):\n%s", diff)
	}
	if diff := cmp.Diff(after, before, volatile); diff != "" {
		t.Errorf("root namespace changed by Up and Down (-after +before):\n%s", diff)
	}
}

// leftovers lists what of a recorded lab still exists: namespaces, FRR runtime dirs, live
// recorded processes and pids inside the namespaces.
func leftovers(st state, pids []int) []string {
	var left []string
	for _, n := range st.Namespaces {
		if _, err := os.Stat(filepath.Join("/var/run/netns", n)); err == nil {
			left = append(left, "namespace "+n)
		}
	}
	for _, d := range st.RuntimeDirs {
		if _, err := os.Stat(d); err == nil {
			left = append(left, "dir "+d)
		}
	}
	for _, p := range st.Processes {
		if p.alive() {
			left = append(left, "process "+p.Name)
		}
	}
	for _, pid := range pids {
		if state, _, err := procStat(pid); err == nil && state != 'Z' {
			left = append(left, "pid "+strconv.Itoa(pid))
		}
	}
	return left
}

func readState(t *testing.T, dir string) state {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if err != nil {
		t.Fatal(err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	return sf.State
}

func TestDownAfterCrash(t *testing.T) {
	t.Parallel()
	requireLab(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Saves: 1 creating the lab, 8 namespaces, 1 FRR dir, 4 daemons, 1 when done; 0 = after Up.
	for _, after := range []int{3, 9, 11, 13, 0} {
		t.Run(fmt.Sprintf("killed after save %d", after), func(t *testing.T) {
			t.Parallel()
			dir := labDir(t)
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashAfter+"="+strconv.Itoa(after))
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v, want killed by SIGKILL: %s", err, out)
			}
			st := readState(t, dir)
			var pids []int
			for _, n := range st.Namespaces {
				var fi syscall.Stat_t
				if syscall.Stat(filepath.Join("/var/run/netns", n), &fi) == nil {
					pids = append(pids, pidsInNamespace(fi.Ino)...)
				}
			}
			if len(leftovers(st, pids)) == 0 {
				t.Fatalf("the crashed child left nothing behind; the test proves nothing (state %+v)", st)
			}
			if err := Down(dir); err != nil {
				t.Fatal(err)
			}
			if left := leftovers(st, pids); len(left) > 0 {
				t.Errorf("after Down: %v", left)
			}
			if err := Down(dir); err != nil {
				t.Errorf("second Down: %v", err)
			}
		})
	}
}

// TestDownSparesReusedPID: a recorded PID that now belongs to another process is not killed.
func TestDownSparesReusedPID(t *testing.T) {
	t.Parallel()
	requireLab(t)
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	_, start, err := procStat(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", sleep.Process.Pid))
	dir := labDir(t)
	l := &Lab{Dir: dir, Name: "rpreuse"}
	l.st.Processes = []process{
		{Name: "old zebra", PID: sleep.Process.Pid, StartTime: start - 1, Exe: exe},
		{Name: "other binary", PID: sleep.Process.Pid, StartTime: start, Exe: "/usr/lib/frr/zebra"},
	}
	if err := l.save(); err != nil {
		t.Fatal(err)
	}
	if err := Down(dir); err != nil {
		t.Fatal(err)
	}
	if state, _, err := procStat(sleep.Process.Pid); err != nil || state == 'Z' {
		t.Fatalf("Down killed pid %d, which is not the process the state file recorded", sleep.Process.Pid)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after Down: %v, want it removed", err)
	}
	// The same record with the right identity is stopped.
	l.st.Processes = []process{{Name: "sleep", PID: sleep.Process.Pid, StartTime: start, Exe: exe}}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(must(os.ReadFile(fmt.Sprintf("/proc/%d/stat", sleep.Process.Pid))), []byte(") Z ")) {
		t.Error("Down did not stop a process whose identity matches its record")
	}
}

func must[T any](v T, _ error) T { return v }

func TestWriteConfig(t *testing.T) {
	t.Parallel()
	l := up(t, Options{SecondHost: true})
	path := filepath.Join(t.TempDir(), "returnpath.yaml")
	if err := l.WriteConfig(path, "", "postgres:///returnpath?host=/tmp/pg"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		`listen: "198.18.0.1:8080"`,
		`database_url: "postgres:///returnpath?host=/tmp/pg"`,
		"hosts: 10.10.10.0/24", "hosts: 10.10.30.0/24",
		"address: 198.18.0.11:22", "address: 198.18.0.12:22",
		"password_file: " + strconv.Quote(l.Devices["sw1"].PasswordFile),
		"private_key_file: " + strconv.Quote(l.Devices["fw1"].KeyFile),
		"known_hosts: " + strconv.Quote(l.KnownHosts),
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	// Every file the config names exists; the password file holds the device user's password.
	pw, err := os.ReadFile(l.Devices["sw1"].PasswordFile)
	if err != nil || string(pw) != l.Devices["sw1"].Password || len(pw) < 16 {
		t.Errorf("sw1 password file: %v, %d bytes; want the device password", err, len(pw))
	}
	for _, f := range []string{l.Devices["fw1"].KeyFile, l.KnownHosts} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkUpDown builds and tears down the full lab (both hosts); it reports Up and Down
// separately.
func BenchmarkUpDown(b *testing.B) {
	requireLab(b)
	var up, down time.Duration
	for b.Loop() {
		dir := labDir(b)
		t0 := time.Now()
		l, err := Up(context.Background(), Options{Dir: dir, SecondHost: true})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := l.Down(); err != nil {
			b.Fatal(err)
		}
		up += t1.Sub(t0)
		down += time.Since(t1)
	}
	b.ReportMetric(float64(up.Milliseconds())/float64(b.N), "up-ms/op")
	b.ReportMetric(float64(down.Milliseconds())/float64(b.N), "down-ms/op")
}

// TestLiveLabs: the labs a lab going down must leave the users for are those registered with
// a state file still in place, and unregistered ones (built by an older returnpath) whose
// namespaces exist; never itself.
func TestLiveLabs(t *testing.T) {
	t.Parallel()
	labs, netns := t.TempDir(), t.TempDir()
	alive, gone := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(alive, stateFileName), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"self": alive, "alive": alive, "gone": gone} {
		if err := os.WriteFile(filepath.Join(labs, name), []byte(dir+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"self-mgmt", "self-sw1", "old-mgmt", "old-sw1", "half-mgmt", "alive-mgmt", "alive-sw1", "other-sw1"} {
		if err := os.WriteFile(filepath.Join(netns, ns), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(liveLabs(labs, netns, "self"), []string{"alive", "old"}); diff != "" {
		t.Errorf("liveLabs (-got +want):\n%s", diff)
	}
	if got := liveLabs(filepath.Join(labs, "missing"), filepath.Join(netns, "missing"), "self"); len(got) != 0 {
		t.Errorf("liveLabs with no registry and no namespaces = %v", got)
	}
}

// machineTrace is what the labs add to the machine outside their directories.
func machineTrace() []string {
	var out []string
	for _, u := range []string{userFRR, userLinux} {
		if _, err := user.Lookup(u); err == nil {
			out = append(out, "user "+u)
		}
	}
	for _, p := range []string{sudoersFile, machineDir, "/home/" + userFRR, "/home/" + userLinux} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestDownLeavesNoTrace: after Up and Down the machine is as before: the lab directory (which
// Up created) is gone with its keys, passwords and config, no namespace of the lab remains,
// and, when no other lab is up, neither do the lab users, their homes, the sudoers drop-in nor
// the machine-wide state. While another lab is up (other packages' tests run labs at the same
// time) they must stay: that lab logs in as the users. Not parallel, so that this package's
// other labs are not up meanwhile.
func TestDownLeavesNoTrace(t *testing.T) {
	requireLab(t)
	parent := labDir(t)
	if err := os.Chmod(parent, 0o711); err != nil { // sshd reads authorized keys as the lab users
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "lab") // missing: Up creates it, so it is the lab's
	l, err := Up(t.Context(), Options{Dir: dir, SecondHost: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := machineTrace(); !slices.Contains(got, "user "+userFRR) || !slices.Contains(got, sudoersFile) {
		t.Fatalf("while the lab is up the machine holds %v, want its users and sudoers drop-in", got)
	}
	if err := Down(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory after Down: %v, want it gone", err)
	}
	nss, _ := os.ReadDir(netnsDir)
	for _, e := range nss {
		if strings.HasPrefix(e.Name(), l.Name+"-") {
			t.Errorf("namespace %s after Down", e.Name())
		}
	}
	others := liveLabs(labsDir, netnsDir, l.Name)
	got := machineTrace()
	switch {
	case len(others) == 0 && len(got) > 0:
		t.Errorf("the last lab went down and left %v on the machine", got)
	case len(others) > 0 && !slices.Contains(got, "user "+userFRR):
		t.Errorf("Down removed the lab users while labs %v are up", others)
	case len(others) > 0:
		t.Logf("labs %v are still up: the users stay for them (%v)", others, got)
	}
}

// TestDownKeepsADirectoryItDidNotMake: a lab brought up in a directory that already held
// something leaves that directory and its contents alone.
func TestDownKeepsADirectoryItDidNotMake(t *testing.T) {
	t.Parallel()
	requireLab(t)
	dir := labDir(t)
	mine := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(mine, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(t.Context(), Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := Down(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("Down removed a file it did not make: %v", err)
	}
}

// TestReleaseMachine: a lab going down deregisters itself; the shared sudoers drop-in and the
// machine-wide state go only with the last lab up.
func TestReleaseMachine(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	m := machine{dir: filepath.Join(root, "state"), sudoers: filepath.Join(root, "sudoers"), netns: filepath.Join(root, "netns")}
	m.labs = filepath.Join(m.dir, "labs")
	otherDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(otherDir, stateFileName), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{m.labs, m.netns} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(m.sudoers, "x")
	write(filepath.Join(m.labs, "first"), otherDir)
	write(filepath.Join(m.labs, "second"), otherDir)

	if err := m.release(t.Context(), "first"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.labs, "first")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("first is still registered: %v", err)
	}
	if _, err := os.Stat(m.sudoers); err != nil {
		t.Errorf("sudoers drop-in removed while second is up: %v", err)
	}

	if err := m.release(t.Context(), "second"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{m.sudoers, m.dir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the last lab went down: %v, want it gone", p, err)
		}
	}
	if err := m.release(t.Context(), "second"); err != nil {
		t.Errorf("release again: %v", err)
	}
}
