package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	info := buildinfo.Read()
	var want strings.Builder
	writeVersion(&want, info)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := run(t, args...)
		if err != nil || out != want.String() {
			t.Errorf("returnpath %s = %v\n%s\nwant\n%s", strings.Join(args, " "), err, out, want.String())
		}
	}
	for _, line := range []string{"returnpath " + info.Version + "\n", "commit:     " + info.Commit + "\n", "build date: " + info.Date + "\n", "go:         " + info.GoVersion + "\n"} {
		if !strings.Contains(want.String(), line) {
			t.Errorf("version text lacks %q:\n%s", line, want.String())
		}
	}

	out, err := run(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got buildinfo.Info
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if diff := cmp.Diff(got, info); diff != "" {
		t.Errorf("version -o json (-got +want):\n%s", diff)
	}
}

func TestVersionTextEscapes(t *testing.T) {
	var b strings.Builder
	writeVersion(&b, buildinfo.Info{Version: "v1\x1b[2J", Commit: "c", Date: "d", GoVersion: "g"})
	if strings.Contains(b.String(), "\x1b") {
		t.Errorf("version text passes a control character through: %q", b.String())
	}
}
