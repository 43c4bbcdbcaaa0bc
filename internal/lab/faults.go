package lab

import (
	"fmt"
	"path/filepath"
	"syscall"
)

// Signal sends sig to one of the lab's daemons, named as Status names them ("sw1 staticd"),
// for fault injection: SIGSTOP makes a device stall mid-session, SIGCONT lets it go on. The
// daemon must still be the process the lab started (PID reuse is checked).
func (l *Lab) Signal(daemon string, sig syscall.Signal) error {
	l.mu.Lock()
	procs := append([]process(nil), l.st.Processes...)
	l.mu.Unlock()
	for _, p := range procs {
		if p.Name != daemon {
			continue
		}
		if !p.alive() {
			return fmt.Errorf("lab %s: daemon %s (pid %d) is not running", l.Name, daemon, p.PID)
		}
		if err := syscall.Kill(p.PID, sig); err != nil {
			return fmt.Errorf("lab %s: signal %v to %s (pid %d): %w", l.Name, sig, daemon, p.PID, err)
		}
		return nil
	}
	return fmt.Errorf("lab %s: no daemon %q", l.Name, daemon)
}

// FRRLog returns the path of an FRR daemon's log file on an FRR device, e.g. staticd's on
// sw1, where "log commands" records every configuration line the daemon executes.
func (l *Lab) FRRLog(device, daemon string) (string, error) {
	d, ok := l.Devices[device]
	if !ok || d.Platform != "frr" {
		return "", fmt.Errorf("lab %s: no FRR device %q", l.Name, device)
	}
	if daemon != "zebra" && daemon != "staticd" {
		return "", fmt.Errorf("lab %s: no FRR daemon %q (zebra or staticd)", l.Name, daemon)
	}
	return filepath.Join(frrRunRoot, d.Namespace, daemon+".log"), nil
}
