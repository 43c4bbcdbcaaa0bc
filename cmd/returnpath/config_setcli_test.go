package main

import (
	"strings"
	"testing"
	"time"
)

// TestConfigJunosVyOSKeys: the juniper_junos and vyos keys reach the driver config, and a bad
// junos.confirm fails at start with an error naming the key.
func TestConfigJunosVyOSKeys(t *testing.T) {
	t.Setenv("RETURNPATH_TEST_SW1_PASSWORD", "x")
	base := strings.ReplaceAll(testConfig, "%DB%", "postgres:///x")
	tests := []struct {
		name, from, to, want string
	}{
		{name: "confirm in seconds", from: "platform: frr", to: "platform: juniper_junos\n    junos: {confirm: 90s}", want: "devices[0].junos.confirm"},
		{name: "confirm too long", from: "platform: frr", to: "platform: juniper_junos\n    junos: {confirm: 2h}", want: "devices[0].junos.confirm"},
		{name: "confirm not a duration", from: "platform: frr", to: "platform: juniper_junos\n    junos: {confirm: soon}", want: "confirm"},
		{name: "unknown junos key", from: "platform: frr", to: "platform: juniper_junos\n    junos: {confrim: 5m}", want: "confrim"},
		{name: "save not a boolean", from: "platform: frr", to: "platform: vyos\n    vyos: {save: often}", want: "save"},
		{name: "unknown vyos key", from: "platform: frr", to: "platform: vyos\n    vyos: {commit: true}", want: "commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, strings.Replace(base, tt.from, tt.to, 1))
			out, err := run(t, "config", "check", "--config", p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("config check = %v (%s), want an error naming %s", err, out, tt.want)
			}
		})
	}
	for _, tc := range []struct {
		name, to string
		confirm  time.Duration
		save     bool
	}{
		{name: "junos confirm", to: "platform: juniper_junos\n    junos: {confirm: 5m}", confirm: 5 * time.Minute},
		{name: "junos defaults", to: "platform: juniper_junos"},
		{name: "vyos save", to: "platform: vyos\n    vyos: {save: true}", save: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, strings.Replace(base, "platform: frr", tc.to, 1)), nil, true)
			if err != nil {
				t.Fatal(err)
			}
			inv, _, err := cfg.Inventory()
			if err != nil {
				t.Fatal(err)
			}
			dcs, err := cfg.DriverConfigs(inv)
			if err != nil {
				t.Fatal(err)
			}
			if got := dcs["sw1"]; got.Junos.Confirm != tc.confirm || got.VyOS.Save != tc.save {
				t.Errorf("sw1 junos.confirm = %s, vyos.save = %t; want %s, %t", got.Junos.Confirm, got.VyOS.Save, tc.confirm, tc.save)
			}
		})
	}
}
