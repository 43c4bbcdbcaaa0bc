package ssh

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/returnpath/returnpath/drivers"
	"github.com/returnpath/returnpath/drivers/route"
)

// What the drivers of CLIs that apply each line (or each entry) as it arrives share:
// FortiOS and Cisco ASA have no candidate configuration to commit or discard, so a batch is
// written at once, the CLI's answer is attributed line by line, and when the CLI refuses a
// line the lines of the batch it had already applied are undone by sending their inverse.

// cliResult is what a CLI answered to one line of a pushed batch.
type cliResult struct {
	Echo   string   // the command as the CLI echoed it
	Output []string // the non-empty lines the CLI printed after it
}

// splitTranscript splits a CLI's answer to a batch into one result per line sent. prompt
// matches a whole line that begins with a prompt and captures what follows it (the echo).
// The prompt before the first line was read before the batch was written, so the transcript
// opens with the first line's echo and every later prompt opens the next result: a complete
// transcript of n lines has n+1 results, the last being the final prompt's empty one.
// Callers cut the transcript at the first echo: a prompt the CLI printed late, after the
// previous exchange had ended (scrapligo's open sends a return and stops at the first
// prompt it sees), may come before it.
func splitTranscript(transcript string, prompt *regexp.Regexp) []cliResult {
	lines := strings.Split(strings.ReplaceAll(transcript, "\r", ""), "\n")
	out := []cliResult{{Echo: strings.TrimSpace(lines[0])}}
	for _, line := range lines[1:] {
		if m := prompt.FindStringSubmatch(line); m != nil {
			out = append(out, cliResult{Echo: strings.TrimSpace(m[1])})
			continue
		}
		if strings.TrimSpace(line) != "" {
			out[len(out)-1].Output = append(out[len(out)-1].Output, line)
		}
	}
	return out
}

// cliPrompts describes how a CLI marks the end of a command's output.
type cliPrompts struct {
	Line *regexp.Regexp // a whole line starting with any prompt, capturing the echo after it
	End  *regexp.Regexp // any prompt at the very end of the output
	Exec *regexp.Regexp // like End, for the top-level (exec) prompt only
	// Pager is the marker the CLI prints when output fills the screen with paging on.
	Pager []byte
}

// tail returns the last bytes of out, where a prompt is looked for.
func tail(out []byte) []byte { return out[max(0, len(out)-120):] }

// push writes lines at once and reads until the CLI printed one prompt after each, and
// returns one result per line (and the final prompt's), and whether the CLI is back at its
// exec prompt. c.mu must be held. An error means the session was lost with bytes sent: the
// outcome of the lines is unknown.
func (c *cliSession) push(ctx context.Context, lines []string, p cliPrompts) ([]cliResult, bool, error) {
	var in strings.Builder
	for _, l := range lines {
		in.WriteString(l)
		in.WriteByte('\n')
	}
	// One prompt after each line sent; count them as complete lines arrive, from the end of
	// the first line's echo: what came before it is a prompt the CLI printed late.
	first := []byte(lines[0])
	prompts, start, scanned := 0, -1, -1
	transcript, err := c.exchange(ctx, in.String(), nil, func(out []byte) bool {
		if start < 0 {
			if start = bytes.Index(out, first); start < 0 {
				return false
			}
		}
		if scanned < 0 {
			nl := bytes.IndexByte(out[start:], '\n')
			if nl < 0 {
				return false
			}
			scanned = start + nl + 1
		}
		for {
			nl := bytes.IndexByte(out[scanned:], '\n')
			if nl < 0 {
				break
			}
			if p.Line.Match(bytes.TrimRight(out[scanned:scanned+nl], "\r")) {
				prompts++
			}
			scanned += nl + 1
		}
		return prompts+1 >= len(lines) && p.End.Match(tail(out))
	})
	if err != nil {
		return nil, false, err
	}
	transcript = transcript[start:]
	rs := splitTranscript(transcript, p.Line)
	if len(rs) != len(lines)+1 {
		return nil, false, fmt.Errorf("the CLI answered %d lines for %d sent", len(rs)-1, len(lines))
	}
	return rs, p.Exec.MatchString(transcript[max(0, len(transcript)-120):]), nil
}

// leave sends each of cmds (e.g. "abort", "end") until the CLI is back at its exec prompt,
// after a batch that left it inside a configuration mode. c.mu must be held.
func (c *cliSession) leave(ctx context.Context, p cliPrompts, cmds ...string) error {
	for _, cmd := range cmds {
		echo := []byte(cmd)
		out, err := c.exchange(ctx, cmd+"\n", nil, func(out []byte) bool {
			i := bytes.Index(out, echo)
			return i >= 0 && p.End.Match(tail(out[i:]))
		})
		if err != nil {
			return err
		}
		if p.Exec.MatchString(out[max(0, len(out)-120):]) {
			return nil
		}
	}
	return fmt.Errorf("the CLI did not return to its exec prompt after %s", strings.Join(cmds, ", "))
}

