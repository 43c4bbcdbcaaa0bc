package ssh

import (
	"strconv"
	"strings"
)

// versionLine returns the first non-blank line of a command's output, trimmed.
func versionLine(out string) string {
	for line := range strings.Lines(out) {
		if l := strings.TrimSpace(line); l != "" {
			return l
		}
	}
	return ""
}

// linuxVersion turns linuxVersionCmd's output (uname -sr, then os-release's PRETTY_NAME,
// quoted or not) into one line: "Linux 6.8.0 (Debian GNU/Linux 12 (bookworm))".
func linuxVersion(out string) string {
	var lines []string
	for line := range strings.Lines(out) {
		if l := strings.TrimSpace(line); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	v := lines[0]
	if len(lines) > 1 {
		pretty := lines[1]
		if u, err := strconv.Unquote(pretty); err == nil {
			pretty = u
		} else {
			pretty = strings.Trim(pretty, `'"`)
		}
		if pretty != "" {
			v += " (" + pretty + ")"
		}
	}
	return v
}

// eosVersion turns EOS's "show version" into one line: the model (its first line) and the
// software image version, when it prints one.
func eosVersion(out string) string {
	model := versionLine(out)
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Software image version:"); ok && strings.TrimSpace(v) != "" {
			return model + ", software image version " + strings.TrimSpace(v)
		}
	}
	return model
}
