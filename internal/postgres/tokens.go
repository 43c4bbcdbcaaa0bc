package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/returnpath/returnpath/internal/fabric"
)

// tokenPrefix marks returnpath secrets so that secret scanners and humans recognise them.
const tokenPrefix = "rp_"

func hashToken(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// CreateToken creates token t (its name, role, owner and segments; see fabric.Token.Validate,
// which checks the segments against inv) and returns its secret, which is never stored (only
// its SHA-256; the secret carries 256 random bits, so a fast hash is enough).
func (db *DB) CreateToken(ctx context.Context, actor string, t fabric.Token, inv *fabric.Inventory) (string, error) {
	if err := t.Validate(inv); err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := tokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	var owner *string
	if t.Owner != "" {
		owner = &t.Owner
	}
	details := map[string]any{"role": string(t.Role), "owner": t.Owner, "segments": t.Segments}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		now := db.Now()
		tag, err := tx.Exec(ctx, `INSERT INTO tokens (name, role, owner, segments, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
			t.Name, string(t.Role), owner, t.Segments, hashToken(secret), now)
		if err != nil {
			return formatError(err)
		}
		if tag.RowsAffected() == 0 {
			return fabric.FieldErrorf(fabric.ECONFLICT, "name", "a token named %q exists already (revoked tokens keep their name)", t.Name)
		}
		return insertAudit(ctx, tx, now, actor, "token.create", "token/"+t.Name, details)
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// authCacheTTL bounds how long a process trusts a token it has looked up. It saves a query on
// every API call, about 15% of a registration's database work. A revocation reaches every
// serve process at once through the notification hub (tokens_notify.go); this bound is what
// is left when no hub watches the cache.
const authCacheTTL = 2 * time.Second

// authCacheMax bounds the cache; past it the cache starts over.
const authCacheMax = 10000

type authEntry struct {
	actor   fabric.Actor
	expires time.Time
}

// authCache maps a token's SHA-256 (never the secret) to its actor.
type authCache struct {
	mu sync.Mutex
	m  map[[32]byte]authEntry
	// gen counts invalidations: a lookup that began before one must not fill the cache
	// with what it read before the revocation.
	gen uint64
	// off bypasses the cache while revocations could go unheard (tokens_notify.go).
	off bool
}

// get returns the cached actor, and the generation to hand put after a database lookup.
func (c *authCache) get(h [32]byte, now time.Time) (fabric.Actor, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[h]
	if c.off || !ok || now.After(e.expires) {
		return fabric.Actor{}, c.gen, false
	}
	return e.actor, c.gen, true
}

func (c *authCache) put(h [32]byte, a fabric.Actor, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off || gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= authCacheMax {
		c.m = map[[32]byte]authEntry{}
	}
	c.m[h] = authEntry{actor: a, expires: now.Add(authCacheTTL)}
}

// forget drops every cached token of a name (after a revocation, here or in another process).
func (c *authCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.m {
		if e.actor.Name == name {
			delete(c.m, h)
		}
	}
}

// Authenticate returns the actor of a live token, with its owner and segments.
func (db *DB) Authenticate(ctx context.Context, secret string) (fabric.Actor, error) {
	h := sha256.Sum256([]byte(secret))
	now := db.Now()
	a, gen, ok := db.auth.get(h, now)
	if ok {
		return a, nil
	}
	a, err := db.authenticate(ctx, secret, h)
	if err == nil {
		db.auth.put(h, a, now, gen)
	}
	return a, err
}

func (db *DB) authenticate(ctx context.Context, secret string, hash [32]byte) (fabric.Actor, error) {
	if !strings.HasPrefix(secret, tokenPrefix) {
		return fabric.Actor{}, fabric.Errorf(fabric.EUNAUTHORIZED, "unknown or revoked token")
	}
	var a fabric.Actor
	var role string
	err := db.Pool.QueryRow(ctx, `SELECT name, role, coalesce(owner, ''), segments FROM tokens WHERE hash = $1 AND revoked_at IS NULL`, hash[:]).
		Scan(&a.Name, &role, &a.Owner, &a.Segments)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fabric.Errorf(fabric.EUNAUTHORIZED, "unknown or revoked token")
	}
	a.Role = fabric.Role(role)
	return a, formatError(err)
}

// RevokeToken revokes the named token at once.
func (db *DB) RevokeToken(ctx context.Context, actor, name string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		now := db.Now()
		tag, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL`, name, now)
		if err != nil {
			return formatError(err)
		}
		if tag.RowsAffected() == 0 {
			return fabric.Errorf(fabric.ENOTFOUND, "no live token named %q", name)
		}
		db.auth.forget(name)
		// Every serve process's hub hears this at commit and drops the name from its cache.
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ChannelTokens, name); err != nil {
			return formatError(err)
		}
		return insertAudit(ctx, tx, now, actor, "token.revoke", "token/"+name, nil)
	})
}

// Tokens lists every token, revoked ones included; secrets are not kept and so never listed.
func (db *DB) Tokens(ctx context.Context) ([]fabric.Token, error) {
	rows, err := db.Pool.Query(ctx, `SELECT name, role, coalesce(owner, ''), segments, created_at, revoked_at FROM tokens ORDER BY name`)
	if err != nil {
		return nil, formatError(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fabric.Token, error) {
		var t fabric.Token
		var role string
		var revoked *time.Time
		err := r.Scan(&t.Name, &role, &t.Owner, &t.Segments, &t.CreatedAt, &revoked)
		t.Role, t.RevokedAt = fabric.Role(role), revoked
		return t, err
	})
	return out, formatError(err)
}
