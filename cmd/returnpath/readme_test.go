package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/returnpath/returnpath/internal/lab"
	"github.com/returnpath/returnpath/internal/lab/labtest"
)

// readmeBlock returns the shell block that follows marker in README.md.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("README.md has no %q", marker)
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(after)
	if m == nil {
		t.Fatalf("no sh block after %q in README.md", marker)
	}
	return m[1]
}

// TestReadmeQuickStartOnTheLab runs the README's bare-machine quick start as a new user would
// type it, on a fresh lab: lab up, the service in the management namespace, tokens, a host
// registering, a reviewer approving the plan it was shown, the container's ping, verify, lab
// down. Only "make build" is replaced (the test builds bin/returnpath itself) and the lab
// directory is the test's own; every other line runs as written, under bash -e, so a step
// that fails fails the test. Afterwards nothing of the lab is left.
func TestReadmeQuickStartOnTheLab(t *testing.T) {
	if err := lab.Check(); err != nil {
		if os.Getenv(labtest.EnvRequireLab) == "1" {
			t.Fatalf("the quick start needs the lab: %v", err)
		}
		t.Skipf("the quick start needs the lab: %v", err)
	}
	if testing.Short() {
		t.Skip("-short")
	}
	block := readmeBlock(t, "<!-- quickstart-lab:")
	// The lab's daemons run as other users: every parent of the lab directory must be
	// traversable, which t.TempDir's parent is not.
	work, err := os.MkdirTemp("", "rp-quickstart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	labDir := filepath.Join(work, "lab")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(work, "bin", "returnpath"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	replaced := 0
	for _, line := range strings.Split(block, "\n") {
		switch {
		case line == "make build":
			replaced++
			continue
		case strings.HasPrefix(line, "LAB="):
			line = "LAB=" + labDir
			replaced++
		}
		script.WriteString(line + "\n")
	}
	if replaced != 2 {
		t.Fatalf("the quick start changed shape: want one 'make build' and one 'LAB=' line\n%s", block)
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "RETURNPATH_SERVER=", "RETURNPATH_TOKEN=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t.Cleanup(func() {
		// A failed step leaves the backgrounded service and the lab behind: stop both.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = exec.Command(filepath.Join(work, "bin", "returnpath"), "lab", "down", "--dir", labDir).Run()
	})
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(work, "serve.log"))
		t.Fatalf("the quick start failed: %v\n%s\nserve.log:\n%s", err, out.String(), log)
	}
	for _, want := range []string{
		`"ip-masq": false`, // daemon.json got the settings
		"2 packets transmitted, 2 received",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the quick start did not show %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(labDir); !os.IsNotExist(err) {
		t.Errorf("lab down left %s behind (%v)", labDir, err)
	}
}
