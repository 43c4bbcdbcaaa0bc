package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// peersPool is where every tool's routes go; the counts and the clean-up between jobs look
// only inside it.
var peersPool = netip.MustParsePrefix("172.16.0.0/12")

// peersResolve makes sw1 resolve the next hops of hosts registered by register (10.10.100.1
// and up) through host1's uplink, so that their routes are installed in the kernel FIB like
// the peers' routes via host1.
const peersResolve = "ip route 10.10.0.0/16 10.10.10.101"

// BenchmarkPeers measures, in one run on the lab's FRR switch, returnpath beside Ansible's
// frr.frr cli_config, netmiko's send_config_set and one raw OpenSSH pipe with FRR's bulk
// wrapper (issue 14), and logs the comparison as a markdown table. Every job is timed from the
// start of its process (or first request) until the switch's kernel FIB holds every route, and
// checked by counting the routes in FRR's running configuration and in the FIB; the switch is
// cleared between jobs. `make bench-peers` installs ansible, python3-netmiko and sshpass first.
// PEERS_N (default 1000) sets the bulk job's size; PEERS_ONE (default 5) how many single-route
// runs each tool gets (the median is shown); PEERS_ANSIBLE_N (default PEERS_N) caps Ansible's
// bulk runs, whose cells then say their size.
//
//	RETURNPATH_REQUIRE_LAB=1 go test -run '^$' -bench BenchmarkPeers -benchtime 1x -timeout 60m ./internal/e2e/
func BenchmarkPeers(b *testing.B) {
	l := labtest.Require(b)
	for _, tool := range []string{"ansible-playbook", "/usr/bin/python3", "ssh"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed (make bench-peers installs ansible, python3-netmiko and sshpass)", tool)
		}
	}
	n := envInt(b, "PEERS_N", 1000)
	ones := envInt(b, "PEERS_ONE", 5)
	for b.Loop() {
		ctx := context.Background()
		loadBefore := loadavg()
		p := newPeers(b, l)
		defer p.clear()
		if _, err := l.Vtysh(ctx, "sw1", peersResolve); err != nil {
			b.Fatal(err)
		}
		defer l.Vtysh(ctx, "sw1", "no "+peersResolve) //nolint:errcheck // best effort: the lab goes down after the run

		type row struct{ job, one, bulk, tuned string }
		var rows []row

		// returnpath: the service as its own process, one segment routed via sw1 alone.
		listen := l.Service.String() + ":8094"
		url := "http://" + listen
		cfg := peersConfig(b, l, pgtest.URL(b), listen)
		svc := startService(b, cfg, url)
		b.Cleanup(svc.stop)
		boot := token(b, cfg, "boot", "bootstrap")
		one := p.median(ones, func(i int) error {
			name := fmt.Sprintf("one%d", i)
			out, err := exec.Command(binary(b), "host", "register", "--server", url, "--token", boot,
				"--name", name, "--address", fmt.Sprintf("10.10.10.%d", 150+i), "--wait", "60s").CombinedOutput()
			if err != nil {
				return fmt.Errorf("host register --wait: %v\n%s", err, out)
			}
			return nil
		}, 1)
		bulk := p.timed(n, func() error { register(b, url, boot, 0, n); return nil })
		svc.stop()
		rows = append(rows, row{"returnpath (`host register --wait`; 16 clients `POST /v1/hosts`, review record, push, read-back)", one, bulk, "n/a"})

		// Ansible: one playbook run per route; then one run of n cli_config tasks on one
		// persistent connection, with the default and the tuned buffer read timeout.
		// PEERS_ANSIBLE_N caps Ansible's bulk runs: at about a second per route on a quiet
		// machine, its two runs of 1,000 take over half an hour. A capped cell says its size.
		a := newAnsible(b, l)
		one = p.median(ones, func(i int) error { return a.run(peersRoute(i), 1, "") }, 1)
		an := min(envInt(b, "PEERS_ANSIBLE_N", n), n)
		sized := func(cell string) string {
			if an == n {
				return cell
			}
			return fmt.Sprintf("%s for %d routes", cell, an)
		}
		bulk = sized(p.timed(an, func() error { return a.run(0, an, "") }))
		tuned := sized(p.timed(an, func() error { return a.run(0, an, "0.01") }))
		rows = append(rows, row{"Ansible `frr.frr` + `ansible.netcommon.cli_config` (network_cli)", one, bulk, tuned})

		// netmiko: one send_config_set per run.
		script := netmikoScript(b, l)
		one = p.median(ones, func(i int) error { return runNetmiko(script, peersRoute(i), 1) }, 1)
		bulk = p.timed(n, func() error { return runNetmiko(script, 0, n) })
		rows = append(rows, row{"netmiko `send_config_set` (python3-netmiko, device_type cisco_ios)", one, bulk, "n/a"})

		// One raw OpenSSH session, no PTY, the lines inside FRR's bulk wrapper.
		one = p.median(ones, func(i int) error { return rawPipe(l, peersRoute(i), 1) }, 1)
		bulk = p.timed(n, func() error { return rawPipe(l, 0, n) })
		rows = append(rows, row{"one raw `ssh` pipe, `XFRR_start_configuration` ... `XFRR_end_configuration` (the limit)", one, bulk, "n/a"})

		var t strings.Builder
		fmt.Fprintf(&t, "| tool | one route, process start to route in the FIB (median of %d) | %d routes until all are in the FIB | %d routes, `ansible_buffer_read_timeout=0.01` |\n|---|---|---|---|\n", ones, n, n)
		for _, r := range rows {
			fmt.Fprintf(&t, "| %s | %s | %s | %s |\n", r.job, r.one, r.bulk, r.tuned)
		}
		b.Logf("peer comparison on the lab's FRR switch (load average before: %s, after: %s):\n%s", loadBefore, loadavg(), t.String())
	}
}

