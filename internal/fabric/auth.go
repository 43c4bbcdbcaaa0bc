package fabric

import "time"

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

// Token is an API token as stored: the secret itself is never kept, only its hash.
type Token struct {
	Name      string
	Role      Role
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Actor is who did something: a token's name and role, or a system component.
type Actor struct {
	Name string
	Role Role
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
