-- 0010: region names (issue 20), so that pages, notices and reports say 东河口镇大塘村, not
-- 341502102003. One row per code: a county (6 digits), a township (9) or a village (12), with the
-- region's own name (金安区, 东河口镇, 大塘村); a village's full name joins its township's name and
-- its own. Filled by `doudi regions import FILE` (a later import adds and renames, never deletes).
CREATE TABLE region_names (
    code        TEXT PRIMARY KEY CHECK (length(code) IN (6, 9, 12)),
    name        TEXT NOT NULL CHECK (length(name) > 0),
    updated_at  TEXT NOT NULL
);
