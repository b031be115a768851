-- 0011 (issue 19): warnings as a fold over a household's assessments in canonical order, and the
-- deadline policy for late records.
-- occurred_at: the event time of the fact that set the warning's level (when the hardship happened);
-- late: 1 when that fact was received more than [warnings] late_after_hours after it happened
-- (a catch-up case: its deadline is receipt + the level's catch-up window);
-- transitions: the episode's level changes as the fold found them (JSON: opened, then each raise),
-- so that a re-derivation records and announces only the ones not yet recorded;
-- cut_seq: set when a person resolves the warning, the highest timeline seq of the household then;
-- the next episode folds the facts above it.
-- A warning may also be 'withdrawn': opened by the pipeline, no person moved it, and its episode
-- vanished when a late record re-derived the household (it is reopened if a later fold opens again).
ALTER TABLE warnings ADD COLUMN occurred_at TEXT;
ALTER TABLE warnings ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
ALTER TABLE warnings ADD COLUMN transitions TEXT;
ALTER TABLE warnings ADD COLUMN cut_seq INTEGER;
CREATE INDEX warnings_household_cut ON warnings(household_id, cut_seq);

-- Notices: which transition announced (level:source:event_id), and when a pending notice was
-- superseded (its transition vanished after a re-derivation: `doudi deliver` skips it).
ALTER TABLE notices ADD COLUMN transition TEXT;
ALTER TABLE notices ADD COLUMN superseded_at TEXT;

-- Warnings resolved before this migration: the cut is the highest timeline seq of the household
-- among the events received by the time of the resolve.
UPDATE warnings SET cut_seq = (
    SELECT COALESCE(MAX(t.seq), 0) FROM timeline t JOIN events e ON e.seq = t.seq
    WHERE t.household_id = warnings.household_id AND e.received_at <= warnings.resolved_at)
WHERE status = 'resolved';
