package fabric

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ChangeKind is why a change exists.
type ChangeKind string

// Change kinds.
const (
	ChangeAdd       ChangeKind = "add"       // a host was registered: add its return routes
	ChangeRemove    ChangeKind = "remove"    // a host was removed: take its routes away
	ChangeRemediate ChangeKind = "remediate" // drift was found: restore intent
	ChangeReroute   ChangeKind = "reroute"   // a segment's return path changed: move its hosts' routes
)

// ChangeStatus is where a change is in review and apply.
type ChangeStatus string

// Change statuses: pending -> approved -> applying -> applied, or rejected, failed, rolled_back.
const (
	ChangePending    ChangeStatus = "pending"
	ChangeApproved   ChangeStatus = "approved"
	ChangeApplying   ChangeStatus = "applying"
	ChangeApplied    ChangeStatus = "applied"
	ChangeRejected   ChangeStatus = "rejected"
	ChangeFailed     ChangeStatus = "failed"
	ChangeRolledBack ChangeStatus = "rolled_back"
)

// Validate reports whether s is a known status.
func (s ChangeStatus) Validate() error {
	switch s {
	case ChangePending, ChangeApproved, ChangeApplying, ChangeApplied, ChangeRejected, ChangeFailed, ChangeRolledBack:
		return nil
	}
	return FieldErrorf(EINVALID, "status", "unknown change status %q", string(s))
}

// Final reports whether no more work will happen on a change in status s.
func (s ChangeStatus) Final() bool {
	return s == ChangeApplied || s == ChangeRejected || s == ChangeFailed || s == ChangeRolledBack
}

// CountOps says how many ops n is, in words a person reads: "1 op", "2 ops".
func CountOps(n int) string {
	if n == 1 {
		return "1 op"
	}
	return fmt.Sprintf("%d ops", n)
}

// OpStatus is where one op is.
type OpStatus string

// Op statuses.
const (
	OpPending    OpStatus = "pending"
	OpApplied    OpStatus = "applied"
	OpFailed     OpStatus = "failed"
	OpRolledBack OpStatus = "rolled_back"
	OpSkipped    OpStatus = "skipped" // never sent: the change failed or was rejected first
)

// ChangeOp is one route op of a change on one device, in apply order.
type ChangeOp struct {
	ID       int64
	Seq      int // apply order within the change
	Stage    int // ops of a lower stage must be applied before this one is sent
	Device   string
	Op       RouteOp
	Preview  string
	Status   OpStatus
	Attempts int
	Error    string
	Output   string
	Rollback bool // an inverse op that undoes an applied op of a failed change

	// FirstErrorAt is when the op's device first could not be reached for it (zero: never);
	// the engine gives up on it RetryDeadline later (see GivesUpAt).
	FirstErrorAt time.Time
	// NextAttemptAt is, for a pending op, when the engine may next log in to its device after
	// a session that could not reach it (zero: no backoff, it may be tried at once).
	NextAttemptAt time.Time
	// GivesUpAt is, for a pending op whose device is unreachable, when the engine stops
	// retrying and fails it (zero: not retrying, or the store was not told the deadline).
	GivesUpAt time.Time
}

// ChangeEvent is one line of a change's history.
type ChangeEvent struct {
	At     time.Time
	What   string
	Detail string
}

// Change is a reviewed set of route ops for the devices on a return path.
type Change struct {
	ID     int64
	Kind   ChangeKind
	Status ChangeStatus
	Host   *Host
	// Segment is the segment the change concerns: its host's, or a reroute's own; "" for a
	// remediate change.
	Segment     string
	RequestedBy string
	ApprovedBy  string
	Reason      string
	PlanHash    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Ops         []ChangeOp
	Events      []ChangeEvent

	// RequestedOwner is the principal (see Actor.Principal) of the requesting actor, as it
	// was when the change was filed: the four-eyes rule compares it with the approver's.
	RequestedOwner string
}

