package events_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/events"
	"github.com/returnpath/returnpath/internal/fabric"
)

func TestSlackBody(t *testing.T) {
	at := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	ch := &fabric.Change{ID: 7, Kind: fabric.ChangeAdd, Status: fabric.ChangePending, Host: &fabric.Host{Name: "d<1>", Segment: "rack1"},
		Ops: []fabric.ChangeOp{{Device: "sw1", Preview: "ip route 10.210.0.0/24 10.10.10.101"}, {Device: "fw1", Preview: "ip route add 10.210.0.0/24 via 10.10.20.1"}}}
	b, err := events.Body(fabric.Event{Kind: fabric.EventChangePending, At: at, Change: ch}, events.FormatSlack, "https://desk.example")
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type, Text string
			} `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Text, "change 7") || !strings.Contains(msg.Text, "awaits review") {
		t.Errorf("text = %q", msg.Text)
	}
	if len(msg.Blocks) != 4 || msg.Blocks[0].Type != "section" || msg.Blocks[3].Type != "context" {
		t.Fatalf("blocks = %s", b)
	}
	head := msg.Blocks[0].Text.Text
	if !strings.Contains(head, "d&lt;1&gt;") || !strings.Contains(head, "<https://desk.example/changes/7|open change 7>") {
		t.Errorf("head block = %q: want the host escaped and a link to the change", head)
	}
	if !strings.Contains(msg.Blocks[1].Text.Text, "*sw1*") || !strings.Contains(msg.Blocks[1].Text.Text, "ip route 10.210.0.0/24 10.10.10.101") {
		t.Errorf("sw1 block = %q", msg.Blocks[1].Text.Text)
	}
}
