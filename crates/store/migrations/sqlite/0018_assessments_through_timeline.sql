-- 0018 (issue 24): assessments are no longer indexed by household. Every assessment is of a
-- timeline fact of its household (the same `seq`, the same household), so a household's
-- assessments are found through `timeline_household` (the trace is the one reader); the index
-- cost every batch an insert at a random place per assessment, a share of its pages written at
-- each commit and again by the checkpoint that grew with the store.
DROP INDEX IF EXISTS assessments_household;