// PreviewFunc renders ops for a device in its native syntax, without contacting it.
type PreviewFunc func(device string, ops []RouteOp) ([]string, error)

// PlanChange returns the ops a change of kind k needs for host h, in apply order (deletes
// outside-in, adds inside-out), each with its native preview, staged by position on the
// return path: the devices of one route_via entry share a stage.
func (inv *Inventory) PlanChange(k ChangeKind, h Host, preview PreviewFunc) ([]ChangeOp, error) {
	path, err := inv.ReturnPath(h)
	if err != nil {
		return nil, err
	}
	action := ActionAdd
	if k == ChangeRemove {
		action = ActionDelete
	}
	seg, _ := inv.Segment(h.Segment) // ReturnPath found it
	ops := make([]DeviceOp, 0, len(path))
	for _, dr := range path {
		ops = append(ops, DeviceOp{Device: dr.Device, Op: RouteOp{Action: action, Route: dr.Route}})
	}
	return StageOps(seg.Stages(), ops, preview)
}

// StageOps orders ops for the return path (see Order), gives each op its stage and renders
// the previews. Ops on the devices of one path stage that follow each other share a stage, so
// that those devices are applied in parallel; a device off the path is a stage of its own.
func StageOps(path [][]string, ops []DeviceOp, preview PreviewFunc) ([]ChangeOp, error) {
	ordered := Order(path, ops)
	out := make([]ChangeOp, 0, len(ordered))
	stage, last, lastDev := -1, -1, ""
	for i, o := range ordered {
		if err := invalid(o.Op.Validate()); err != nil {
			return nil, err
		}
		pos := stageOf(path, o.Device)
		if pos != last || (pos == len(path) && o.Device != lastDev) {
			stage++
		}
		last, lastDev = pos, o.Device
		lines, err := preview(o.Device, []RouteOp{o.Op})
		if err != nil {
			return nil, fmt.Errorf("preview for %s: %w", o.Device, err)
		}
		out = append(out, ChangeOp{Seq: i, Stage: stage, Device: o.Device, Op: o.Op, Preview: strings.Join(lines, "\n"), Status: OpPending})
	}
	return out, nil
}

