-- keywarden schema v3: last use moves out of api_keys into a narrow table of its own. Every
-- successful verification records last use; written into the wide api_keys rows (hash, scopes,
-- names…) each flush rewrote a random page per key. key_usage rows hold only what a use writes,
-- clustered by key id (WITHOUT ROWID), so a flush touches far fewer, denser pages. A key with no
-- row here has never been used. Readers of a whole key LEFT JOIN it; so, later, did verification (for
-- the verification cache's last-use rule, VERIFIABLE_KEY_BY_PREFIX in src/store/key-sql.ts).
CREATE TABLE key_usage (
  key_id               TEXT PRIMARY KEY REFERENCES api_keys(id),
  last_used_at         TEXT NOT NULL,
  last_used_ip         TEXT,
  last_used_user_agent TEXT
) WITHOUT ROWID, STRICT;

-- The user agent is capped at 256 characters from now on (by the service); older rows are too.
INSERT INTO key_usage (key_id, last_used_at, last_used_ip, last_used_user_agent)
  SELECT id, last_used_at, last_used_ip, substr(last_used_user_agent, 1, 256)
  FROM api_keys
  WHERE last_used_at IS NOT NULL;

-- No index, view, trigger or constraint names these columns, so they can be dropped in place.
ALTER TABLE api_keys DROP COLUMN last_used_at;
ALTER TABLE api_keys DROP COLUMN last_used_ip;
ALTER TABLE api_keys DROP COLUMN last_used_user_agent;
