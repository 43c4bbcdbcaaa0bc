package ssh

import (
	"os"
	"strings"
	"testing"
)

// TestPlatformsDocShowsEachPreview: docs/platforms.md shows, for every SSH platform, the
// preview of the sample change exactly as the driver renders it (its golden file), so the page
// a reviewer reads cannot drift from what is sent.
func TestPlatformsDocShowsEachPreview(t *testing.T) {
	doc, err := os.ReadFile("../../docs/platforms.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ platform, golden string }{
		{platform: "frr", golden: "frr"}, {platform: "linux", golden: "linux"},
		{platform: "arista_eos", golden: "eos"}, {platform: "cisco_nxos", golden: "nxos"},
		{platform: "cisco_iosxe", golden: "iosxe"}, {platform: "juniper_junos", golden: "junos"},
		{platform: "vyos", golden: "vyos"}, {platform: "paloalto_panos", golden: "panos"},
		{platform: "fortinet_fortios", golden: "fortios"}, {platform: "cisco_asa", golden: "asa"},
	} {
		g := readTestdata(t, tc.golden+"_preview.golden")
		want := "### `" + tc.platform + "`\n\n```text\n" + strings.TrimRight(string(g), "\n") + "\n```\n"
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/platforms.md lacks the preview of %s as %s renders it", tc.platform, tc.golden+"_preview.golden")
		}
	}
	for _, p := range Platforms() {
		if !strings.Contains(string(doc), "### `"+string(p)+"`") {
			t.Errorf("docs/platforms.md has no preview section for %s", p)
		}
	}
}
