-- 0006: sign-in sessions of the HTTP service's pages, apart from API tokens. Signing in with an
-- API token opens a session: a new random token (stored as its SHA-256, as API tokens are) held in
-- the browser's cookie, acting with the API token's role and region while that token stays valid.
-- Signing out ends the session (`ended_at`) and leaves the API token — perhaps shared with
-- scripts — as it was. A session row is never deleted.
CREATE TABLE sessions (
    session_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    session_hash  TEXT NOT NULL UNIQUE,
    token_id      INTEGER NOT NULL REFERENCES api_tokens (token_id),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    ended_at      TEXT
);
