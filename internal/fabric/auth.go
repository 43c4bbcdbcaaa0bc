package fabric

import (
	"slices"
	"time"
)

// Role is what an API token may do.
type Role string

// Roles, from least to most powerful.
const (
	RoleViewer    Role = "viewer"    // read and verify
	RoleBootstrap Role = "bootstrap" // viewer, plus register and remove hosts
	RoleReviewer  Role = "reviewer"  // viewer, plus approve and reject changes
	RoleAdmin     Role = "admin"     // everything
)

// Permission is one thing an API call needs.
type Permission string

// Permissions checked by the API.
const (
	PermRead   Permission = "read"
	PermHosts  Permission = "hosts:write"
	PermReview Permission = "changes:review"
	PermAdmin  Permission = "admin"
)

// Validate reports whether r is a known role.
func (r Role) Validate() error {
	switch r {
	case RoleViewer, RoleBootstrap, RoleReviewer, RoleAdmin:
		return nil
	}
	return FieldErrorf(EINVALID, "role", "unknown role %q (want viewer, bootstrap, reviewer or admin)", string(r))
}

// Can reports whether role r holds permission p.
func (r Role) Can(p Permission) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleBootstrap:
		return p == PermRead || p == PermHosts
	case RoleReviewer:
		return p == PermRead || p == PermReview
	case RoleViewer:
		return p == PermRead
	}
	return false
}

// Names of the service's own actors, as they appear in audit entries and changes. No token
// may take one (nor be owned by one): an audit entry by "apply" must mean the apply engine,
// not a token someone named so.
const (
	ActorApply       = "apply"        // the apply engine settling changes and releasing subnets
	ActorDriftCheck  = "drift-check"  // the periodic drift check proposing remediation
	ActorCLI         = "cli"          // the returnpath command line talking to the database
	ActorSystem      = "system"       // the service itself, for anything else
	ActorReload      = "reload"       // a configuration reload (SIGHUP, or a start with an edited file) filing reroutes
	ActorLeaseReaper = "lease-reaper" // the periodic job removing hosts whose lease expired
)

// reservedNames are the names ValidateToken refuses.
var reservedNames = []string{ActorApply, ActorDriftCheck, ActorCLI, ActorSystem, ActorReload, ActorLeaseReaper}

// Token is an API token as stored: the secret itself is never kept, only its hash.
type Token struct {
	Name  string
	Role  Role
	Owner string // the person who answers for the token; required for reviewer and admin tokens
	// Segments are the segments whose hosts the token may register and remove; nil means
	// every segment. Only bootstrap tokens are scoped.
	Segments  []string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Validate checks a token about to be created: a valid name that no service actor uses, a
// known role, an owner for the roles that review (the four-eyes rule compares owners, so a
// reviewer without one could approve the changes of the owner's other tokens), and segments
// that inv configures, for bootstrap tokens only.
func (t Token) Validate(inv *Inventory) error {
	if err := ValidateName("name", t.Name); err != nil {
		return err
	}
	if slices.Contains(reservedNames, t.Name) {
		return FieldErrorf(EINVALID, "name", "%q is reserved for the service's own audit entries; pick another name", t.Name)
	}
	if err := t.Role.Validate(); err != nil {
		return err
	}
	switch {
	case t.Owner != "":
		if err := ValidateName("owner", t.Owner); err != nil {
			return err
		}
		if slices.Contains(reservedNames, t.Owner) {
			return FieldErrorf(EINVALID, "owner", "%q is reserved for the service's own audit entries", t.Owner)
		}
	case t.Role == RoleReviewer || t.Role == RoleAdmin:
		return FieldErrorf(EINVALID, "owner", "is required for %s tokens: the four-eyes rule compares owners", t.Role)
	}
	if t.Segments == nil {
		return nil
	}
	if t.Role != RoleBootstrap {
		return FieldErrorf(EINVALID, "segments", "only bootstrap tokens are scoped to segments, not %s tokens", t.Role)
	}
	if len(t.Segments) == 0 {
		return FieldErrorf(EINVALID, "segments", "name at least one segment, or none at all for every segment")
	}
	for i, seg := range t.Segments {
		if slices.Contains(t.Segments[:i], seg) {
			return FieldErrorf(EINVALID, "segments", "segment %q is named twice", seg)
		}
		if inv == nil {
			return FieldErrorf(EINVALID, "segments", "no segment named %q: no inventory is configured", seg)
		}
		if _, ok := inv.Segment(seg); !ok {
			return FieldErrorf(EINVALID, "segments", "no segment named %q in the configured inventory", seg)
		}
	}
	return nil
}

// Actor is who did something: a token's name, role, owner and scope, or a system component
// (one of the Actor* names, with no owner and no scope).
type Actor struct {
	Name     string
	Role     Role
	Owner    string   // "" for the service's own actors and for tokens made before owners existed
	Segments []string // see Token.Segments; nil means every segment
}

// MaySegment reports whether a may register and remove hosts in segment seg.
func (a Actor) MaySegment(seg string) bool {
	return a.Segments == nil || slices.Contains(a.Segments, seg)
}

// Principal is who answers for what a does: its owner, or its name when it has none. The
// four-eyes rule compares principals, so that one person's two tokens count as one person.
func (a Actor) Principal() string {
	if a.Owner != "" {
		return a.Owner
	}
	return a.Name
}

// AuditEntry records one mutation.
type AuditEntry struct {
	ID      int64
	At      time.Time
	Actor   string
	Action  string
	Object  string
	Details map[string]any
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	Before int64 // keyset cursor: entries with a smaller id; 0 means the newest
	Limit  int
	Object string
}
