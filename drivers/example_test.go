package drivers_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleDriverOutOfTree builds, vets and tests the example driver in drivers/example as
// the separate module it is, from a copy in a temporary directory, so that it sees returnpath
// exactly as a driver in another repository would: through its public packages only. Go
// refuses the example's own imports of internal/, but not a public returnpath package that
// imports internal/ on the example's behalf (the rule looks at the importing package's path),
// so the test also fails when anything the example or its test depends on, drivertest
// included, is an internal package.
func TestExampleDriverOutOfTree(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the example module: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyTree(t, filepath.Join(root, "drivers", "example"), dir)
	mod := filepath.Join(dir, "go.mod")
	b, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	const rel = "=> ../.."
	if !bytes.Contains(b, []byte(rel)) {
		t.Fatalf("drivers/example/go.mod has no %q replace directive to point at the checkout", rel)
	}
	if err := os.WriteFile(mod, bytes.Replace(b, []byte(rel), []byte("=> "+root), 1), 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), goBin, args...)
		cmd.Dir = dir
		// Offline and exact: go.mod and go.sum as committed, no workspace, no toolchain switch.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "GOPROXY=off", "GOTOOLCHAIN=local")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in the example module: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	deps := run("list", "-deps", "-test", "-f", "{{.ImportPath}}", "./...")
	for dep := range strings.Lines(deps) {
		if dep = strings.TrimSpace(dep); strings.HasPrefix(dep, "github.com/returnpath/returnpath/") && strings.Contains(dep+"/", "/internal/") {
			t.Errorf("the example driver depends on %s: a driver outside the module cannot import it", dep)
		}
	}
	run("vet", "./...")
	run("test", "-count=1", "./...")
}

// copyTree copies the regular files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}
