-- 0004: the HTTP service (`doudi serve`). API tokens are stored as the SHA-256 of the token (the
-- token itself is printed once, when created, and never stored); each carries a role, the region
-- it may see, the officer it acts as (officers and supervisors), an optional expiry, and once
-- revoked, when and by whom. A token row is never deleted.
CREATE TABLE api_tokens (
    token_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the 32 random bytes
    role         TEXT NOT NULL CHECK (role IN ('officer', 'supervisor', 'auditor', 'admin')),
    region_code  TEXT NOT NULL,             -- prefix of the regions it may see (officer, supervisor)
    officer_id   TEXT,                      -- the officer it acts as (moves, decisions)
    label        TEXT NOT NULL DEFAULT '',
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,                      -- NULL: never
    revoked_at   TEXT,
    revoked_by   TEXT
);
