-- keywarden's PostgreSQL schema v1: what the SQLite schema is at its v7 (src/store/migrations/),
-- in PostgreSQL's types. Instants are timestamptz, compared as instants (keyStatusSql in
-- src/store/instants.ts); the store reads and writes them as canonical toISOString() text
-- (src/store/postgres-types.ts). Scopes are text[]. Text compares and sorts by code point
-- (COLLATE "C", as SQLite's BINARY), whatever the database's locale, so that listings come in the
-- order SQLite gives and keyset positions compare as the code compares them. No column ever holds
-- a token.
CREATE TABLE organizations (
  id         text COLLATE "C" PRIMARY KEY,
  name       text COLLATE "C" NOT NULL UNIQUE,
  created_at timestamptz NOT NULL
);

CREATE TABLE users (
  id              text COLLATE "C" PRIMARY KEY,
  organization_id text COLLATE "C" NOT NULL REFERENCES organizations(id),
  name            text COLLATE "C" NOT NULL,
  created_at      timestamptz NOT NULL,
  UNIQUE (organization_id, name)
);

CREATE TABLE projects (
  id              text COLLATE "C" PRIMARY KEY,
  organization_id text COLLATE "C" NOT NULL REFERENCES organizations(id),
  slug            text COLLATE "C" NOT NULL,
  name            text COLLATE "C" NOT NULL,
  default_scopes  text[] NOT NULL,
  created_at      timestamptz NOT NULL,
  UNIQUE (organization_id, slug)
);

CREATE TABLE api_keys (
  id                 text COLLATE "C" PRIMARY KEY,
  organization_id    text COLLATE "C" NOT NULL REFERENCES organizations(id),
  user_id            text COLLATE "C" NOT NULL REFERENCES users(id),
  project_id         text COLLATE "C" REFERENCES projects(id),
  name               text COLLATE "C" NOT NULL,
  description        text COLLATE "C",
  key_prefix         text COLLATE "C" NOT NULL UNIQUE,
  key_hash           bytea NOT NULL,
  hash_algorithm     text COLLATE "C" NOT NULL,
  scopes             text[] NOT NULL,
  created_at         timestamptz NOT NULL,
  created_by_user_id text COLLATE "C" NOT NULL REFERENCES users(id),
  created_by_key_id  text COLLATE "C",
  expires_at         timestamptz,
  revoked_at         timestamptz,
  revoked_reason     text COLLATE "C",
  rotated_from       text COLLATE "C" REFERENCES api_keys(id),
  replaced_by        text COLLATE "C" REFERENCES api_keys(id)
);

-- Listing keys in keyset order, per user and per organization.
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at, id);
CREATE INDEX api_keys_by_org ON api_keys (organization_id, created_at, id);
-- The cap's count (countActiveKeysSql in src/store/key-sql.ts) reads only the unrevoked,
-- unreplaced keys of one user, however long their history (SQLite's schema v4).
CREATE INDEX api_keys_unrevoked_by_user ON api_keys (user_id, expires_at)
  WHERE revoked_at IS NULL AND replaced_by IS NULL;

-- Last use, apart from the wide key rows (SQLite's schema v3): a key without a row was never used.
CREATE TABLE key_usage (
  key_id               text COLLATE "C" PRIMARY KEY REFERENCES api_keys(id),
  last_used_at         timestamptz NOT NULL,
  last_used_ip         text COLLATE "C",
  last_used_user_agent text COLLATE "C"
);

-- The audit log, in (occurred_at, seq) order: seq is the insertion order, the tie-break for events
-- of one instant (event ids are random). key_id has no foreign key: a failed authentication may
-- name no real key. detail is json, not jsonb: kept as written (key order included), and json
-- takes every string JSON can carry, where jsonb refuses \u0000.
CREATE TABLE key_events (
  seq             bigint GENERATED ALWAYS AS IDENTITY,
  id              text COLLATE "C" PRIMARY KEY,
  organization_id text COLLATE "C",
  key_id          text COLLATE "C",
  event_type      text COLLATE "C" NOT NULL,
  actor_user_id   text COLLATE "C",
  actor_key_id    text COLLATE "C",
  transport       text COLLATE "C" NOT NULL,
  client_address  text COLLATE "C",
  occurred_at     timestamptz NOT NULL,
  detail          json NOT NULL
);
CREATE INDEX key_events_by_key ON key_events (key_id, occurred_at, seq);
CREATE INDEX key_events_by_time ON key_events (organization_id, occurred_at, seq);

-- The hash algorithms the stored keys use, kept by a trigger in the transaction that writes a key,
-- so that a start checks them without a scan of every key (SQLite's schema v6).
CREATE TABLE key_hash_algorithms (
  hash_algorithm text COLLATE "C" PRIMARY KEY
);
CREATE FUNCTION keywarden_record_hash_algorithm() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO key_hash_algorithms (hash_algorithm) VALUES (NEW.hash_algorithm) ON CONFLICT DO NOTHING;
  RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_hash_algorithm AFTER INSERT OR UPDATE OF hash_algorithm ON api_keys
  FOR EACH ROW EXECUTE FUNCTION keywarden_record_hash_algorithm();

-- A fingerprint of the pepper the keys are hashed with, never the pepper (SQLite's schema v7).
CREATE TABLE pepper_fingerprint (
  id          integer PRIMARY KEY CHECK (id = 1),
  fingerprint text COLLATE "C" NOT NULL,
  recorded_at timestamptz NOT NULL
);

-- Every committed change of a key tells the instances listening on keywarden_key_changes which key
-- changed (PostgresKeyStore.watchKeyChanges), so that a revocation, an expiry moved earlier or
-- narrowed scopes reach every instance on one database. A notification is sent at commit, and
-- one per key per transaction. An UPDATE that changes nothing is not one.
CREATE FUNCTION keywarden_notify_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('keywarden_key_changes', OLD.id);
  RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_changed AFTER UPDATE ON api_keys
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION keywarden_notify_key_change();
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION keywarden_notify_key_change();
