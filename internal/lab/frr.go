package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// frrRunRoot is FRR's state directory. With -N <ns>, daemons and vtysh use <frrRunRoot>/<ns>
// for sockets; the lab also keeps that namespace's frr.conf and vtysh.conf there (vtysh
// runs as rpfrr and must read them; the lab dir may not be readable for it).
const frrRunRoot = "/var/run/frr"

func frrConfig(d Device) string {
	v6 := ""
	if hasIPv6(d) {
		v6 = "ipv6 route ::/0 " + fwInside6.Addr().String() + "\n"
	}
	return fmt.Sprintf(`frr defaults traditional
hostname %s
!
ip route 0.0.0.0/0 %s
%s!
`, d.Name, fwInside.Addr(), v6)
}

// hasIPv6 reports whether the switch has IPv6 links: sw1 does; sw2, the redundant twin of
// Options.SecondSwitch, is IPv4 only.
func hasIPv6(d Device) bool { return d.Name == "sw1" }

// startFRR starts zebra and staticd for device d in its namespace and waits until the default
// route from its configuration is in the kernel.
func (l *Lab) startFRR(ctx context.Context, d Device) error {
	dir := filepath.Join(frrRunRoot, d.Namespace)
	if err := l.record(func(s *state) { s.RuntimeDirs = append(s.RuntimeDirs, dir) }); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("frr %s: %w", d.Name, err)
	}
	if u, err := user.Lookup("frr"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("frr %s: %w", d.Name, err)
		}
	}
	conf := filepath.Join(dir, "frr.conf")
	// vtysh takes its prompt's hostname from its own vtysh.conf.
	if err := os.WriteFile(filepath.Join(dir, "vtysh.conf"), []byte("hostname "+d.Name+"\n"), 0o644); err != nil {
		return fmt.Errorf("frr %s: %w", d.Name, err)
	}
	if err := os.WriteFile(conf, []byte(frrConfig(d)), 0o644); err != nil {
		return fmt.Errorf("frr %s: %w", d.Name, err)
	}
	for _, daemon := range []string{"zebra", "staticd"} {
		pid := filepath.Join(dir, daemon+".pid")
		log := filepath.Join(l.Dir, d.Name, daemon+".log")
		if err := l.startDaemon(ctx, d.Name+" "+daemon, d.Namespace, pid, log,
			"/usr/lib/frr/"+daemon, "-N", d.Namespace, "-d", "-f", conf, "-i", pid, "-P", "0",
			"--log", "file:"+filepath.Join(dir, daemon+".log")); err != nil {
			return err
		}
	}
	families := []string{"-4"}
	if hasIPv6(d) {
		families = append(families, "-6") // tests ping over IPv6 right after Up
	}
	for _, fam := range families {
		if !poll(5*time.Second, func() bool {
			out, err := run(ctx, nil, "ip", fam, "-n", d.Namespace, "route", "show", "default")
			return err == nil && len(bytes.TrimSpace(out)) > 0
		}) {
			return fmt.Errorf("frr %s: default route (ip %s) not installed after 5s", d.Name, fam)
		}
	}
	return nil
}

// execWords are first words of vtysh commands that run outside configuration mode.
var execWords = map[string]bool{"show": true, "clear": true, "write": true, "ping": true,
	"traceroute": true, "configure": true, "terminal": true, "end": true, "do": true}

// Vtysh runs commands on an FRR device directly (not over SSH), for test setup such as adding
// a foreign route or deleting one by hand. If any command is not an exec command (show,
// clear, ...), the batch runs in configuration mode. Output lines starting with "%" (FRR's
// errors) make it fail.
func (l *Lab) Vtysh(ctx context.Context, device string, cmds ...string) (string, error) {
	d, ok := l.Devices[device]
	if !ok || d.Platform != "frr" {
		return "", fmt.Errorf("lab %s: no FRR device %q", l.Name, device)
	}
	args := []string{"ip", "netns", "exec", d.Namespace, "vtysh", "-N", d.Namespace, "--config_dir", frrRunRoot}
	for _, c := range cmds {
		if f := strings.Fields(c); len(f) > 0 && !execWords[f[0]] {
			args = append(args, "-c", "configure terminal")
			break
		}
	}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := run(ctx, nil, args...)
	if err != nil {
		return string(out), err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "%") {
			return string(out), fmt.Errorf("vtysh on %s: %s", device, strings.TrimSpace(line))
		}
	}
	return string(out), nil
}
