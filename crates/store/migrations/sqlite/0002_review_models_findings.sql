-- 0002: the identity review queue, trained linkage models, the officer directory, nightly
-- cross-check findings, and a timeline change counter.

-- A person's decision on an event the linker sent to review (one per event; the automatic decision
-- in link_decisions is never rewritten).
CREATE TABLE review_decisions (
    seq          INTEGER PRIMARY KEY REFERENCES link_decisions(seq),
    decision     TEXT NOT NULL CHECK (decision IN ('link', 'reject')),
    household_id TEXT,
    member_id    TEXT,
    decided_by   TEXT NOT NULL,
    decided_at   TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT ''
);

-- Linkage models (Fellegi–Sunter parameters) as trained; the pipeline uses the active one, so a
-- restarted worker links exactly as before.
CREATE TABLE linkage_models (
    version     TEXT PRIMARY KEY,
    model       TEXT NOT NULL,           -- the model (JSON)
    trained_on  INTEGER NOT NULL,        -- records used to train it
    trained_at  TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX linkage_models_one_active ON linkage_models(active) WHERE active = 1;

-- Appends to timelines from anywhere (a batch, a review decision): the pipeline's in-memory
-- timelines are current only while this is unchanged.
INSERT INTO counters(name, value) VALUES ('timeline_changes', 0);

-- The officer directory (imported whole: officers missing from a later import become inactive).
CREATE TABLE officers (
    officer_id  TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    region_code TEXT NOT NULL,
    record      TEXT NOT NULL,           -- the officer as imported (JSON)
    active      INTEGER NOT NULL DEFAULT 1,
    updated_at  TEXT NOT NULL
);

-- The officer a warning is assigned to (routing by region; NULL: no officer covers the region).
ALTER TABLE warnings ADD COLUMN assigned_to TEXT;

-- Nightly cross-check runs and their findings. One open finding per key (check + subject); a
-- finding no longer true is closed with a note, never deleted.
CREATE TABLE crosscheck_runs (
    run_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    night        TEXT NOT NULL,
    snapshots    TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    rows_read    INTEGER NOT NULL,
    bad_rows     INTEGER NOT NULL,
    opened       INTEGER NOT NULL,
    still_open   INTEGER NOT NULL,
    closed       INTEGER NOT NULL
);

CREATE TABLE findings (
    finding_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL,
    check_code   TEXT NOT NULL,
    household_id TEXT NOT NULL,
    member_id    TEXT,
    region_code  TEXT NOT NULL,
    category     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    amount_fen   INTEGER NOT NULL DEFAULT 0,
    finding      TEXT NOT NULL,          -- the latest finding (JSON: evidence, summaries)
    first_seen   TEXT NOT NULL,          -- night first found
    last_seen    TEXT NOT NULL,          -- last night still true
    deadline     TEXT NOT NULL,
    assigned_to  TEXT,                   -- the officer responsible (routing by region)
    closed_on    TEXT,
    close_note   TEXT,
    opened_run   INTEGER NOT NULL REFERENCES crosscheck_runs(run_id),
    closed_run   INTEGER REFERENCES crosscheck_runs(run_id)
);
CREATE UNIQUE INDEX findings_one_open_per_key ON findings(key) WHERE status = 'open';
CREATE INDEX findings_region ON findings(region_code, status);

-- The warning lifecycle: open → acknowledged → visited → resolved. One active (not resolved)
-- warning per household episode.
DROP INDEX warnings_one_open_per_household;
CREATE UNIQUE INDEX warnings_one_active_per_household ON warnings(household_id) WHERE status <> 'resolved';
ALTER TABLE warnings ADD COLUMN acknowledged_at TEXT;
ALTER TABLE warnings ADD COLUMN visited_at TEXT;
ALTER TABLE warnings ADD COLUMN resolved_at TEXT;
ALTER TABLE warnings ADD COLUMN disposition TEXT;    -- JSON, set on resolve
-- Why a person moved a warning, and for a refused attempt, why it was refused.
ALTER TABLE warning_history ADD COLUMN note TEXT;
ALTER TABLE warning_history ADD COLUMN refused TEXT;

-- Escalation state of a warning.
ALTER TABLE warnings ADD COLUMN ack_steps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE warnings ADD COLUMN resolve_escalated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE warnings ADD COLUMN last_notice_at TEXT;

-- Notices to people: the officer inbox, and the outbox every delivery channel reads from. Written
-- in the same transaction as the change they announce, so none is lost between the decision and
-- the sending.
CREATE TABLE notices (
    notice_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    warning_id   INTEGER NOT NULL REFERENCES warnings(warning_id),
    kind         TEXT NOT NULL,          -- opened, raised, escalated, overdue, reminder
    recipient    TEXT NOT NULL,          -- officer id
    due_at       TEXT NOT NULL,          -- when it fell due
    created_at   TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT '',
    read_at      TEXT,
    delivered_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX notices_recipient ON notices(recipient, notice_id);
CREATE INDEX notices_undelivered ON notices(notice_id) WHERE delivered_at IS NULL;

-- Silences: notices for a household or a region (prefix) are held back for a stated reason and
-- time window; the warnings themselves are still opened and updated.
CREATE TABLE silences (
    silence_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    scope       TEXT NOT NULL CHECK (scope IN ('household', 'region')),
    target      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- The audit trail: append-only, hash-chained. Each record's hash covers its own fields and the
-- previous record's hash, so an edited, deleted or reordered record breaks the chain from there on
-- (`doudi audit verify` names the first).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,      -- 1, 2, 3, … without gaps
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,            -- JSON, never unmasked personal data
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
