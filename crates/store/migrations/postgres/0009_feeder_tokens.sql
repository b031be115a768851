-- 0009: feeder tokens (HTTP push of a department's feed, `POST /api/feeds/{source}`). A fifth role,
-- `feeder`, pushes events of one source (`feed_source`) and reads nothing; every other role has no
-- source. The SQLite twin rebuilds the table; here the constraint is replaced in place.
ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('officer', 'supervisor', 'auditor', 'admin', 'feeder'));
ALTER TABLE api_tokens ADD COLUMN feed_source TEXT;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_feed_source_check
    CHECK ((role = 'feeder') = (feed_source IS NOT NULL));
