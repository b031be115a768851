-- 0009: feeder tokens (HTTP push of a department's feed, `POST /api/feeds/{source}`). A fifth role,
-- `feeder`, pushes events of one source (`feed_source`) and reads nothing; every other role has no
-- source. SQLite cannot change a CHECK constraint in place, and a migration runs in a transaction
-- with foreign keys on (where renaming a table rewrites the references to it): `api_tokens` is
-- rebuilt under a new name, then `sessions` (which references it) is rebuilt to reference the new
-- table, then the old tables are dropped. Every row and id is kept.
ALTER TABLE api_tokens RENAME TO api_tokens_0004;
CREATE TABLE api_tokens (
    token_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the 32 random bytes
    role         TEXT NOT NULL CHECK (role IN ('officer', 'supervisor', 'auditor', 'admin', 'feeder')),
    region_code  TEXT NOT NULL,             -- prefix of the regions it may see (officer, supervisor)
    officer_id   TEXT,                      -- the officer it acts as (moves, decisions)
    label        TEXT NOT NULL DEFAULT '',
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,                      -- NULL: never
    revoked_at   TEXT,
    revoked_by   TEXT,
    feed_source  TEXT,                      -- the one source a feeder pushes; NULL for every other role
    CHECK ((role = 'feeder') = (feed_source IS NOT NULL))
);
INSERT INTO api_tokens (token_id, token_hash, role, region_code, officer_id, label, created_by,
                        created_at, expires_at, revoked_at, revoked_by)
    SELECT token_id, token_hash, role, region_code, officer_id, label, created_by,
           created_at, expires_at, revoked_at, revoked_by
    FROM api_tokens_0004;
ALTER TABLE sessions RENAME TO sessions_0006;
CREATE TABLE sessions (
    session_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    session_hash  TEXT NOT NULL UNIQUE,
    token_id      INTEGER NOT NULL REFERENCES api_tokens (token_id),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    ended_at      TEXT
);
INSERT INTO sessions (session_id, session_hash, token_id, created_at, expires_at, ended_at)
    SELECT session_id, session_hash, token_id, created_at, expires_at, ended_at FROM sessions_0006;
DROP TABLE sessions_0006;
DROP TABLE api_tokens_0004;
