-- 0013: rule-set and identity-model versions belong to the stream (issue 19 item 2, issue 22 item
-- 5). Each activation is stored at the positions every stream had been committed to at that
-- instant: a record is decided with the latest activation of each kind whose position for the
-- record's stream it is at or after (a stream absent from the map began after the activation:
-- the activation applies from its start). Activations are taken under the lock batches commit
-- under, so each sits between two batches' commits; `id` orders them.
CREATE TABLE activations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL CHECK (kind IN ('rules', 'model')),
    version      TEXT NOT NULL,
    -- rules: the rule set's TOML; model: the version of the model in linkage_models
    content      TEXT NOT NULL,
    -- JSON object: stream -> the first line (Kafka: offset) decided with this version
    positions    TEXT NOT NULL,
    activated_at TEXT NOT NULL,
    activated_by TEXT NOT NULL
);
CREATE INDEX activations_kind ON activations(kind, id);