// peersRoute is the first route index of single-route run i (away from the bulk jobs' routes).
func peersRoute(i int) int { return 3000 + i }

// peersPrefix is the i'th route's prefix: 172.20.0.0/24 upwards (/24s of peersPool).
func peersPrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(20 + i/256), byte(i % 256), 0}), 24)
}

func peersLines(first, n int) []string {
	lines := make([]string, n)
	for i := range n {
		lines[i] = "ip route " + peersPrefix(first+i).String() + " 10.10.10.101"
	}
	return lines
}

type peers struct {
	b *testing.B
	l *lab.Lab
}

func newPeers(b *testing.B, l *lab.Lab) *peers {
	p := &peers{b: b, l: l}
	p.clear()
	return p
}

// clear removes every route of the pool from sw1 and waits until the FIB holds none.
func (p *peers) clear() {
	if err := clearSwitch(context.Background(), p.l, peersPool); err != nil {
		p.b.Fatal(err)
	}
	if err := p.waitFIB(0, time.Minute); err != nil {
		p.b.Fatal(err)
	}
}

// fib counts sw1's kernel routes inside the pool.
func (p *peers) fib() int {
	out, err := p.l.Exec(context.Background(), "sw1", "ip", "-4", "route", "show")
	if err != nil {
		p.b.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			if pr, err := netip.ParsePrefix(f[0]); err == nil && inPool(peersPool, pr) {
				n++
			}
		}
	}
	return n
}

