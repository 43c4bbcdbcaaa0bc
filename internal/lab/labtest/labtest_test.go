package labtest_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
)

func TestMain(m *testing.M) {
	os.Exit(labtest.Main(m, lab.Options{}))
}

// TestInsideMgmt proves the re-exec: this process runs in the lab's mgmt namespace and
// reaches both devices' sshd directly.
func TestInsideMgmt(t *testing.T) {
	l := labtest.Require(t)
	for _, name := range []string{"sw1", "fw1"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := net.DialTimeout("tcp", l.Devices[name].Mgmt.String(), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			banner, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(banner, "SSH-2.0-") {
				t.Errorf("banner from %s = %q, want SSH-2.0-...", name, banner)
			}
		})
	}
	// The mgmt namespace has no way out of the lab: no default route.
	out, err := exec.Command("ip", "-j", "route", "show", "default").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "[]" {
		t.Errorf("default route in %s = %s, want none", l.Mgmt, got)
	}
}
