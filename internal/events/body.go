package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

// Format is how a webhook's bodies are written.
type Format string

// Formats.
const (
	FormatJSON  Format = "json"  // the event as JSON (payload), for programs
	FormatSlack Format = "slack" // a Slack incoming-webhook message (text and blocks), for people
)

// EventTest is the event of `returnpath events test`: it proves the URL and the secret, and
// is never queued.
const EventTest = "test"

// payload is the JSON body of an event (format json), as docs/operations.md documents it.
type payload struct {
	Event    string          `json:"event"`
	Time     time.Time       `json:"time"`
	Webhook  string          `json:"webhook,omitempty"` // test events only
	ChangeID int64           `json:"change_id,omitempty"`
	Kind     string          `json:"kind,omitempty"`
	Status   string          `json:"status,omitempty"`
	Host     string          `json:"host,omitempty"`
	Segment  string          `json:"segment,omitempty"`
	Devices  []string        `json:"devices"`
	Reason   string          `json:"reason,omitempty"`
	Preview  []devicePreview `json:"preview,omitempty"` // change.pending only
	Drift    []driftJSON     `json:"drift,omitempty"`   // drift.found only
	URL      string          `json:"url,omitempty"`     // ui.base_url set: the change in the web desk
}

type devicePreview struct {
	Device string   `json:"device"`
	Lines  []string `json:"lines"`
}

type driftJSON struct {
	Device       string `json:"device"`
	Missing      int    `json:"missing"`
	Unexpected   int    `json:"unexpected"`
	WrongNextHop int    `json:"wrong_next_hop"`
}

// newPayload describes e for receivers; baseURL ("" for none) is the web desk's address.
func newPayload(e fabric.Event, baseURL string) payload {
	p := payload{Event: string(e.Kind), Time: e.At.UTC(), Devices: []string{}}
	if c := e.Change; c != nil {
		p.ChangeID, p.Kind, p.Status, p.Reason = c.ID, string(c.Kind), string(c.Status), c.Reason
		p.Segment = e.Segment()
		if c.Host != nil {
			p.Host = c.Host.Name
		}
		for _, o := range c.Ops {
			if o.Rollback {
				continue
			}
			i := slices.IndexFunc(p.Preview, func(d devicePreview) bool { return d.Device == o.Device })
			if i < 0 {
				p.Devices = append(p.Devices, o.Device)
				p.Preview = append(p.Preview, devicePreview{Device: o.Device})
				i = len(p.Preview) - 1
			}
			if o.Preview != "" {
				p.Preview[i].Lines = append(p.Preview[i].Lines, strings.Split(o.Preview, "\n")...)
			}
		}
		if e.Kind != fabric.EventChangePending {
			p.Preview = nil
		}
		if baseURL != "" {
			p.URL = strings.TrimRight(baseURL, "/") + "/changes/" + strconv.FormatInt(c.ID, 10)
		}
	}
	for _, d := range e.Drift {
		p.Devices = append(p.Devices, d.Device)
		p.Drift = append(p.Drift, driftJSON(d))
	}
	return p
}

// Body renders event e as a webhook of format f receives it.
func Body(e fabric.Event, f Format, baseURL string) ([]byte, error) {
	return render(newPayload(e, baseURL), f)
}

// TestBody renders the test event for webhook name.
func TestBody(name string, f Format, at time.Time) ([]byte, error) {
	return render(payload{Event: EventTest, Time: at.UTC(), Webhook: name, Devices: []string{}}, f)
}

func render(p payload, f Format) ([]byte, error) {
	if f == FormatSlack {
		return json.Marshal(slackMessage(p))
	}
	return json.Marshal(p)
}

// Slack limits a section's text to 3000 characters.
const slackTextMax = 3000

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackBody struct {
	Text   string       `json:"text"` // the notification's text, and what clients without blocks show
	Blocks []slackBlock `json:"blocks"`
}

// slackEscape escapes the three characters Slack's mrkdwn gives a meaning to.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackSummary(p payload) string {
	switch {
	case p.Event == EventTest:
		return fmt.Sprintf("returnpath test event for webhook %s", p.Webhook)
	case p.Event == string(fabric.EventDriftFound):
		return fmt.Sprintf("returnpath: drift found on %s", strings.Join(p.Devices, ", "))
	}
	what := fmt.Sprintf("change %d (%s", p.ChangeID, p.Kind)
	if p.Host != "" {
		what += fmt.Sprintf(" host %s in segment %s", p.Host, p.Segment)
	} else if p.Segment != "" {
		what += " of segment " + p.Segment
	}
	what += ")"
	verb := map[string]string{"change.pending": "awaits review", "change.approved": "was approved", "change.applied": "was applied",
		"change.rolled_back": "was rolled back", "change.failed": "failed"}[p.Event]
	return fmt.Sprintf("returnpath: %s %s", what, verb)
}

func slackMessage(p payload) slackBody {
	summary := slackSummary(p)
	head := slackEscape.Replace(summary)
	if p.URL != "" {
		head += fmt.Sprintf(" <%s|open change %d>", slackEscape.Replace(p.URL), p.ChangeID)
	}
	if p.Reason != "" {
		head += "\n" + slackEscape.Replace(p.Reason)
	}
	b := slackBody{Text: summary, Blocks: []slackBlock{{Type: "section", Text: &slackText{Type: "mrkdwn", Text: truncate(head)}}}}
	for _, d := range p.Preview {
		text := "*" + slackEscape.Replace(d.Device) + "*\n```" + slackEscape.Replace(strings.Join(d.Lines, "\n")) + "```"
		b.Blocks = append(b.Blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: truncate(text)}})
	}
	for _, d := range p.Drift {
		text := fmt.Sprintf("*%s*: %d missing, %d unexpected, %d with a wrong next hop", slackEscape.Replace(d.Device), d.Missing, d.Unexpected, d.WrongNextHop)
		b.Blocks = append(b.Blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: text}})
	}
	b.Blocks = append(b.Blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: p.Event + " at " + p.Time.Format(time.RFC3339)}}})
	return b
}

func truncate(s string) string {
	if len(s) <= slackTextMax {
		return s
	}
	cut := strings.ToValidUTF8(s[:slackTextMax-20], "")
	if strings.Count(cut, "```")%2 == 1 {
		cut += "```"
	}
	return cut + "\n…(truncated)"
}