// show runs one read-only command at the exec prompt and returns its output without echo,
// prompt and pager markers. c.mu must be held.
func (c *cliSession) show(ctx context.Context, cmd string, p cliPrompts, refusal func([]string) string) (string, error) {
	// The answer starts at the command's echo: a prompt before it was printed late.
	echo := []byte(cmd)
	out, err := c.exchange(ctx, cmd+"\n", p.Pager, func(out []byte) bool {
		i := bytes.Index(out, echo)
		// A pager prompt may sit, erased, right before the final prompt.
		return i >= 0 && p.Exec.MatchString(stripPager(string(tail(out[i:])), string(p.Pager)))
	})
	if err != nil {
		return "", drivers.Errorf(drivers.KindUnreachable, c.cfg.Name, "read", "%s: %w", cmd, err)
	}
	out = out[strings.Index(out, cmd):]
	var body []string
	for _, r := range splitTranscript(stripPager(out, string(p.Pager)), p.Line) {
		body = append(body, r.Output...)
	}
	if text := refusal(body); text != "" {
		return "", drivers.Errorf(drivers.KindInternal, c.cfg.Name, "read", "%s: %s", cmd, text)
	}
	return strings.Join(body, "\n"), nil
}

// stripPager removes a pager marker (e.g. "--More--", "<--- More --->") and the carriage
// returns and spaces that erase it from output read with paging on.
func stripPager(s, marker string) string {
	if marker == "" || !strings.Contains(s, marker) {
		return s
	}
	re := regexp.MustCompile(` *` + regexp.QuoteMeta(marker) + ` *`)
	return re.ReplaceAllString(strings.ReplaceAll(s, "\r", ""), "")
}

// lineBatch is the lines of one batch with, for each line, the index of the op (in the ops
// passed to Apply) it belongs to, or -1 for lines that frame the batch ("config router
// static", "end").
type lineBatch struct {
	Lines []string
	Op    []int
}

func (b *lineBatch) add(op int, lines ...string) {
	for _, l := range lines {
		b.Lines = append(b.Lines, l)
		b.Op = append(b.Op, op)
	}
}

// firstRefusal returns the index in b of the first line the CLI refused, with its text, or
// -1. refusal extracts the error text from a line's output ("" when accepted).
func (b *lineBatch) firstRefusal(rs []cliResult, refusal func([]string) string) (int, string) {
	for i := range b.Lines {
		if text := refusal(rs[i].Output); text != "" {
			return i, text
		}
	}
	return -1, ""
}

// undoneRejection is the error of a line-by-line batch the device refused part of, once the
// lines it had applied were undone: every op is listed, the refused one (bad, or -1 when the
// refusal belongs to no op) with the device's text, the others as not applied because of it.
func undoneRejection(cfg drivers.Config, vendor string, ops []route.RouteOp, bad int, text string) error {
	de := &drivers.Error{Kind: drivers.KindRejected, Device: cfg.Name, Op: "apply"}
	for i, op := range ops {
		out := text
		switch {
		case bad < 0:
			out = "not applied: the batch was undone: " + text
		case i != bad:
			out = fmt.Sprintf("not applied: the batch was undone because %s refused %s: %s", vendor, ops[bad], text)
		}
		de.Rejections = append(de.Rejections, drivers.Rejection{Index: i, Op: op, Output: out})
	}
	return de
}

// undoFailed is the error of a refused batch whose undo did not go through: what is on the
// device is unknown until it is read again.
func undoFailed(cfg drivers.Config, vendor, text string, err error) error {
	return &drivers.Error{Kind: drivers.KindIndeterminate, Device: cfg.Name, Op: "apply",
		Err: fmt.Errorf("%s refused the batch (%s) and undoing its applied lines failed; re-read the device: %w", vendor, text, err)}
}

// lost is the error of a batch whose session broke after bytes were sent.
func lost(cfg drivers.Config, err error) error {
	return &drivers.Error{Kind: drivers.KindIndeterminate, Device: cfg.Name, Op: "apply",
		Err: fmt.Errorf("session lost while the batch was applied; re-read the device: %w", err)}
}

// checkSameRoute refuses a batch that both adds and deletes one route: the line-by-line
// drivers look routes up on the device before sending, and could not tell which of the two
// the batch means to keep. Plan never emits such a batch.
func checkSameRoute(cfg drivers.Config, ops []route.RouteOp) error {
	seen := make(map[route.Route]route.Action, len(ops))
	for i, op := range ops {
		if a, ok := seen[op.Route]; ok && a != op.Action {
			return drivers.Errorf(drivers.KindInternal, cfg.Name, "apply", "op %d (%s): the batch both adds and deletes %s", i, op, op.Route)
		}
		seen[op.Route] = op.Action
	}
	return nil
}
