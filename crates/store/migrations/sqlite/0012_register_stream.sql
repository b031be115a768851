-- 0012: the register is a stream too (issue 19). Each import bumps the register's version and logs
-- which households it added, changed or removed, in the import's own transaction; running workers
-- poll the version and apply the changes. Each identity decision records the register version it
-- was made with, so that records left unmatched (or in review) are linked again once the register
-- has moved past it; the earlier decision is kept in `link_history`.
CREATE TABLE register_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
-- Version 0: the register as it stood before this migration.
INSERT INTO register_version (id, version) VALUES (1, 0);

CREATE TABLE register_changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    version      INTEGER NOT NULL,      -- register_version.version after the import
    import_id    INTEGER NOT NULL REFERENCES register_imports(import_id),
    household_id TEXT NOT NULL,
    change       TEXT NOT NULL CHECK (change IN ('added', 'changed', 'removed', 'restored'))
);
CREATE INDEX register_changes_version ON register_changes(version);

-- Decisions made before this migration count as made with version 0 (before any import).
ALTER TABLE link_decisions ADD COLUMN register_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX link_decisions_relink ON link_decisions(register_version) WHERE outcome <> 'linked';

-- Earlier identity decisions of a record decided again after a register change (the latest one
-- is in link_decisions).
CREATE TABLE link_history (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    seq              INTEGER NOT NULL REFERENCES link_decisions(seq),
    outcome          TEXT NOT NULL,
    household_id     TEXT,
    member_id        TEXT,
    evidence         TEXT NOT NULL,
    decided_at       TEXT NOT NULL,
    register_version INTEGER NOT NULL,
    superseded_at    TEXT NOT NULL,
    superseded_by_register_version INTEGER NOT NULL
);
CREATE INDEX link_history_seq ON link_history(seq);
