package labtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/returnpath/returnpath/internal/lab"
)

// TestSweep: a lab whose owning test process died is torn down by the next run; one whose
// owner lives is left alone.
func TestSweep(t *testing.T) {
	Require(t) // needs root and FRR like any lab
	mk := func(owner string) (*lab.Lab, string) {
		dir, err := os.MkdirTemp("", tempPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := lab.Up(t.Context(), lab.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := l.Down(); err != nil {
				t.Error(err)
			}
			os.RemoveAll(dir)
		})
		return l, dir
	}
	dead, deadDir := mk("2147483647 1") // no such PID
	live, liveDir := mk(self())
	sweep()
	if _, err := os.Stat(deadDir); !os.IsNotExist(err) {
		t.Errorf("stale lab dir %s after sweep: %v, want it removed", deadDir, err)
	}
	if _, err := os.Stat(filepath.Join("/var/run/netns", dead.Mgmt)); !os.IsNotExist(err) {
		t.Errorf("stale lab's namespace %s after sweep: %v, want it deleted", dead.Mgmt, err)
	}
	if s, err := live.Status(t.Context()); err != nil || !s.Healthy() {
		t.Errorf("live-owned lab in %s after sweep: %v\n%s", liveDir, err, s)
	}
}
