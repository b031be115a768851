-- 0014 (issue 24): raw payloads past the retention age (`store.raw_retention_days`, applied by
-- `doudi retention`) are removed: `raw` emptied and the moment it was removed kept here, so that
-- the trace says the raw record was removed, and when, instead of taking the normalised text for
-- it (an empty `raw` with this NULL still means the department sent the normalised JSON itself).
ALTER TABLE events ADD COLUMN raw_removed_at TEXT;
