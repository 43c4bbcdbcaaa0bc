package lab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// WriteConfig writes a returnpath configuration file for this lab to path: the docker pool,
// one segment per host, both devices with their credentials files. listen defaults to the
// mgmt bridge address port 8080. With Options.IPv6 (DualStack) it is dual stack: an IPv6
// pool of /64s, each segment's pool6 and hosts6, and fw1's next hop per family.
func (l *Lab) WriteConfig(path string, listen string, databaseURL string) error {
	if listen == "" {
		listen = l.Service.String() + ":8080"
	}
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# returnpath configuration for lab %s (written by internal/lab)\n", l.Name)
	fmt.Fprintf(&b, "listen: %s\ndatabase_url: %s\n", q(listen), q(databaseURL))
	fmt.Fprintf(&b, "pools:\n  - {name: docker, prefix: %s, subnet_length: 24}\n", poolPrefix)
	if l.DualStack {
		fmt.Fprintf(&b, "  - {name: docker6, prefix: %s, subnet_length: 64}\n", poolPrefix6)
	}
	b.WriteString("segments:\n")
	fw := l.Devices["fw1"]
	for i, name := range []string{"host1", "host2"} {
		h, ok := l.Hosts[name]
		if !ok {
			continue
		}
		if !l.DualStack {
			fmt.Fprintf(&b, `  - name: rack%d
    hosts: %s
    pool: docker
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: %s}
`, i+1, h.Segment, swToFw.Addr())
			continue
		}
		fmt.Fprintf(&b, `  - name: rack%d
    hosts: %s
    hosts6: %s
    pool: docker
    pool6: docker6
    route_via:
      - {device: sw1, next_hop: host}
      - {device: fw1, next_hop: {ipv4: %s, ipv6: %s}}
`, i+1, h.Segment, h.Segment6, swToFw.Addr(), swToFw6.Addr())
	}
	sw := l.Devices["sw1"]
	fmt.Fprintf(&b, `devices:
  - name: sw1
    platform: frr
    transport: ssh
    address: %s
    vrf: default
    username: %s
    password_file: %s
    known_hosts: %s
  - name: fw1
    platform: linux
    transport: ssh
    address: %s
    vrf: default
    username: %s
    private_key_file: %s
    known_hosts: %s
    linux: {sudo: true, proto: %d}
approval:
  four_eyes: true
  auto_approve: []
`, sw.Mgmt, sw.Username, q(sw.PasswordFile), q(l.KnownHosts),
		fw.Mgmt, fw.Username, q(fw.KeyFile), q(l.KnownHosts), linuxProto)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("lab config: %w", err)
	}
	return nil
}
