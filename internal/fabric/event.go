package fabric

import (
	"slices"
	"time"
)

// EventKind names something that happened which outgoing webhooks may be told of.
type EventKind string

// Event kinds. A change emits one when it enters the status of the same name.
const (
	EventChangePending    EventKind = "change.pending"
	EventChangeApproved   EventKind = "change.approved"
	EventChangeApplied    EventKind = "change.applied"
	EventChangeRolledBack EventKind = "change.rolled_back"
	EventChangeFailed     EventKind = "change.failed"
	EventDriftFound       EventKind = "drift.found"
	// EventProbeFailed may be subscribed to, but nothing emits it until host probes exist.
	EventProbeFailed EventKind = "probe.failed"
)

// EventKinds lists every event kind, in the order the documentation gives them.
var EventKinds = []EventKind{EventChangePending, EventChangeApproved, EventChangeApplied, EventChangeRolledBack,
	EventChangeFailed, EventDriftFound, EventProbeFailed}

// Validate reports whether k is a known event kind.
func (k EventKind) Validate() error {
	if slices.Contains(EventKinds, k) {
		return nil
	}
	return Errorf(EINVALID, "unknown event %q", string(k))
}

// StatusEvent returns the event a change emits when it enters status s, if any: rejected and
// applying are not events.
func StatusEvent(s ChangeStatus) (EventKind, bool) {
	switch s {
	case ChangePending:
		return EventChangePending, true
	case ChangeApproved:
		return EventChangeApproved, true
	case ChangeApplied:
		return EventChangeApplied, true
	case ChangeRolledBack:
		return EventChangeRolledBack, true
	case ChangeFailed:
		return EventChangeFailed, true
	}
	return "", false
}

// DeviceDrift is how many routes of one device differ from intent.
type DeviceDrift struct {
	Device       string
	Missing      int
	Unexpected   int
	WrongNextHop int
}

// Event is one thing that happened, as webhooks are told of it.
type Event struct {
	Kind   EventKind
	At     time.Time
	Change *Change       // change.* events: the change as it is in the committing transaction
	Drift  []DeviceDrift // drift.found: the devices that drift
}

// Segment is the segment the event concerns: its change's host's or a reroute change's own;
// "" for events of no segment (remediate changes, drift).
func (e Event) Segment() string {
	switch {
	case e.Change == nil:
		return ""
	case e.Change.Host != nil:
		return e.Change.Host.Segment
	}
	return e.Change.Segment
}

// Subscription is what a webhook wants to hear of.
type Subscription struct {
	Events []EventKind
	// Segments limits the webhook to events of hosts in these segments; empty means every
	// event. A webhook limited to segments hears nothing of events of no host.
	Segments []string
}

// Wants reports whether a webhook with subscription s is told of e.
func (s Subscription) Wants(e Event) bool {
	if !slices.Contains(s.Events, e.Kind) {
		return false
	}
	return len(s.Segments) == 0 || slices.Contains(s.Segments, e.Segment())
}

// DeliveryStatus is where one webhook delivery is.
type DeliveryStatus string

// Delivery statuses: pending (queued or being retried) -> delivered or failed.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Validate reports whether s is a known delivery status.
func (s DeliveryStatus) Validate() error {
	switch s {
	case DeliveryPending, DeliveryDelivered, DeliveryFailed:
		return nil
	}
	return FieldErrorf(EINVALID, "status", "unknown delivery status %q", string(s))
}

// Delivery is one event on its way to one webhook. Body is exactly what is POSTed, every
// attempt: the receiver deduplicates on ID, and the signature of a retry is the same.
type Delivery struct {
	ID             int64
	Webhook        string
	Event          EventKind
	ChangeID       int64 // 0: an event of no change
	Body           []byte
	Status         DeliveryStatus
	Attempts       int
	ResponseStatus int // the HTTP status of the last attempt; 0: none (no answer yet, or a timeout)
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	DeliveredAt    *time.Time
}

// DeliveryFilter selects deliveries, newest first.
type DeliveryFilter struct {
	Status  DeliveryStatus
	Webhook string
	Before  int64 // keyset cursor: ids below this one; 0 means the newest
	Limit   int
}

// DeliveryRetryable reports whether an attempt that got HTTP status code (0: no answer: a
// timeout or a connection error) may be tried again: no answer and 5xx, and 408 and 429, which
// ask the sender to come back later. The receiver's other refusals (3xx, 4xx) are final:
// sending the same bytes again cannot change the answer.
func DeliveryRetryable(code int) bool {
	return code == 0 || code >= 500 || code == 408 || code == 429
}

// DecideDelivery says what becomes of a delivery after an attempt that got HTTP status code
// (0: no answer), age after it was queued, when it may be retried until deadline: a 2xx
// answer delivers it, a retryable one (DeliveryRetryable) leaves it pending for another
// attempt until the deadline, and anything else fails it.
func DecideDelivery(code int, age, deadline time.Duration) (status DeliveryStatus, retry bool) {
	switch {
	case code >= 200 && code < 300:
		return DeliveryDelivered, false
	case DeliveryRetryable(code) && age < deadline:
		return DeliveryPending, true
	}
	return DeliveryFailed, false
}

// DeliveryBackoff is how long to wait before attempt n+1 (n >= 1) of a delivery: base doubled
// each attempt, at most max.
func DeliveryBackoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
