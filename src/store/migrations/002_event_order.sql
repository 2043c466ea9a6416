-- keywarden schema v2: the audit log is ordered by (occurred_at, rowid). Event ids are random, so
-- two events of the same millisecond (a rotation writes two) need the insertion order as the
-- tie-break. key_events has an implicit rowid and rows are never deleted, so rowid only grows.
-- An index entry ends with the rowid, so these indexes serve ORDER BY occurred_at, rowid.
DROP INDEX key_events_by_key;
DROP INDEX key_events_by_time;
CREATE INDEX key_events_by_key ON key_events (key_id, occurred_at);
CREATE INDEX key_events_by_time ON key_events (organization_id, occurred_at);
