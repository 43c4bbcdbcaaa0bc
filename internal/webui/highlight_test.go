package webui

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/returnpath/returnpath/internal/fabric"
)

func TestHighlight(t *testing.T) {
	for _, tc := range []struct {
		name     string
		platform fabric.Platform
		text     string
		want     []line
	}{
		{name: "frr", platform: fabric.PlatformFRR, text: "ip route 172.16.3.0/24 10.10.10.7",
			want: []line{{{"kw", "ip"}, {"", " "}, {"kw", "route"}, {"", " "}, {"pfx", "172.16.3.0/24"}, {"", " "}, {"addr", "10.10.10.7"}}}},
		{name: "linux", platform: fabric.PlatformLinux, text: "ip route add 172.16.3.0/24 via 10.10.20.1 proto 202",
			want: []line{{{"kw", "ip"}, {"", " "}, {"kw", "route"}, {"", " "}, {"kw", "add"}, {"", " "}, {"pfx", "172.16.3.0/24"}, {"", " "},
				{"kw", "via"}, {"", " "}, {"addr", "10.10.20.1"}, {"", " "}, {"kw", "proto"}, {"", " "}, {"num", "202"}}}},
		{name: "keywords are per platform", platform: fabric.PlatformJuniperJunos, text: "set route\nip",
			want: []line{{{"kw", "set"}, {"", " "}, {"kw", "route"}}, {{"", "ip"}}}},
		{name: "json of gNMI", platform: fabric.PlatformOpenConfig, text: `{"prefix":"2001:db8::/64"}`,
			want: []line{{{"", `{"`}, {"", "prefix"}, {"", `"`}, {"", ":"}, {"", `"`}, {"pfx", "2001:db8::/64"}, {"", `"}`}}}},
		{name: "markup stays text", platform: fabric.PlatformFRR, text: "<script>",
			want: []line{{{"", "<script>"}}}},
		{name: "empty", platform: fabric.PlatformFRR, text: "", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := highlight(tc.platform, tc.text)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("highlight(%q) (-want +got):\n%s", tc.text, diff)
			}
			if joined := join(got); joined != tc.text {
				t.Errorf("the tokens join to %q, not the text %q", joined, tc.text)
			}
		})
	}
}

func join(lines []line) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		for _, t := range l {
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// FuzzHighlight: whatever a driver's preview holds, the tokens are exactly the text (nothing
// lost, nothing added) and every class is one the stylesheet knows.
func FuzzHighlight(f *testing.F) {
	for _, s := range []string{"ip route 10.0.0.0/8 192.0.2.1", "set routing-options static route 10.0.0.0/8 next-hop 10.1.1.1\ncommit", `{"a":[1,2]}`, " \t\n", "2001:db8::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []fabric.Platform{fabric.PlatformFRR, fabric.PlatformLinux, fabric.PlatformOpenConfig} {
			got := highlight(p, s)
			if joined := join(got); joined != s {
				t.Fatalf("highlight(%q) joins to %q", s, joined)
			}
			for _, l := range got {
				for _, tok := range l {
					switch tok.Class {
					case "", "kw", "pfx", "addr", "num":
					default:
						t.Fatalf("class %q", tok.Class)
					}
					if tok.Text == "" {
						t.Fatalf("an empty token in %q", s)
					}
				}
			}
		}
	})
}
