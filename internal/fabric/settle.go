package fabric

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Settlement is what the statuses of a change's ops mean for the change, its ops and its host,
// as Settle decides it. The zero value means "nothing to do".
type Settlement struct {
	// Ready are the devices that now have work for the change: its next stage, or the first
	// stage of its undo.
	Ready []string
	// SkipPending marks every pending op skipped: the change will never send them.
	SkipPending bool
	// Undo are the rollback ops to file, staged, in reverse apply order: the last op applied
	// is undone first.
	Undo []ChangeOp
	// UndoneForward marks the change's applied forward ops rolled_back: their undo is done.
	UndoneForward bool
	// Reason is the change's reason from now on; "" keeps the one it has.
	Reason string
	// Event is a line of history for a change that goes on ("" What: none). A change that
	// ends gets its final status and Reason as its event.
	Event ChangeEvent
	// Final is the status the change ends in: applied, rolled_back or failed; "" while work
	// remains.
	Final ChangeStatus
	// Host is the host's state from now on, when the change ends: an added host becomes
	// active; a removed host becomes removed, which releases its subnet. "" leaves it as it is.
	Host HostState
}

// Settle decides what a change's op statuses mean after a session: go on with the next stage,
// start undoing (all or nothing per change) when an op failed, once every other device of the
// failed stage has finished its session (applied, failed, or given up retrying), or end the change as applied,
// rolled_back (every applied op undone, or nothing applied) or failed (the undo failed too, so
// the devices hold part of the change: the reason says which). A change already final is left
// alone.
func Settle(ch Change) Settlement {
	if ch.Status.Final() {
		return Settlement{}
	}
	var forward, rollback []ChangeOp
	for _, o := range ch.Ops {
		if o.Rollback {
			rollback = append(rollback, o)
		} else {
			forward = append(forward, o)
		}
	}
	if len(rollback) > 0 {
		return settleRollback(ch, forward, rollback)
	}
	failed, applied := byStatus(forward, OpFailed), byStatus(forward, OpApplied)
	if len(failed) > 0 && inFlight(forward, failed) {
		// Another device of the failed stage may be typing its ops right now: skipping them
		// would lose what it applies. Its session records them, and settles the change again.
		return Settlement{}
	}
	switch {
	case len(failed) > 0 && len(applied) == 0:
		return Settlement{SkipPending: true, Final: ChangeRolledBack, Reason: "nothing was applied: " + describeFailure(failed)}
	case len(failed) > 0:
		reason := describeFailure(failed)
		undo := undoOps(applied)
		return Settlement{SkipPending: true, Undo: undo, Ready: readyDevices(undo), Reason: reason,
			Event: ChangeEvent{What: "rolling_back", Detail: "undoing " + strings.Replace(CountOps(len(applied)), " op", " applied op", 1) + " because " + reason}}
	case len(applied) == len(forward):
		s := Settlement{Final: ChangeApplied}
		if ch.Host != nil {
			switch ch.Kind {
			case ChangeAdd:
				s.Host = HostActive
			case ChangeRemove:
				s.Host = HostRemoved
			}
		}
		return s
	}
	return Settlement{Ready: readyDevices(forward)}
}

// settleRollback settles a change whose undo is under way.
func settleRollback(ch Change, forward, rollback []ChangeOp) Settlement {
	failed := byStatus(rollback, OpFailed)
	if len(failed) > 0 && inFlight(rollback, failed) {
		return Settlement{}
	}
	if len(failed) > 0 {
		state := make([]string, 0, len(forward)+len(rollback))
		for _, o := range forward {
			state = append(state, fmt.Sprintf("%s %s: %s", o.Device, o.Op, o.Status))
		}
		for _, o := range rollback {
			state = append(state, fmt.Sprintf("%s undo %s: %s", o.Device, o.Op, o.Status))
		}
		return Settlement{SkipPending: true, Final: ChangeFailed,
			Reason: fmt.Sprintf("%s; the undo failed too (%s); device state: %s", ch.Reason, describeFailure(failed), strings.Join(state, "; "))}
	}
	if len(byStatus(rollback, OpApplied)) == len(rollback) {
		return Settlement{UndoneForward: true, Final: ChangeRolledBack, Reason: ch.Reason}
	}
	return Settlement{Ready: readyDevices(rollback)}
}

