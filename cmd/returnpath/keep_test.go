package main

import (
	"strings"
	"testing"
)

// TestSessionKeysAreValidated: devices[].idle_timeout and apply.gather_window are checked
// and a bad value is reported by its key; good values pass.
func TestSessionKeysAreValidated(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	base := strings.ReplaceAll(testConfig, "%DB%", "postgres:///x")
	const dev = "    address: 198.18.0.12:22"
	tests := []struct {
		name, from, to, want string
	}{
		{name: "idle too short", from: dev, to: dev + "\n    idle_timeout: 500ms", want: "devices[1].idle_timeout"},
		{name: "idle negative", from: dev, to: dev + "\n    idle_timeout: -1m", want: "devices[1].idle_timeout"},
		{name: "gather too long", from: "approval:", to: "apply:\n  gather_window: 2s\napproval:", want: "apply.gather_window"},
		{name: "gather negative", from: "approval:", to: "apply:\n  gather_window: -1ms\napproval:", want: "apply.gather_window"},
		{name: "good", from: dev, to: dev + "\n    idle_timeout: 10m", want: ""},
		{name: "good gather", from: "approval:", to: "apply:\n  gather_window: 25ms\napproval:", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.from) {
				t.Fatalf("test config lacks %q", tt.from)
			}
			p := writeConfig(t, strings.Replace(base, tt.from, tt.to, 1))
			out, err := run(t, "config", "check", "--config", p)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("config check = %v (%s), want success", err, out)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("config check = %v (%s), want an error naming %s", err, out, tt.want)
			}
		})
	}
}
