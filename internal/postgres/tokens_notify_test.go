package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/returnpath/returnpath/internal/fabric"
	"github.com/returnpath/returnpath/internal/postgres"
	"github.com/returnpath/returnpath/internal/postgres/pgtest"
)

// openProcess opens a postgres.DB on url as a serve process would, its clock frozen so that
// its token cache never expires on its own during the test, with a hub watching its tokens.
func openProcess(t *testing.T, url string) (*postgres.DB, *testHub) {
	t.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	now := time.Now().UTC()
	db.Now = func() time.Time { return now }
	return db, startHub(t, db, db.WatchTokens)
}

// revokeQuietly revokes (or restores) a token in SQL, without the notification RevokeToken
// sends: what a process's cache cannot have heard of.
func revokeQuietly(t *testing.T, db *postgres.DB, name string, revoked bool) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), `UPDATE tokens SET revoked_at = CASE WHEN $2 THEN now() END WHERE name = $1`, name, revoked)
	if err != nil {
		t.Fatal(err)
	}
}

// TestRevocationReachesEveryProcessAtOnce: process B trusts a token from its cache; process A
// revokes it; B refuses it as soon as its hub has handled the notification, not a TTL later.
func TestRevocationReachesEveryProcessAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	a, _ := openProcess(t, url)
	b, hubB := openProcess(t, url)
	secret, err := a.CreateToken(ctx, "cli", fabric.Token{Name: "ci", Role: fabric.RoleViewer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	// B answers from its cache: a revocation it cannot hear goes unnoticed.
	revokeQuietly(t, a, "ci", true)
	if _, err := b.Authenticate(ctx, secret); err != nil {
		t.Fatalf("B does not cache the token (Authenticate = %v): this test would prove nothing", err)
	}
	revokeQuietly(t, a, "ci", false)

	revoked := hubB.Subscribe(postgres.ChannelTokens, "ci")
	defer revoked.Close()
	if err := a.RevokeToken(ctx, "cli", "ci"); err != nil {
		t.Fatal(err)
	}
	// Handlers (B's cache) run before subscriptions are woken.
	waitWoken(t, revoked.C, "B's hub hearing the revocation")
	if _, err := b.Authenticate(ctx, secret); fabric.ErrorCode(err) != fabric.EUNAUTHORIZED {
		t.Errorf("B still accepts the revoked token: Authenticate = %v, want %s", err, fabric.EUNAUTHORIZED)
	}
}

// TestTokenCacheOffWhileListenerDown: while B's listener is disconnected B could miss a
// revocation, so it looks every token up; once it is back, it caches again.
func TestTokenCacheOffWhileListenerDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	a, _ := openProcess(t, url)
	b, hubB := openProcess(t, url)
	secret, err := a.CreateToken(ctx, "cli", fabric.Token{Name: "ci", Role: fabric.RoleViewer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}

	hubB.down.Store(true)
	terminateListeners(t, b)
	hubB.waitFor(t, postgres.Disconnected)
	if _, err := b.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	revokeQuietly(t, a, "ci", true)
	if _, err := b.Authenticate(ctx, secret); fabric.ErrorCode(err) != fabric.EUNAUTHORIZED {
		t.Errorf("with its listener down B answered from its cache: Authenticate = %v, want %s", err, fabric.EUNAUTHORIZED)
	}
	revokeQuietly(t, a, "ci", false)

	hubB.down.Store(false)
	hubB.waitFor(t, postgres.Connected)
	if _, err := b.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	revokeQuietly(t, a, "ci", true)
	if _, err := b.Authenticate(ctx, secret); err != nil {
		t.Errorf("back online, B does not cache tokens again: Authenticate = %v", err)
	}
}
