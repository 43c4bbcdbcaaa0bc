package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/returnpath/returnpath/internal/client"
)

// TestOneFlagVocabulary: every command that talks to a server takes the same client and
// output flags, defined in one place; the commands that talk to devices or the database take
// the output flags.
func TestOneFlagVocabulary(t *testing.T) {
	t.Parallel()
	root := newRootCmd()
	clientFlags := []string{"server", "token", "token-file", "ca-file", "output", "output-file"}
	tests := []struct {
		path    []string
		flags   []string
		formats []string
	}{
		{path: []string{"changes", "list"}, flags: clientFlags, formats: []string{"text", "json"}},
		{path: []string{"changes", "show"}, flags: clientFlags, formats: []string{"text", "json"}},
		{path: []string{"changes", "approve"}, flags: clientFlags, formats: []string{"text", "json"}},
		{path: []string{"changes", "reject"}, flags: clientFlags, formats: []string{"text", "json"}},
		{path: []string{"changes", "retry"}, flags: clientFlags, formats: []string{"text", "json"}},
		{path: []string{"host", "register"}, flags: clientFlags, formats: []string{"text", "json"}},
		{path: []string{"host", "deregister"}, flags: clientFlags, formats: []string{"text", "json"}},
		{path: []string{"remediate"}, flags: clientFlags, formats: []string{"text", "json"}},
		{path: []string{"verify"}, flags: clientFlags, formats: []string{"text", "json", "junit"}},
		{path: []string{"device", "check"}, flags: []string{"output", "output-file"}, formats: []string{"text", "json"}},
	}
	for _, tt := range tests {
		cmd, _, err := root.Find(tt.path)
		if err != nil {
			t.Errorf("%v: %v", tt.path, err)
			continue
		}
		// Flags as cobra merges them for a run: the command's own and its parents' persistent.
		fs := cmd.Flags()
		fs.AddFlagSet(cmd.InheritedFlags())
		for _, name := range tt.flags {
			if fs.Lookup(name) == nil {
				t.Errorf("%s: no --%s", cmd.CommandPath(), name)
			}
		}
		out := fs.Lookup("output")
		if out == nil {
			continue
		}
		if out.Shorthand != "o" {
			t.Errorf("%s: --output has shorthand %q, want o", cmd.CommandPath(), out.Shorthand)
		}
		if got := out.Annotations[formatsAnnotation]; strings.Join(got, ",") != strings.Join(tt.formats, ",") {
			t.Errorf("%s: formats %v, want %v", cmd.CommandPath(), got, tt.formats)
		}
		if cmd.RunE == nil {
			t.Errorf("%s: not runnable", cmd.CommandPath())
		}
	}
}

// TestOutputFile: --output-file takes what a command prints, for every client command.
func TestOutputFile(t *testing.T) {
	startFakeChanges(t)
	path := filepath.Join(t.TempDir(), "changes.json")
	out, err := run(t, "changes", "list", "-o", "json", "--output-file", path)
	if err != nil || out != "" {
		t.Fatalf("changes list --output-file = %v, printed %q", err, out)
	}
	data, err := os.ReadFile(path)
	var list []client.Change
	if err != nil || json.Unmarshal(data, &list) != nil || len(list) != 5 {
		t.Errorf("output file = %v:\n%s", err, data)
	}
	// A bad --output is refused before anything is asked of the server.
	if _, err := run(t, "changes", "show", "3", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "want text or json") {
		t.Errorf("-o yaml = %v", err)
	}
	// An unwritable file is an error naming the flag.
	if _, err := run(t, "changes", "show", "3", "--output-file", filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil || !strings.Contains(err.Error(), "--output-file") {
		t.Errorf("--output-file in a missing directory = %v", err)
	}
}
