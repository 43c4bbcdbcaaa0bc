package fabric_test

import (
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
)

func TestDecideDelivery(t *testing.T) {
	const deadline = time.Hour
	tests := []struct {
		name   string
		code   int
		age    time.Duration
		status fabric.DeliveryStatus
		retry  bool
	}{
		{name: "200 delivers", code: 200, age: 0, status: fabric.DeliveryDelivered},
		{name: "204 delivers past the deadline", code: 204, age: 2 * deadline, status: fabric.DeliveryDelivered},
		{name: "500 retries", code: 500, age: time.Minute, status: fabric.DeliveryPending, retry: true},
		{name: "no answer retries", code: 0, age: time.Minute, status: fabric.DeliveryPending, retry: true},
		{name: "429 retries", code: 429, age: time.Minute, status: fabric.DeliveryPending, retry: true},
		{name: "408 retries", code: 408, age: time.Minute, status: fabric.DeliveryPending, retry: true},
		{name: "503 at the deadline fails", code: 503, age: deadline, status: fabric.DeliveryFailed},
		{name: "no answer past the deadline fails", code: 0, age: 2 * deadline, status: fabric.DeliveryFailed},
		{name: "404 fails at once", code: 404, age: 0, status: fabric.DeliveryFailed},
		{name: "401 fails at once", code: 401, age: 0, status: fabric.DeliveryFailed},
		{name: "302 fails at once", code: 302, age: 0, status: fabric.DeliveryFailed},
	}
	for _, tt := range tests {
		status, retry := fabric.DecideDelivery(tt.code, tt.age, deadline)
		if status != tt.status || retry != tt.retry {
			t.Errorf("%s: DecideDelivery(%d, %s) = %s, %v; want %s, %v", tt.name, tt.code, tt.age, status, retry, tt.status, tt.retry)
		}
	}
}

func TestDeliveryBackoff(t *testing.T) {
	for _, tt := range []struct {
		attempt int
		want    time.Duration
	}{
		{attempt: 1, want: 5 * time.Second}, {attempt: 2, want: 10 * time.Second}, {attempt: 4, want: 40 * time.Second},
		{attempt: 8, want: 5 * time.Minute}, {attempt: 100, want: 5 * time.Minute},
	} {
		if got := fabric.DeliveryBackoff(tt.attempt, 5*time.Second, 5*time.Minute); got != tt.want {
			t.Errorf("DeliveryBackoff(%d) = %s, want %s", tt.attempt, got, tt.want)
		}
	}
}

func TestSubscriptionWants(t *testing.T) {
	host := func(seg string) *fabric.Change {
		return &fabric.Change{Host: &fabric.Host{Name: "d1", Segment: seg}}
	}
	pending := []fabric.EventKind{fabric.EventChangePending}
	tests := []struct {
		name string
		sub  fabric.Subscription
		e    fabric.Event
		want bool
	}{
		{name: "kind and any segment", sub: fabric.Subscription{Events: pending}, e: fabric.Event{Kind: fabric.EventChangePending, Change: host("rack1")}, want: true},
		{name: "other kind", sub: fabric.Subscription{Events: pending}, e: fabric.Event{Kind: fabric.EventChangeApplied, Change: host("rack1")}},
		{name: "listed segment", sub: fabric.Subscription{Events: pending, Segments: []string{"rack1"}}, e: fabric.Event{Kind: fabric.EventChangePending, Change: host("rack1")}, want: true},
		{name: "other segment", sub: fabric.Subscription{Events: pending, Segments: []string{"rack2"}}, e: fabric.Event{Kind: fabric.EventChangePending, Change: host("rack1")}},
		{name: "no host, segments listed", sub: fabric.Subscription{Events: pending, Segments: []string{"rack1"}}, e: fabric.Event{Kind: fabric.EventChangePending, Change: &fabric.Change{}}},
		{name: "reroute of a listed segment", sub: fabric.Subscription{Events: pending, Segments: []string{"rack1"}},
			e: fabric.Event{Kind: fabric.EventChangePending, Change: &fabric.Change{Kind: fabric.ChangeReroute, Segment: "rack1"}}, want: true},
		{name: "reroute of another segment", sub: fabric.Subscription{Events: pending, Segments: []string{"rack2"}},
			e: fabric.Event{Kind: fabric.EventChangePending, Change: &fabric.Change{Kind: fabric.ChangeReroute, Segment: "rack1"}}},
		{name: "drift, no segments", sub: fabric.Subscription{Events: []fabric.EventKind{fabric.EventDriftFound}}, e: fabric.Event{Kind: fabric.EventDriftFound}, want: true},
	}
	for _, tt := range tests {
		if got := tt.sub.Wants(tt.e); got != tt.want {
			t.Errorf("%s: Wants = %v, want %v", tt.name, got, tt.want)
		}
	}
}
