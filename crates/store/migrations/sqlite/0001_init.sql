-- doudi store, SQLite. Every table the pipeline writes is filled inside one transaction per batch,
-- together with the source position the batch came from.

-- The register: one row per household (its latest version as JSON) and its members for lookups.
CREATE TABLE households (
    household_id TEXT PRIMARY KEY,
    region_code  TEXT NOT NULL,
    category     TEXT NOT NULL,
    area         TEXT NOT NULL,
    record       TEXT NOT NULL,          -- the Household as imported (JSON)
    digest       TEXT NOT NULL,          -- hash of record, to see changes cheaply
    active       INTEGER NOT NULL DEFAULT 1,
    updated_at   TEXT NOT NULL
);
CREATE INDEX households_region ON households(region_code);

CREATE TABLE members (
    member_id    TEXT PRIMARY KEY,
    household_id TEXT NOT NULL,
    id_number    TEXT NOT NULL,
    active       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX members_household ON members(household_id);
CREATE INDEX members_id_number ON members(id_number);

CREATE TABLE register_imports (
    import_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    file       TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    full_snapshot INTEGER NOT NULL,
    added      INTEGER NOT NULL,
    changed    INTEGER NOT NULL,
    removed    INTEGER NOT NULL,
    unchanged  INTEGER NOT NULL
);

-- Every change to the register, with the version before and after (history is never rewritten).
CREATE TABLE register_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    import_id    INTEGER NOT NULL REFERENCES register_imports(import_id),
    household_id TEXT NOT NULL,
    change       TEXT NOT NULL CHECK (change IN ('added', 'changed', 'removed', 'restored')),
    before       TEXT,
    after        TEXT
);
CREATE INDEX register_history_household ON register_history(household_id);

-- Accepted events, raw and normalised; (source, event_id) makes redelivery a no-op.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    stream      TEXT NOT NULL,           -- file (relative to the feeds folder) or topic/partition
    position    INTEGER NOT NULL,        -- line number or offset
    raw         BLOB NOT NULL,
    normalised  TEXT NOT NULL,
    UNIQUE (source, event_id)
);

-- link_decisions, timeline and assessments are keyed by the event's `seq` in `events` (at most one
-- row per event); find one by (source, event_id) through `events`. Keyed so, a batch appends to them
-- instead of inserting at random places in an index of event ids.
CREATE TABLE link_decisions (
    seq          INTEGER PRIMARY KEY,    -- events.seq
    source       TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('linked', 'review', 'unmatched')),
    household_id TEXT,
    member_id    TEXT,
    evidence     TEXT NOT NULL,
    decided_at   TEXT NOT NULL
);
CREATE INDEX link_decisions_outcome ON link_decisions(outcome);

-- Each household's timeline of applied facts (append-only: seq order is the order applied).
CREATE TABLE timeline (
    seq          INTEGER PRIMARY KEY,    -- events.seq: what happened is the event itself
    household_id TEXT NOT NULL,
    member_id    TEXT NOT NULL
);
CREATE INDEX timeline_household ON timeline(household_id);

-- One assessment per applied fact: score, level, rule-set version, each rule's contribution.
CREATE TABLE assessments (
    seq           INTEGER PRIMARY KEY,   -- events.seq of the fact assessed after
    source        TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    household_id  TEXT NOT NULL,
    rule_set_version TEXT NOT NULL,
    score         INTEGER NOT NULL,
    level         TEXT NOT NULL,
    assessment    TEXT,                   -- the whole result (JSON); NULL: score 0, nothing found, nothing to review
    assessed_at   TEXT NOT NULL
);
CREATE INDEX assessments_household ON assessments(household_id);

-- Warnings: at most one open warning per household (one per episode).
CREATE TABLE warnings (
    warning_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    household_id TEXT NOT NULL,
    region_code  TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'open',
    level        TEXT NOT NULL,
    score        INTEGER NOT NULL,
    deadline     TEXT NOT NULL,
    assessment_source   TEXT NOT NULL,
    assessment_event_id TEXT NOT NULL,
    summary      TEXT NOT NULL,          -- the latest assessment (JSON) the officer reads
    opened_at    TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX warnings_one_open_per_household ON warnings(household_id) WHERE status = 'open';
CREATE INDEX warnings_region ON warnings(region_code, status);

-- Every change to a warning, by the pipeline or a person.
CREATE TABLE warning_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    warning_id  INTEGER NOT NULL REFERENCES warnings(warning_id),
    action      TEXT NOT NULL,
    level       TEXT NOT NULL,
    score       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    source      TEXT,
    event_id    TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX warning_history_warning ON warning_history(warning_id);

-- Where each source stream has been read up to (committed with the batch's effects).
CREATE TABLE positions (
    source     TEXT NOT NULL,
    stream     TEXT NOT NULL,
    byte_offset INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, stream)
) WITHOUT ROWID;

-- Records refused at ingest: never dropped, kept with the reason and where they came from.
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    stream      TEXT NOT NULL,
    line        INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    event_id    TEXT,
    reason_code TEXT NOT NULL,
    reason      TEXT NOT NULL,
    raw         BLOB NOT NULL,
    raw_len     INTEGER NOT NULL,        -- the record's full length; raw holds at most the size limit
    received_at TEXT NOT NULL,
    replayed_at TEXT
);
CREATE INDEX dead_letters_reason ON dead_letters(reason_code);

-- Monotonic counters kept in step with the batches (records read, duplicates).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters(name, value) VALUES ('received', 0), ('duplicates', 0);
