-- keywarden schema v1. Timestamps are ISO 8601 UTC strings from Date.toISOString(), so they
-- compare correctly as text. Scopes are JSON arrays. No column ever holds a token.
CREATE TABLE organizations (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL
) STRICT;

CREATE TABLE users (
  id              TEXT PRIMARY KEY,
  organization_id TEXT NOT NULL REFERENCES organizations(id),
  name            TEXT NOT NULL,
  created_at      TEXT NOT NULL,
  UNIQUE (organization_id, name)
) STRICT;

CREATE TABLE projects (
  id              TEXT PRIMARY KEY,
  organization_id TEXT NOT NULL REFERENCES organizations(id),
  slug            TEXT NOT NULL,
  name            TEXT NOT NULL,
  default_scopes  TEXT NOT NULL,
  created_at      TEXT NOT NULL,
  UNIQUE (organization_id, slug)
) STRICT;

CREATE TABLE api_keys (
  id                   TEXT PRIMARY KEY,
  organization_id      TEXT NOT NULL REFERENCES organizations(id),
  user_id              TEXT NOT NULL REFERENCES users(id),
  project_id           TEXT REFERENCES projects(id),
  name                 TEXT NOT NULL,
  description          TEXT,
  key_prefix           TEXT NOT NULL UNIQUE,
  key_hash             BLOB NOT NULL,
  hash_algorithm       TEXT NOT NULL,
  scopes               TEXT NOT NULL,
  created_at           TEXT NOT NULL,
  created_by_user_id   TEXT NOT NULL REFERENCES users(id),
  created_by_key_id    TEXT,
  expires_at           TEXT,
  last_used_at         TEXT,
  last_used_ip         TEXT,
  last_used_user_agent TEXT,
  revoked_at           TEXT,
  revoked_reason       TEXT,
  rotated_from         TEXT REFERENCES api_keys(id),
  replaced_by          TEXT REFERENCES api_keys(id)
) STRICT;

-- Listing a user's keys in keyset order, and counting their active keys for the cap.
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at, id);
CREATE INDEX api_keys_by_org ON api_keys (organization_id, created_at, id);

-- The audit log. key_id has no foreign key: a failed authentication may name no real key.
CREATE TABLE key_events (
  id              TEXT PRIMARY KEY,
  organization_id TEXT,
  key_id          TEXT,
  event_type      TEXT NOT NULL,
  actor_user_id   TEXT,
  actor_key_id    TEXT,
  transport       TEXT NOT NULL,
  client_address  TEXT,
  occurred_at     TEXT NOT NULL,
  detail          TEXT NOT NULL
) STRICT;

CREATE INDEX key_events_by_key ON key_events (key_id, occurred_at, id);
CREATE INDEX key_events_by_time ON key_events (occurred_at, id);
