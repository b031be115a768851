-- 0016 (issue 24): a smaller store. Identity decisions and assessments are keyed by their event's
-- `seq`; the event's source and id were stored again beside it in every row. They are read from
-- the event (`events.source`, `events.event_id`) instead. Assessments are read by household only
-- in a trace, through the household's timeline (each is after a fact of it, at the fact's `seq`):
-- their own index by household goes. (The documents these tables keep are stored packed; on
-- SQLite, from this version on, as bytes in the same columns, the register's records too: see
-- `crates/store/src/pack.rs`. Rows written before, plain JSON or packed text, read as they are.)
ALTER TABLE link_decisions DROP COLUMN source;
ALTER TABLE link_decisions DROP COLUMN event_id;
ALTER TABLE assessments DROP COLUMN source;
ALTER TABLE assessments DROP COLUMN event_id;
DROP INDEX assessments_household;
