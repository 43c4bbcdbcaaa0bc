package ssh

import "testing"

func TestVersionLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, out    string
		first, linux string
	}{
		{name: "frr show version", out: "\nFRRouting 10.1.1 (sw1) on Linux(6.8.0-45-generic).\nCopyright 1996-2005 Kunihiro Ishiguro, et al.\n",
			first: "FRRouting 10.1.1 (sw1) on Linux(6.8.0-45-generic).", linux: "FRRouting 10.1.1 (sw1) on Linux(6.8.0-45-generic). (Copyright 1996-2005 Kunihiro Ishiguro, et al.)"},
		{name: "uname and quoted pretty name", out: "Linux 6.8.0-45-generic\n\"Ubuntu 24.04.1 LTS\"\n",
			first: "Linux 6.8.0-45-generic", linux: "Linux 6.8.0-45-generic (Ubuntu 24.04.1 LTS)"},
		{name: "unquoted pretty name", out: "Linux 6.1.0\nDebian GNU/Linux 12 (bookworm)\n",
			first: "Linux 6.1.0", linux: "Linux 6.1.0 (Debian GNU/Linux 12 (bookworm))"},
		{name: "no os-release", out: "Linux 5.15.0\r\n",
			first: "Linux 5.15.0", linux: "Linux 5.15.0"},
		{name: "empty pretty name", out: "Linux 5.15.0\n\"\"\n",
			first: "Linux 5.15.0", linux: "Linux 5.15.0"},
		{name: "nothing", out: " \n\n", first: "", linux: ""},
	} {
		if got := versionLine(tc.out); got != tc.first {
			t.Errorf("%s: versionLine = %q, want %q", tc.name, got, tc.first)
		}
		if got := linuxVersion(tc.out); got != tc.linux {
			t.Errorf("%s: linuxVersion = %q, want %q", tc.name, got, tc.linux)
		}
	}
}
