package buildinfo

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	vcs := func(rev, at, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: at}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name string
		ld   Info
		bi   *debug.BuildInfo
		want Info
	}{
		{
			name: "linker flags win over the toolchain's record",
			ld:   Info{Version: "v1.2.3", Commit: "abc123", Date: "2026-01-02T03:04:05Z"},
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("def456", "2025-01-01T00:00:00Z", "true")},
			want: Info{Version: "v1.2.3", Commit: "abc123", Date: "2026-01-02T03:04:05Z", GoVersion: "go1.26.8"},
		},
		{
			name: "a work tree build: devel, the VCS revision marked dirty, the commit time",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("def456", "2025-01-01T00:00:00Z", "true")},
			want: Info{Version: "(devel)", Commit: "def456-dirty", Date: "2025-01-01T00:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "go install module@version on a clean tree",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: vcs("def456", "2025-01-01T00:00:00Z", "false")},
			want: Info{Version: "v1.4.0", Commit: "def456", Date: "2025-01-01T00:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "only the version from the flags: the rest from the toolchain",
			ld:   Info{Version: "v2.0.0"},
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Settings: vcs("def456", "2025-01-01T00:00:00Z", "false")},
			want: Info{Version: "v2.0.0", Commit: "def456", Date: "2025-01-01T00:00:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "no record at all",
			want: Info{Version: Unknown, Commit: Unknown, Date: Unknown, GoVersion: runtime.Version()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(resolve(tt.ld, tt.bi), tt.want); diff != "" {
				t.Errorf("resolve (-got +want):\n%s", diff)
			}
		})
	}
}

// TestLinkerFlags builds a program with the -X flags the Makefile passes and reads them back:
// it fails if the variables are renamed or moved without the Makefile following.
func TestLinkerFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	t.Parallel()
	const pkg = "github.com/returnpath/returnpath/internal/buildinfo"
	bin := filepath.Join(t.TempDir(), "printinfo")
	build := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X "+pkg+".version=v9.8.7 -X "+pkg+".commit=0123abcd -X "+pkg+".date=2026-02-03T04:05:06Z", "./testdata/printinfo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got Info
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := Info{Version: "v9.8.7", Commit: "0123abcd", Date: "2026-02-03T04:05:06Z", GoVersion: runtime.Version()}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Read() in a binary built with -X (-got +want):\n%s", diff)
	}
}
