package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"time"
)

// required lists the programs the lab runs, with the Debian package that provides each.
var required = []struct{ path, pkg string }{
	{"/usr/sbin/ip", "iproute2"},
	{"/usr/sbin/sysctl", "procps"},
	{"/usr/sbin/nft", "nftables"},
	{"/usr/bin/ping", "iputils-ping"},
	{"/usr/lib/frr/zebra", "frr"},
	{"/usr/lib/frr/staticd", "frr"},
	{"/usr/bin/vtysh", "frr"},
	{sshdPath, "openssh-server"},
	{"/usr/bin/ssh-keygen", "openssh-client"},
	{"/usr/bin/sudo", "sudo"},
	{"/usr/sbin/visudo", "sudo"},
	{"/usr/sbin/useradd", "passwd"},
	{"/usr/sbin/usermod", "passwd"},
	{"/usr/sbin/chpasswd", "passwd"},
}

// Check reports whether this machine can run the lab: nil, or an error naming everything that
// is missing (root, network namespace support, programs with the Debian package to install).
// It creates and deletes a probe namespace with a bridge and a veth pair.
func Check() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("the lab needs root (network namespaces, users, sshd)"))
	}
	for _, r := range required {
		if _, err := exec.LookPath(r.path); err != nil {
			errs = append(errs, fmt.Errorf("%s is missing (apt-get install %s)", r.path, r.pkg))
		}
	}
	if _, err := user.LookupGroup("frrvty"); err != nil {
		errs = append(errs, errors.New("group frrvty is missing (apt-get install frr)"))
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		errs = append(errs, errors.New("the kernel has no network namespaces (/proc/self/ns/net missing)"))
	}
	if len(errs) == 0 {
		if err := probeNamespace(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab unavailable: %w", errors.Join(errs...))
	}
	return nil
}

// probeNamespace proves that namespaces, veth pairs and bridges work, entirely inside a
// throwaway namespace.
func probeNamespace() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := "rpcheck-" + randomName()
	if _, err := run(ctx, nil, "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("network namespaces do not work: %w", err)
	}
	defer deleteNamespace(ns) //nolint:errcheck // best effort; the probe's error matters
	err := ipBatch(ctx, ns, []string{
		"link add name a type veth peer name b",
		"link add name br type bridge",
		"link set dev a master br",
	})
	if err != nil {
		return fmt.Errorf("veth or bridge links do not work in a namespace (kernel modules veth, bridge): %w", err)
	}
	return nil
}
