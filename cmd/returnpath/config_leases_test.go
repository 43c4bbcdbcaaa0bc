package main

import (
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// TestConfigLeases: leases is optional; when given it is checked, every error naming its key,
// and a misspelt key gets the usual hint.
func TestConfigLeases(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	base := strings.Replace(testConfig, `"%DB%"`, `"postgres:///x"`, 1)
	cfg, err := loadConfig(writeConfig(t, base), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.LeasePolicy(); p.Enabled() {
		t.Errorf("LeasePolicy() without leases = %+v, want off", p)
	}
	cfg, err = loadConfig(writeConfig(t, base+"leases: {ttl: 24h, grace: 1h}\n"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.LeasePolicy(); p != (fabric.LeasePolicy{TTL: 24 * time.Hour, Grace: time.Hour, OnExpiry: fabric.LeasePropose}) {
		t.Errorf("LeasePolicy() = %+v, want 24h, 1h, propose (the default)", p)
	}
	for _, tt := range []struct{ leases, want string }{
		{"leases: {ttl: 30s, on_expiry: remove}\n", "leases.ttl: want at least 1m0s"},
		{"leases: {ttl: 1h, grace: -1s}\n", "leases.grace: must not be negative"},
		{"leases: {ttl: 1h, on_expiry: delete}\n", `leases.on_expiry: want propose or remove, got "delete"`},
		{"leases: {grace: 1h}\n", "leases.ttl:"},
		{"leases: {tll: 1h}\n", "leases.tll: unknown key; did you mean ttl?"},
	} {
		cfg, err := readConfig(writeConfig(t, base+tt.leases), nil, true)
		if err == nil {
			_, err = cfg.Check()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want it to say %q", tt.leases, err, tt.want)
		}
	}
}
