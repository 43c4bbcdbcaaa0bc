package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// TestUISessionLifecycle: a token's session carries the token's actor; the id is not stored;
// the session ends at expiry, at sign-out, and when its token is revoked.
func TestUISessionLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	db.Now = func() time.Time { return now }
	if _, err := db.CreateToken(ctx, "cli", fabric.Token{Name: "bob", Role: fabric.RoleReviewer, Owner: "bob"}, nil); err != nil {
		t.Fatal(err)
	}
	bob := fabric.Actor{Name: "bob", Role: fabric.RoleReviewer, Owner: "bob"}
	id, s, err := db.CreateUISession(ctx, bob, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.CSRF) != 32 || !s.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("CreateUISession() = %+v", s)
	}
	got, err := db.UISession(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Actor.Name != "bob" || got.Actor.Role != fabric.RoleReviewer || got.Actor.Owner != "bob" || got.Proxy || string(got.CSRF) != string(s.CSRF) {
		t.Errorf("UISession() = %+v, want bob's reviewer session", got)
	}
	var stored int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM ui_sessions WHERE id_hash = $1::text::bytea`, id).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("the session id is stored in clear (%d rows, %v)", stored, err)
	}
	if _, err := db.UISession(ctx, id+"x"); code(err) != fabric.EUNAUTHORIZED {
		t.Errorf("UISession(wrong id) = %v, want unauthorized", err)
	}

	// Expiry.
	db.Now = func() time.Time { return now.Add(time.Hour) }
	if _, err := db.UISession(ctx, id); code(err) != fabric.EUNAUTHORIZED {
		t.Errorf("UISession() at expiry = %v, want unauthorized", err)
	}
	db.Now = func() time.Time { return now }

	// Sign-out, audited.
	if err := db.DeleteUISession(ctx, "bob", id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UISession(ctx, id); code(err) != fabric.EUNAUTHORIZED {
		t.Errorf("UISession() after sign-out = %v, want unauthorized", err)
	}
	var audited int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit WHERE actor = 'bob' AND action IN ('ui.login', 'ui.logout')`).Scan(&audited); err != nil || audited != 2 {
		t.Errorf("audited sign-ins and sign-outs: %d (%v), want 2", audited, err)
	}

	// Revocation ends the token's sessions, and a revoked token cannot start one.
	id2, _, err := db.CreateUISession(ctx, bob, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeToken(ctx, "cli", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UISession(ctx, id2); code(err) != fabric.EUNAUTHORIZED {
		t.Errorf("UISession() after revocation = %v, want unauthorized", err)
	}
	if _, _, err := db.CreateUISession(ctx, bob, false, time.Hour); code(err) != fabric.EUNAUTHORIZED {
		t.Errorf("CreateUISession(revoked token) = %v, want unauthorized", err)
	}
}

// TestUISessionProxy: a proxy session keeps the user and role the proxy's mapping gave, with
// the user as owner (four eyes compares people).
func TestUISessionProxy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	a := fabric.Actor{Name: "carol@example.org", Role: fabric.RoleViewer, Owner: "carol@example.org"}
	id, _, err := db.CreateUISession(ctx, a, true, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.UISession(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Proxy || got.Actor.Name != a.Name || got.Actor.Role != a.Role || got.Actor.Owner != a.Name {
		t.Errorf("UISession() = %+v, want %+v as a proxy session", got, a)
	}
	if _, _, err := db.CreateUISession(ctx, a, true, 0); code(err) != fabric.EINVALID {
		t.Errorf("CreateUISession(ttl 0) = %v, want invalid", err)
	}
}
