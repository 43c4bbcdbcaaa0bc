package lab

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFleet starts two fleet devices beside the default topology, logs in to each over SSH
// with fw1's key and strict host key checking, adds a route via FleetNextHop through sudo as
// the Linux driver does, and stops the fleet: its namespaces and sshds are gone, and the lab's
// state no longer lists them, while sw1 and fw1 still answer.
func TestFleet(t *testing.T) {
	l := up(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, err := l.StartFleet(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(f.Devices); got != 2 {
		t.Fatalf("fleet has %d devices, want 2", got)
	}
	for _, d := range f.Devices {
		route := "10.128.0.0/26 via " + FleetNextHop.String() + " proto 202"
		if out, err := ssh(ctx, t, l, f.KnownHosts, d.Username, d.KeyFile, "", d.Mgmt, "",
			"sudo", "-n", "ip", "route", "add", route); err != nil {
			t.Fatalf("%s: ip route add over ssh: %v\n%s", d.Name, err, out)
		}
		out, err := l.Exec(ctx, d.Namespace, "ip", "route", "show", "proto", "202")
		if err != nil || !strings.HasPrefix(string(out), "10.128.0.0/26 via "+FleetNextHop.String()) {
			t.Errorf("%s: routes with proto 202: %q, %v", d.Name, out, err)
		}
	}
	if _, err := ssh(ctx, t, l, f.KnownHosts, "nobody", f.Devices[0].KeyFile, "", f.Devices[0].Mgmt, "", "true"); err == nil {
		t.Errorf("%s let nobody log in", f.Devices[0].Name)
	}
	if _, err := l.StartFleet(ctx, FleetSize+1); err == nil {
		t.Errorf("StartFleet(%d) succeeded", FleetSize+1)
	}

	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	st := readState(t, l.Dir)
	for _, d := range f.Devices {
		if _, err := os.Stat(filepath.Join(netnsDir, d.Namespace)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still there after Stop: %v", d.Namespace, err)
		}
		if slices.Contains(st.Namespaces, d.Namespace) {
			t.Errorf("state still lists namespace %s", d.Namespace)
		}
		for _, p := range st.Processes {
			if p.Namespace == d.Namespace {
				t.Errorf("state still lists %s (pid %d)", p.Name, p.PID)
			}
		}
	}
	if err := f.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := l.Vtysh(ctx, "sw1", "show version"); err != nil {
		t.Errorf("sw1 after the fleet stopped: %v", err)
	}
	if err := l.Ping(ctx, "mgmt", netip.MustParseAddr("198.18.0.12")); err != nil {
		t.Errorf("fw1 after the fleet stopped: %v", err)
	}
}
