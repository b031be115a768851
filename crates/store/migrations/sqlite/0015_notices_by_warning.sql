-- 0015 (issue 24): notices looked up by their warning. Every batch reads, for its current
-- warnings, the highest level their sent notices announced, and supersedes their pending ones;
-- without this index each of those statements read the whole notices table, a cost per batch
-- that grew with every notice ever stored.
CREATE INDEX notices_warning ON notices(warning_id);
