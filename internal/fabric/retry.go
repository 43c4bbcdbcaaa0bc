package fabric

import "time"

// RetryState is what deciding a retry needs besides the change itself (whose Host is the host
// as it is now).
type RetryState struct {
	// NewestChange is the id of the newest change of the change's host (0 without a host).
	NewestChange int64
	// Overlap names another live host whose subnet overlaps the host's: the subnet was
	// released and handed out again. "" when none does.
	Overlap string
	// Replan returns the plan the change would have if it were filed now, from the current
	// inventory and host.
	Replan func() ([]ChangeOp, error)
}

// RetryPlan is what a retry applies.
type RetryPlan struct {
	// Ops is the plan to apply from the start: every forward op pending, with no attempts, so
	// that an unreachable device gets its whole retry deadline again. The engine reads each
	// device first and sends only what it lacks, so ops that did land are not sent twice.
	Ops      []ChangeOp
	PlanHash string
	// Replanned reports that the plan is not the one stored (and reviewed): it must be stored
	// and shown, and the retry refused (StalePlanError) until it is retried again.
	Replanned bool
	// Ready are the devices of the plan's first stage.
	Ready []string
}

// Retry decides whether a change may be applied again and with which plan. Only a change that
// ended without being applied (failed, rolled_back) may; and, for a change of a host, only
// while the host is still where the change left it: its subnet not released nor handed to
// another host, an add's host still pending, a remove's host still removing, and no newer
// change filed for the host since.
func Retry(ch Change, st RetryState) (RetryPlan, error) {
	if ch.Status != ChangeFailed && ch.Status != ChangeRolledBack {
		return RetryPlan{}, Errorf(ECONFLICT, "change %d is %s; only failed or rolled_back changes can be retried", ch.ID, ch.Status)
	}
	if h := ch.Host; h != nil {
		switch {
		case st.Overlap != "":
			return RetryPlan{}, Errorf(ECONFLICT, "change %d cannot be retried: subnet %s of host %s was released and now belongs to host %s",
				ch.ID, h.Subnets(), h.Name, st.Overlap)
		case h.State == HostRemoved:
			return RetryPlan{}, Errorf(ECONFLICT, "change %d cannot be retried: host %s was removed and its subnet %s released; register the host again",
				ch.ID, h.Name, h.Subnets())
		case st.NewestChange != ch.ID:
			return RetryPlan{}, Errorf(ECONFLICT, "change %d cannot be retried: host %s has a newer change %d", ch.ID, h.Name, st.NewestChange)
		case ch.Kind == ChangeAdd && h.State != HostPending:
			return RetryPlan{}, Errorf(ECONFLICT, "change %d cannot be retried: host %s is %s, no longer pending", ch.ID, h.Name, h.State)
		case ch.Kind == ChangeRemove && h.State != HostRemoving:
			return RetryPlan{}, Errorf(ECONFLICT, "change %d cannot be retried: host %s is %s, not removing", ch.ID, h.Name, h.State)
		}
	}
	plan, err := st.Replan()
	if err != nil {
		return RetryPlan{}, err
	}
	ops := make([]ChangeOp, 0, len(plan))
	for _, o := range plan {
		if o.Rollback {
			continue // a leftover undo: applying the plan again converges whatever it left
		}
		ops = append(ops, ChangeOp{Seq: o.Seq, Stage: o.Stage, Device: o.Device, Op: o.Op, Preview: o.Preview, Status: OpPending})
	}
	hash := PlanHash(ops)
	return RetryPlan{Ops: ops, PlanHash: hash, Replanned: hash != ch.PlanHash, Ready: readyDevices(ops)}, nil
}

// GivesUpAt is when the apply engine stops retrying an op whose device it first failed to
// reach at firstError: the first session after that time fails the op instead of retrying.
// The engine decides with it and the API shows it, so that what the API promises is what the
// engine does.
func GivesUpAt(firstError time.Time, deadline time.Duration) time.Time {
	return firstError.Add(deadline)
}

// RetryWindow fills in op's GivesUpAt from its FirstErrorAt: set only while the op is pending
// and its device has been unreachable. Ops that settled keep no retry promise.
func RetryWindow(op ChangeOp, deadline time.Duration) ChangeOp {
	op.GivesUpAt = time.Time{}
	if op.Status != OpPending {
		op.NextAttemptAt = time.Time{}
		return op
	}
	if !op.FirstErrorAt.IsZero() && deadline > 0 {
		op.GivesUpAt = GivesUpAt(op.FirstErrorAt, deadline)
	}
	return op
}
