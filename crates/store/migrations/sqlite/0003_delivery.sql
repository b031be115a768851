-- 0003: delivery of notices over channels (signed webhooks). The notices table stays the outbox;
-- each notice now carries its delivery state, and every attempt is logged.

-- pending: to send (due at next_attempt_at, NULL = now); delivered; inbox_only: the recipient has
-- no delivery channel, the inbox is where it is read; failed: gave up after the configured attempts
-- or a refusal no retry can help (still listed, never deleted).
ALTER TABLE notices ADD COLUMN delivery TEXT NOT NULL DEFAULT 'pending'
    CHECK (delivery IN ('pending', 'delivered', 'inbox_only', 'failed'));
ALTER TABLE notices ADD COLUMN next_attempt_at TEXT;
CREATE INDEX notices_pending_delivery ON notices(notice_id) WHERE delivery = 'pending';

-- Every delivery attempt: one request carrying one notice, or a digest of several.
CREATE TABLE deliveries (
    delivery_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient       TEXT NOT NULL,
    channel         TEXT NOT NULL,          -- webhook
    idempotency_key TEXT NOT NULL,
    notice_ids      TEXT NOT NULL,          -- JSON array, in notice order
    digest          INTEGER NOT NULL,       -- 1: several notices combined (recipient over quota)
    attempt         INTEGER NOT NULL,       -- 1 for a first attempt
    at              TEXT NOT NULL,
    http_status     INTEGER,                -- NULL: no response (connection refused, timeout, …)
    error           TEXT,
    elapsed_ms      INTEGER NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed'))
);
CREATE INDEX deliveries_recipient ON deliveries(recipient, delivery_id);
