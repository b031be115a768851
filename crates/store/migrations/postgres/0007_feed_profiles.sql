-- 0007: the feed profile (name@version) that made an event from a department's own export
-- (`doudi run --feeds` over a folder with a profile.toml); NULL for an event that arrived as a
-- JSON envelope. Shown by `doudi trace`.
ALTER TABLE events ADD COLUMN profile TEXT;