// waitFIB polls sw1's FIB every 10 ms until it holds want routes of the pool.
func (p *peers) waitFIB(want int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		got := p.fib()
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sw1's FIB holds %d routes of %s after %s, want %d", got, peersPool, within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// timed runs job, which must leave n routes on sw1, and returns the time until the FIB holds
// them, after checking FRR's running configuration holds them too; then it clears the switch.
func (p *peers) timed(n int, job func() error) string {
	start := time.Now()
	if err := job(); err != nil {
		return p.failed(err)
	}
	if err := p.waitFIB(n, 5*time.Minute); err != nil {
		return p.failed(err)
	}
	took := time.Since(start)
	if got := len(switchPrefixes(p.b, p.l, peersPool)); got != n {
		return p.failed(fmt.Errorf("sw1's running configuration holds %d routes of %s, want %d", got, peersPool, n))
	}
	p.clear()
	return fmt.Sprintf("%.2f s", took.Seconds())
}

// median runs job(i) k times, each adding per routes, and returns the median time.
func (p *peers) median(k int, job func(i int) error, per int) string {
	var ds []time.Duration
	for i := range k {
		start := time.Now()
		if err := job(i); err != nil {
			return p.failed(err)
		}
		if err := p.waitFIB(per*(i+1), time.Minute); err != nil {
			return p.failed(err)
		}
		ds = append(ds, time.Since(start))
	}
	if got := len(switchPrefixes(p.b, p.l, peersPool)); got != per*k {
		return p.failed(fmt.Errorf("sw1's running configuration holds %d routes of %s, want %d", got, peersPool, per*k))
	}
	p.clear()
	slices.Sort(ds)
	return fmt.Sprintf("%.2f s", ds[len(ds)/2].Seconds())
}

// failed logs a tool's failure, clears the switch and returns the table cell that says so: one
// tool that cannot run here does not cost the others' figures.
func (p *peers) failed(err error) string {
	p.b.Errorf("%v", err)
	p.clear()
	return "failed (see the log)"
}

// peersConfig is the service's configuration for the comparison: one segment whose return path
// is sw1 alone, auto-approval, no registration limit.
func peersConfig(tb testing.TB, l *lab.Lab, dbURL, listen string) string {
	tb.Helper()
	sw := l.Devices["sw1"]
	cfg := fmt.Sprintf(`listen: %q
database_url: %q
log_level: warn
pools:
  - {name: docker, prefix: 172.16.0.0/13, subnet_length: 24}
segments:
  - name: fleet
    hosts: 10.10.0.0/16
    pool: docker
    route_via:
      - {device: sw1, next_hop: host}
devices:
  - {name: sw1, platform: frr, transport: ssh, address: %q, username: %s, password_file: %q, known_hosts: %q, connect_timeout: 5s}
approval:
  four_eyes: true
  auto_approve: [{action: add}, {action: remove}]
limits:
  registrations_per_minute: 0
`, listen, dbURL, sw.Mgmt.String(), sw.Username, sw.PasswordFile, l.KnownHosts)
	p := filepath.Join(tb.TempDir(), "returnpath.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

type ansible struct {
	dir string
	env []string
}

// newAnsible writes an inventory for sw1 (network_cli, frr.frr.frr, the lab's password) and a
// playbook that adds routes first..first+count-1 with one cli_config task each.
func newAnsible(b *testing.B, l *lab.Lab) *ansible {
	dir := b.TempDir()
	sw := l.Devices["sw1"]
	inv := fmt.Sprintf(`all:
  hosts:
    sw1:
      ansible_host: %s
      ansible_connection: ansible.netcommon.network_cli
      ansible_network_os: frr.frr.frr
      ansible_user: %s
      ansible_password: %q
      ansible_host_key_checking: false
      ansible_python_interpreter: /usr/bin/python3
`, sw.Mgmt.Addr(), sw.Username, sw.Password)
	play := `- hosts: sw1
  gather_facts: false
  tasks:
    - name: static route
      ansible.netcommon.cli_config:
        config: "ip route 172.{{ 20 + (item // 256) }}.{{ item % 256 }}.0/24 10.10.10.101"
      loop: "{{ range(first | int, first | int + count | int) | list }}"
`
	for name, text := range map[string]string{"inventory.yml": inv, "routes.yml": play} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return &ansible{dir: dir, env: append(os.Environ(), "HOME="+dir, "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_NOCOLOR=1", "ANSIBLE_PERSISTENT_COMMAND_TIMEOUT=300")}
}

// run runs the playbook once for routes first..first+count-1; readTimeout, when set, is
// ansible_buffer_read_timeout.
func (a *ansible) run(first, count int, readTimeout string) error {
	args := []string{"-i", filepath.Join(a.dir, "inventory.yml"), filepath.Join(a.dir, "routes.yml"),
		"-e", "first=" + strconv.Itoa(first), "-e", "count=" + strconv.Itoa(count)}
	if readTimeout != "" {
		args = append(args, "-e", "ansible_buffer_read_timeout="+readTimeout)
	}
	cmd := exec.Command("ansible-playbook", args...)
	cmd.Env = a.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ansible-playbook: %v\n%s", err, tail(out, 3000))
	}
	return nil
}

// netmikoScript writes a python script that adds routes argv[1]..argv[1]+argv[2]-1 to sw1 in
// one send_config_set. It runs under Debian's /usr/bin/python3, which has python3-netmiko,
// whatever python3 comes first on the PATH.
func netmikoScript(b *testing.B, l *lab.Lab) string {
	sw := l.Devices["sw1"]
	script := fmt.Sprintf(`import sys
from netmiko import ConnectHandler
first, count = int(sys.argv[1]), int(sys.argv[2])
lines = ["ip route 172.%%d.%%d.0/24 10.10.10.101" %% (20 + i // 256, i %% 256) for i in range(first, first + count)]
c = ConnectHandler(device_type="cisco_ios", host=%q, username=%q, password=open(%q).read().strip())
c.send_config_set(lines)
c.disconnect()
`, sw.Mgmt.Addr().String(), sw.Username, sw.PasswordFile)
	p := filepath.Join(b.TempDir(), "netmiko_routes.py")
	if err := os.WriteFile(p, []byte(script), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

func runNetmiko(script string, first, count int) error {
	if out, err := exec.Command("/usr/bin/python3", script, strconv.Itoa(first), strconv.Itoa(count)).CombinedOutput(); err != nil {
		return fmt.Errorf("netmiko: %v\n%s", err, tail(out, 3000))
	}
	return nil
}

// rawPipe sends the routes through one OpenSSH session without a PTY (vtysh reads its
// standard input), with the lab's client key and known_hosts, inside FRR's bulk wrapper.
func rawPipe(l *lab.Lab, first, count int) error {
	sw := l.Devices["sw1"]
	in := "configure terminal\nXFRR_start_configuration\n" + strings.Join(peersLines(first, count), "\n") + "\nXFRR_end_configuration\nend\n"
	cmd := exec.Command("ssh", "-T", "-i", sw.KeyFile, "-o", "UserKnownHostsFile="+l.KnownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", sw.Username+"@"+sw.Mgmt.Addr().String())
	cmd.Stdin = strings.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ssh pipe: %v\n%s", err, tail(out, 3000))
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
