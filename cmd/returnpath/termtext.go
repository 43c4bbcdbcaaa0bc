package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// term returns s fit for a person's terminal: every control character (C0, newline and tab
// included, DEL, C1), every Unicode bidi control and every byte that is not UTF-8 is shown
// as an escape (\n, \x1b, \u009b, \u202e, \xff). Text from the server or a device (reasons,
// events, device output) then cannot move the cursor, clear the screen, start a line that
// looks like ours, or reorder what a reviewer reads. JSON output never goes through it.
func term(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0 || bidiControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || bidiControl(r) {
			return true
		}
		i += n
	}
	return false
}

// bidiControl reports whether r changes the direction text is shown in (Unicode's
// Bidi_Control property): such a character can make a line read other than it is.
func bidiControl(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// termArgs escapes, with term, every argument that prints as text.
func termArgs(a []any) []any {
	out := make([]any, len(a))
	for i, v := range a {
		switch v := v.(type) {
		case string:
			out[i] = term(v)
		case error:
			out[i] = term(v.Error())
		case fmt.Stringer:
			out[i] = term(v.String())
		default:
			out[i] = v
		}
	}
	return out
}

// tprintf is fmt.Fprintf for text meant for a person: its arguments go through term, its
// format (ours) does not.
func tprintf(w io.Writer, format string, a ...any) {
	fmt.Fprintf(w, format, termArgs(a)...)
}

// tsprintf is fmt.Sprintf with its arguments through term.
func tsprintf(format string, a ...any) string {
	return fmt.Sprintf(format, termArgs(a)...)
}

// countOf writes n with the noun's singular or plural: "1 op", "2 ops", "0 ops".
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
