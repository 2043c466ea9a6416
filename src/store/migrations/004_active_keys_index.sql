-- keywarden schema v4: the active-key cap counts a user's keys that are neither revoked nor
-- replaced (and not expired) on every create, inside the write transaction. Through
-- api_keys_by_user that count read every key the user ever had, table row by table row, so a
-- user's create slowed with their history of revoked and rotated keys while holding the write
-- lock. This partial index holds only the unrevoked, unreplaced keys, so the count reads the
-- index alone: a handful of entries, however long the history. revoked_at and replaced_by are
-- always NULL here; as columns they make the index covering for the count's conditions on them.
CREATE INDEX api_keys_unrevoked_by_user ON api_keys (user_id, expires_at, revoked_at, replaced_by)
  WHERE revoked_at IS NULL AND replaced_by IS NULL;
