-- +goose Up
-- Sessions of the review desk (/ui/). The browser's cookie holds only the random session id;
-- the table keeps its SHA-256, so that a copy of the table opens no session. A session either
-- stands for a token (token_name; revoking the token ends the session, because every lookup
-- joins on the live token) or for a user an authenticating proxy named (proxy_user with the
-- role the configuration maps it to). csrf is the per-session secret every form quotes.
CREATE TABLE ui_sessions (
    id_hash     bytea PRIMARY KEY,
    token_name  text REFERENCES tokens (name) ON DELETE CASCADE,
    proxy_user  text,
    proxy_role  text CHECK (proxy_role IN ('viewer', 'bootstrap', 'reviewer', 'admin')),
    csrf        bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CHECK ((token_name IS NULL) <> (proxy_user IS NULL)),
    CHECK ((proxy_user IS NULL) = (proxy_role IS NULL)),
    CHECK (expires_at > created_at)
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
