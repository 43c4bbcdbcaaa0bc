package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// uiSessionIDBytes is the entropy of a review-desk session id: 256 bits, so that a fast hash
// at rest is enough (as for tokens).
const uiSessionIDBytes = 32

func hashSessionID(id string) []byte {
	sum := sha256.Sum256([]byte(id))
	return sum[:]
}

// CreateUISession signs a into the review desk for ttl and returns the session's id (for the
// browser's cookie, never stored) and the session. A token session (proxy false) names a's
// token, which must be live; a proxy session stores a's name and role as the proxy gave them.
// Expired sessions are swept in the same transaction, and the sign-in is audited.
func (db *DB) CreateUISession(ctx context.Context, a fabric.Actor, proxy bool, ttl time.Duration) (string, fabric.UISession, error) {
	if ttl <= 0 {
		return "", fabric.UISession{}, fabric.Errorf(fabric.EINVALID, "a session needs a positive lifetime, not %s", ttl)
	}
	raw := make([]byte, uiSessionIDBytes)
	csrf := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fabric.UISession{}, err
	}
	if _, err := rand.Read(csrf); err != nil {
		return "", fabric.UISession{}, err
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	now := db.Now()
	s := fabric.UISession{Actor: a, Proxy: proxy, CSRF: csrf, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	var tokenName, proxyUser, proxyRole *string
	if proxy {
		role := string(a.Role)
		proxyUser, proxyRole = &a.Name, &role
	} else {
		tokenName = &a.Name
	}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM ui_sessions WHERE expires_at <= $1`, now); err != nil {
			return formatError(err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO ui_sessions (id_hash, token_name, proxy_user, proxy_role, csrf, created_at, expires_at)
			SELECT $1, $2, $3, $4, $5, $6, $7
			WHERE $2::text IS NULL OR EXISTS (SELECT 1 FROM tokens WHERE name = $2 AND revoked_at IS NULL)`,
			hashSessionID(id), tokenName, proxyUser, proxyRole, csrf, now, s.ExpiresAt)
		if err != nil {
			return formatError(err)
		}
		if tag.RowsAffected() == 0 {
			return fabric.Errorf(fabric.EUNAUTHORIZED, "unknown or revoked token")
		}
		details := map[string]any{"role": string(a.Role), "expires_at": s.ExpiresAt, "proxy": proxy}
		return insertAudit(ctx, tx, now, a.Name, "ui.login", "ui_session", details)
	})
	if err != nil {
		return "", fabric.UISession{}, err
	}
	return id, s, nil
}

// UISession returns the live session with id: not expired, and for a token session, its token
// not revoked (the lookup joins on the live token, so a revocation ends every session of the
// token at once, in every process). Anything else is EUNAUTHORIZED.
func (db *DB) UISession(ctx context.Context, id string) (fabric.UISession, error) {
	var s fabric.UISession
	var tokenName, proxyUser, proxyRole, role, owner *string
	var segments []string
	err := db.Pool.QueryRow(ctx, `SELECT s.token_name, s.proxy_user, s.proxy_role, s.csrf, s.created_at, s.expires_at,
			t.role, t.owner, t.segments
		FROM ui_sessions s LEFT JOIN tokens t ON t.name = s.token_name AND t.revoked_at IS NULL
		WHERE s.id_hash = $1 AND s.expires_at > $2`, hashSessionID(id), db.Now()).
		Scan(&tokenName, &proxyUser, &proxyRole, &s.CSRF, &s.CreatedAt, &s.ExpiresAt, &role, &owner, &segments)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fabric.Errorf(fabric.EUNAUTHORIZED, "no such session, or it expired: sign in again")
	}
	if err != nil {
		return s, formatError(err)
	}
	switch {
	case proxyUser != nil && proxyRole != nil:
		s.Proxy = true
		s.Actor = fabric.Actor{Name: *proxyUser, Role: fabric.Role(*proxyRole), Owner: *proxyUser}
	case tokenName != nil && role != nil:
		s.Actor = fabric.Actor{Name: *tokenName, Role: fabric.Role(*role), Segments: segments}
		if owner != nil {
			s.Actor.Owner = *owner
		}
	default: // the token was revoked
		return fabric.UISession{}, fabric.Errorf(fabric.EUNAUTHORIZED, "the session's token was revoked: sign in again")
	}
	return s, nil
}

// DeleteUISession ends the session with id (a sign-out by actor, audited). Ending a session
// that does not exist is not an error: the user is signed out either way.
func (db *DB) DeleteUISession(ctx context.Context, actor, id string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM ui_sessions WHERE id_hash = $1`, hashSessionID(id))
		if err != nil {
			return formatError(err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		return insertAudit(ctx, tx, db.Now(), actor, "ui.logout", "ui_session", nil)
	})
}