func byStatus(ops []ChangeOp, s OpStatus) []ChangeOp {
	var out []ChangeOp
	for _, o := range ops {
		if o.Status == s {
			out = append(out, o)
		}
	}
	return out
}

// inFlight reports whether an op of the stage of a failed op is still pending: its
// device (applied in parallel with the failed one) may be in a session that sends it.
func inFlight(forward, failed []ChangeOp) bool {
	for _, o := range forward {
		if o.Status == OpPending && slices.ContainsFunc(failed, func(f ChangeOp) bool { return f.Stage == o.Stage }) {
			return true
		}
	}
	return false
}

// undoOps returns the inverse of the applied ops, last applied first, staged in the reverse of
// their stages: the devices of a parallel stage are undone in parallel too.
func undoOps(applied []ChangeOp) []ChangeOp {
	applied = slices.Clone(applied)
	slices.SortFunc(applied, func(a, b ChangeOp) int { return b.Seq - a.Seq })
	undo := make([]ChangeOp, 0, len(applied))
	stage, last := -1, -1
	for i, o := range applied {
		if o.Stage != last {
			stage, last = stage+1, o.Stage
		}
		undo = append(undo, ChangeOp{Seq: i, Stage: stage, Device: o.Device, Op: o.Op.Inverse(), Preview: "undo: " + o.Preview,
			Status: OpPending, Rollback: true})
	}
	return undo
}

// readyDevices returns the devices of the lowest stage that still has pending ops, if every
// op of the stages before it is applied.
func readyDevices(ops []ChangeOp) []string {
	stage := -1
	for _, o := range ops {
		if o.Status == OpPending && (stage < 0 || o.Stage < stage) {
			stage = o.Stage
		}
	}
	var out []string
	for _, o := range ops {
		if o.Stage < stage && o.Status != OpApplied {
			return nil
		}
		if o.Stage == stage && o.Status == OpPending && !slices.Contains(out, o.Device) {
			out = append(out, o.Device)
		}
	}
	return out
}

func describeFailure(failed []ChangeOp) string {
	parts := make([]string, 0, len(failed))
	for _, o := range failed {
		msg := o.Device + ": " + o.Op.String() + ": " + o.Error
		if o.Output != "" {
			msg += " (device said: " + o.Output + ")"
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, "; ")
}

// Ended is what became of a change the apply engine finished: the line the engine logs and
// the ops its metrics count, each once, in their final status.
type Ended struct {
	ID      int64
	Kind    ChangeKind
	Host    string // "" for a change of no host (remediation)
	Status  ChangeStatus
	Reason  string
	Devices []string // every device the change had ops for, in apply order
	// Took is from the change's first apply session (its applying event) to its end; from
	// its filing when it never reached a session.
	Took time.Duration
	Ops  []ChangeOp
}

// Summarize describes ch, which ended at end.
func Summarize(ch Change, end time.Time) Ended {
	e := Ended{ID: ch.ID, Kind: ch.Kind, Status: ch.Status, Reason: ch.Reason, Ops: ch.Ops}
	if ch.Host != nil {
		e.Host = ch.Host.Name
	}
	for _, o := range ch.Ops {
		if !slices.Contains(e.Devices, o.Device) {
			e.Devices = append(e.Devices, o.Device)
		}
	}
	from := ch.CreatedAt
	for _, ev := range ch.Events {
		if ev.What == string(ChangeApplying) {
			from = ev.At
			break
		}
	}
	if end.After(from) {
		e.Took = end.Sub(from)
	}
	return e
}
