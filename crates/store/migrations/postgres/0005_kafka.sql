-- 0005: publication of notices to the Kafka `warnings` topic (`doudi deliver --brokers`).
-- The PostgreSQL twin of sqlite/0005_kafka.sql: BIGINT integers, TEXT timestamps.
-- Tracked per notice, beside (and independent of) webhook delivery: a notice is marked published
-- with the partition and offset the broker acknowledged, in notice order. On start the publisher
-- reads the tail of the topic and marks what a crash left published but unmarked, so a restart
-- neither loses nor repeats a notice.
ALTER TABLE notices ADD COLUMN kafka_published_at TEXT;
ALTER TABLE notices ADD COLUMN kafka_partition BIGINT;
ALTER TABLE notices ADD COLUMN kafka_offset BIGINT;
CREATE INDEX notices_kafka_unpublished ON notices(notice_id) WHERE kafka_published_at IS NULL;
