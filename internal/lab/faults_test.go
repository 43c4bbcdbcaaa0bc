package lab

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalAndFRRLog: SIGSTOP stops the named daemon and SIGCONT resumes it; with "log
// commands", staticd's log names every route line it executed.
func TestSignalAndFRRLog(t *testing.T) {
	t.Parallel()
	l := up(t, Options{})
	ctx := context.Background()
	state := func(daemon string) byte {
		t.Helper()
		l.mu.Lock()
		procs := append([]process(nil), l.st.Processes...)
		l.mu.Unlock()
		for _, p := range procs {
			if p.Name == daemon {
				s, _, err := procStat(p.PID)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		}
		t.Fatalf("no daemon %s", daemon)
		return 0
	}
	if err := l.Signal("sw1 staticd", syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if !poll(2*time.Second, func() bool { return state("sw1 staticd") == 'T' }) {
		t.Errorf("after SIGSTOP staticd is in state %c, want T", state("sw1 staticd"))
	}
	if err := l.Signal("sw1 staticd", syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !poll(2*time.Second, func() bool { return state("sw1 staticd") != 'T' }) {
		t.Errorf("after SIGCONT staticd is still stopped")
	}
	if err := l.Signal("sw1 bgpd", syscall.SIGCONT); err == nil {
		t.Error("Signal to a daemon the lab does not run succeeded")
	}

	log, err := l.FRRLog("sw1", "staticd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Vtysh(ctx, "sw1", "log commands", "ip route 172.30.1.0/24 10.10.10.101"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "# ip route 172.30.1.0/24 10.10.10.101") {
		t.Errorf("%s does not show the route line:\n%s", log, b)
	}
	if _, err := l.FRRLog("fw1", "staticd"); err == nil {
		t.Error("FRRLog of the Linux firewall succeeded")
	}
}
