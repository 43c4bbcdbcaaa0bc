package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsExampleConfig: docs/returnpath.example.yaml, with its secret files in a temporary
// directory, passes `config check`, dual-stack segment included.
func TestDocsExampleConfig(t *testing.T) {
	raw, err := os.ReadFile("../../docs/returnpath.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"fw1.key", "known_hosts"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("RETURNPATH_SW1_PASSWORD", "x")
	p := writeConfig(t, strings.ReplaceAll(string(raw), "/etc/returnpath/", dir+"/"))
	out, err := run(t, "config", "check", "--config", p)
	if err != nil || !strings.Contains(out, "ok: 2 pools, 2 segments, 2 devices") {
		t.Errorf("config check of docs/returnpath.example.yaml = %v\n%s", err, out)
	}
	cfg, err := loadConfig(p, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	checked, err := cfg.Check()
	if err != nil {
		t.Fatal(err)
	}
	if seg := checked.Inventory.Segments[1]; seg.Pool6 != "docker6" || !seg.Hosts6.IsValid() || !seg.RouteVia[1].NextHop.Addr6.IsValid() {
		t.Errorf("rack2 = %+v, want a dual-stack segment with a per-family next hop", seg)
	}
}