// PlanHash is a stable hash of the ops a reviewer sees: device, action, route and preview, in
// order. Approval must quote it, so that nobody approves a plan they were not shown.
func PlanHash(ops []ChangeOp) string {
	h := sha256.New()
	for _, o := range ops {
		if o.Rollback {
			continue
		}
		fmt.Fprintf(h, "%d|%s|%s|%s|%s|%s|%s\n", o.Seq, o.Device, o.Op.Action, o.Op.Route.VRF, o.Op.Route.Prefix, o.Op.Route.NextHop, o.Preview)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// AutoApproveRule approves changes of one kind in some segments without review.
type AutoApproveRule struct {
	Kind     ChangeKind
	Segments []string // empty means every segment
}

// ApprovalPolicy is the review policy.
type ApprovalPolicy struct {
	FourEyes    bool // the requester may not approve their own change
	AutoApprove []AutoApproveRule
}

// ChangeRequest is a change about to be filed, as the approval policy sees it.
type ChangeRequest struct {
	Kind      ChangeKind
	Segment   string // the host's segment; "" for a change of no host
	Requester string // the requesting actor's name
	// HostCreatedBy is the token that registered the host; "" for a change of no host.
	HostCreatedBy string
	// OnExpiry is set only on a removal the lease reaper files: leases.on_expiry decides its
	// approval, not the auto_approve rules.
	OnExpiry LeaseAction
}

// AutoApproval returns the name of the rule that approves change r without review
// ("policy:auto_approve[N]"), if one does. Removing a host that another token registered is
// never approved without review, whatever the rules say: a token scoped to a segment may take
// other tokens' hosts out of it only with a reviewer's consent. A removal the lease reaper files
// is approved by leases.on_expiry alone: remove approves it ("leases.on_expiry"), propose
// leaves it for review whatever the rules say.
func (p ApprovalPolicy) AutoApproval(r ChangeRequest) (string, bool) {
	if r.Kind == ChangeRemove && r.OnExpiry != "" {
		if r.OnExpiry == LeaseRemove {
			return "leases.on_expiry", true
		}
		return "", false
	}
	if r.Kind == ChangeRemove && r.HostCreatedBy != "" && r.HostCreatedBy != r.Requester {
		return "", false
	}
	for i, rule := range p.AutoApprove {
		if rule.Kind != r.Kind {
			continue
		}
		if len(rule.Segments) == 0 || slices.Contains(rule.Segments, r.Segment) {
			return fmt.Sprintf("policy:auto_approve[%d]", i), true
		}
	}
	return "", false
}

// CheckApprover enforces the reviewer role and the four-eyes rule, which compares who answers
// for the requesting and the approving token (their owners), not the tokens' names.
func (p ApprovalPolicy) CheckApprover(c Change, a Actor) error {
	if !a.Role.Can(PermReview) {
		return Errorf(EFORBIDDEN, "token %s has role %s, which may not approve changes", a.Name, a.Role)
	}
	if !p.FourEyes {
		return nil
	}
	requester := c.RequestedOwner
	if requester == "" {
		requester = c.RequestedBy
	}
	if c.RequestedBy == a.Name || requester == a.Principal() {
		return Errorf(EFORBIDDEN, "four-eyes rule: change %d was requested by %s on behalf of %s, who also answers for token %s; someone else must approve it",
			c.ID, c.RequestedBy, requester, a.Name)
	}
	return nil
}

// Why a plan was refused (StalePlanError.Reason): machine-readable, for clients to tell a
// plan that moved under the reviewer from a hash that was never this change's.
const (
	// PlanChanged: the plan is not the one the reviewer was shown (the inventory or the host
	// moved since); the new plan is stored and shown: review it and approve again.
	PlanChanged = "plan_changed"
	// PlanHashMismatch: the quoted hash is not this change's plan hash, although the plan did
	// not change (a typo, a hash copied from another change, or from a plan replaced earlier).
	PlanHashMismatch = "plan_hash_mismatch"
)

// StalePlanError refuses an approval because the plan is not the one the reviewer saw. Change
// holds the plan as it is now, for the reviewer to look at again; Reason says which refusal
// it is (PlanChanged or PlanHashMismatch).
type StalePlanError struct {
	Change  Change
	Message string
	Reason  string
}

func (e *StalePlanError) Error() string { return e.Message }

// Unwrap makes the error a conflict for the API's error table.
func (e *StalePlanError) Unwrap() error {
	return &Error{Code: ECONFLICT, Field: "plan_hash", Message: e.Message}
}

// ProblemReason is the API problem's reason member.
func (e *StalePlanError) ProblemReason() string { return e.Reason }

// CheckPlanHash decides the plan hash an approval of ch quotes. current is the hash of the
// plan as it would be filed now. A plan that changed outranks a wrong quote: the reviewer
// must look at the new plan either way. The StalePlanError carries ch as stored; for
// PlanChanged the caller stores the new plan and shows that instead.
func CheckPlanHash(ch Change, current, quoted string) error {
	switch {
	case current != ch.PlanHash:
		return &StalePlanError{Change: ch, Reason: PlanChanged,
			Message: fmt.Sprintf("the plan of change %d changed since it was shown (now %s); review it again", ch.ID, current)}
	case quoted != ch.PlanHash:
		return &StalePlanError{Change: ch, Reason: PlanHashMismatch,
			Message: fmt.Sprintf("plan_hash %q is not this change's plan hash (it is %s); quote the plan hash that shows change %d's plan", quoted, ch.PlanHash, ch.ID)}
	}
	return nil
}

// ChangeFilter selects changes, newest first.
type ChangeFilter struct {
	Status ChangeStatus
	Host   string
	// Segment selects the changes of one segment (a host's, or a reroute's own); "" means all.
	Segment string
	Before  int64 // keyset cursor: ids below this one; 0 means the newest
	Limit   int
}
