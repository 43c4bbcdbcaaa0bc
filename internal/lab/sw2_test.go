package lab

import (
	"strings"
	"testing"
	"time"
)

// TestSecondSwitch: sw2 is a second FRR switch reachable over SSH like sw1, on host1's link
// and on the firewall's inside link, so that a route it is given resolves and is installed;
// a test names sw2 in its own configuration (WriteConfig's stays the two-device recipe).
func TestSecondSwitch(t *testing.T) {
	t.Parallel()
	l := up(t, Options{SecondSwitch: true})
	ctx := t.Context()
	sw2, ok := l.Devices["sw2"]
	if !ok {
		t.Fatalf("lab has no sw2: %v", l.Devices)
	}
	out, err := ssh(ctx, t, l, l.KnownHosts, sw2.Username, "", sw2.PasswordFile, sw2.Mgmt, "show running-config\nexit\n")
	if err != nil {
		t.Fatalf("ssh to sw2: %v: %s", err, out)
	}
	for _, want := range []string{"sw2# ", "ip route 0.0.0.0/0 10.10.20.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("sw2 vtysh session lacks %q:\n%s", want, out)
		}
	}
	host1 := l.Hosts["host1"]
	if err := l.Ping(ctx, "sw2", host1.Uplink); err != nil {
		t.Errorf("sw2 cannot reach host1's uplink: %v", err)
	}
	if _, err := l.Vtysh(ctx, "sw2", "ip route 10.210.77.0/24 "+host1.Uplink.String()); err != nil {
		t.Fatal(err)
	}
	if !poll(5*time.Second, func() bool {
		b, err := l.Exec(ctx, "sw2", "ip", "route", "show", "10.210.77.0/24")
		return err == nil && strings.Contains(string(b), "via "+host1.Uplink.String())
	}) {
		t.Errorf("sw2 did not install 10.210.77.0/24 via %s in its kernel", host1.Uplink)
	}
}
