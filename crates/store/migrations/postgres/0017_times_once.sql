-- 0017 (issue 24): a smaller store again. An identity decision or an assessment made in the
-- transaction that received its event was stamped with that transaction's time, which the event
-- keeps already (`events.received_at`): such rows keep NULL instead, and every reader takes
-- `COALESCE(decided_at, e.received_at)` through the event's `seq`. A decision or an assessment
-- made later (a record linked again after a register change, an assessment re-derived after a
-- late fact) keeps its own time as before. Rows written before keep their time (read the same).
ALTER TABLE link_decisions ALTER COLUMN decided_at DROP NOT NULL;
ALTER TABLE assessments ALTER COLUMN assessed_at DROP NOT NULL;

-- From this version on `warnings.summary` (the latest assessment) is written packed like
-- `assessments.assessment` (its text form, see `crates/store/src/pack.rs`); summaries written
-- before, plain JSON, read as they are. No statement: the column is unchanged.

-- Identity decisions by outcome: only the review queue reads them so (`outcome = 'review'`, in
-- `seq` order; records to link again have `link_decisions_relink`), and the status counts scan
-- the table as they scan the others. An index of every decision's outcome becomes one of the
-- records in review.
DROP INDEX link_decisions_outcome;
CREATE INDEX link_decisions_review ON link_decisions(seq) WHERE outcome = 'review';
