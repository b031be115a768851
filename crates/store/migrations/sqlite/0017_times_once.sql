-- 0017 (issue 24): a smaller store again. An identity decision or an assessment made in the
-- transaction that received its event was stamped with that transaction's time, which the event
-- keeps already (`events.received_at`): such rows keep NULL instead, and every reader takes
-- `COALESCE(decided_at, e.received_at)` through the event's `seq`. A decision or an assessment
-- made later (a record linked again after a register change, an assessment re-derived after a
-- late fact) keeps its own time as before.
-- The columns were NOT NULL: each is renamed, a nullable one added under its name, filled (NULL
-- where it equals its event's receipt) and the old one dropped (SQLite cannot drop NOT NULL in
-- place; no index, key or constraint names these columns).
ALTER TABLE link_decisions RENAME COLUMN decided_at TO decided_at_0016;
ALTER TABLE link_decisions ADD COLUMN decided_at TEXT;
UPDATE link_decisions SET decided_at = NULLIF(decided_at_0016,
    (SELECT e.received_at FROM events e WHERE e.seq = link_decisions.seq));
ALTER TABLE link_decisions DROP COLUMN decided_at_0016;

ALTER TABLE assessments RENAME COLUMN assessed_at TO assessed_at_0016;
ALTER TABLE assessments ADD COLUMN assessed_at TEXT;
UPDATE assessments SET assessed_at = NULLIF(assessed_at_0016,
    (SELECT e.received_at FROM events e WHERE e.seq = assessments.seq));
ALTER TABLE assessments DROP COLUMN assessed_at_0016;

-- From this version on `warnings.summary` (the latest assessment) is written packed like
-- `assessments.assessment` (see `crates/store/src/pack.rs`; on SQLite bytes in the same column);
-- summaries written before, plain JSON, read as they are. No statement: the column is unchanged.

-- Identity decisions by outcome: only the review queue reads them so (`outcome = 'review'`, in
-- `seq` order; records to link again have `link_decisions_relink`), and the status counts scan
-- the table as they scan the others. An index of every decision's outcome becomes one of the
-- records in review.
DROP INDEX link_decisions_outcome;
CREATE INDEX link_decisions_review ON link_decisions(seq) WHERE outcome = 'review';
