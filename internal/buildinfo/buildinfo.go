// Package buildinfo says which build of returnpath is running: the version, commit and build
// date the Makefile stamps in with -ldflags -X, else what the Go toolchain recorded in the
// binary (module version, VCS revision and time), and the Go version it was built with.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by the Makefile: go build -ldflags "-X github.com/returnpath/returnpath/internal/buildinfo.version=v1.2.3 ...".
// They stay empty in a plain `go build` or `go test`; Read then falls back to debug.BuildInfo.
var (
	version string
	commit  string
	date    string
)

// Unknown stands for a field neither the linker flags nor the toolchain supplied.
const Unknown = "unknown"

// Info identifies a build. Every field is set (Unknown when nothing told it).
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"build_date"` // RFC 3339, UTC
	GoVersion string `json:"go_version"`
}

// Read returns this binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return resolve(Info{Version: version, Commit: commit, Date: date}, bi)
}

// resolve fills what the linker flags left empty from the toolchain's record. The flags win:
// the Makefile knows the tag (git describe), whereas `go build` in a work tree records the
// module version as "(devel)".
func resolve(ld Info, bi *debug.BuildInfo) Info {
	out := ld
	var modified bool
	if bi != nil {
		if out.Version == "" {
			// `go install github.com/returnpath/returnpath/cmd/returnpath@v1.2.3` records v1.2.3;
			// a build in a work tree records "(devel)".
			out.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if out.Commit == "" {
					out.Commit = s.Value
				}
			case "vcs.time":
				if out.Date == "" {
					out.Date = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if ld.Commit == "" && modified && out.Commit != "" {
			// The binary holds changes the commit does not: say so, as git describe --dirty does.
			out.Commit += "-dirty"
		}
		out.GoVersion = bi.GoVersion
	}
	if out.GoVersion == "" {
		out.GoVersion = runtime.Version()
	}
	for _, f := range []*string{&out.Version, &out.Commit, &out.Date} {
		if *f == "" {
			*f = Unknown
		}
	}
	return out
}
