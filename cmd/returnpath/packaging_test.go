package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// packagedConfig is the configuration file the Debian package installs as a conffile.
const packagedConfig = "../../packaging/deb/returnpath.yaml"

// TestPackagedConfig: the file the package installs loads as it is, and its commented example
// (every line starting "# "; prose starts "## ") passes `config check` once uncommented, so
// that an operator who uncomments it starts from a valid inventory.
func TestPackagedConfig(t *testing.T) {
	raw, err := os.ReadFile(packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(packagedConfig, nil, true)
	if err != nil {
		t.Fatalf("the packaged configuration does not load: %v", err)
	}
	if cfg.Listen != ":8080" || cfg.DatabaseURL != "postgres:///returnpath?host=/run/postgresql" || len(cfg.Devices) != 0 {
		t.Errorf("packaged configuration as shipped: listen %q, database_url %q, %d devices", cfg.Listen, cfg.DatabaseURL, len(cfg.Devices))
	}

	// Uncomment the example, with its secret files in a temporary directory.
	dir := t.TempDir()
	var lines []string
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			line = rest
		}
		lines = append(lines, line)
	}
	example := strings.ReplaceAll(strings.Join(lines, "\n"), "/etc/returnpath/", dir+"/")
	for _, f := range []string{"sw1.password", "fw1.key", "known_hosts", "tls.crt", "tls.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := writeConfig(t, example)
	out, err := run(t, "config", "check", "--config", p)
	if err != nil || !strings.Contains(out, "ok: 1 pools, 1 segments, 2 devices") {
		t.Errorf("config check of the packaged example, uncommented = %v\n%s\n--- the example:\n%s", err, out, example)
	}
}
