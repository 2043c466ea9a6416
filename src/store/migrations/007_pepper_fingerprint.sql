-- keywarden schema v7: a fingerprint of the pepper the keys are hashed with, HMAC-SHA-256(pepper,
-- a fixed text), never the pepper itself. Recorded by the first start with a pepper; a later
-- start with another pepper is refused (src/cli/app.ts), rather than hash new keys with it and
-- fail every key made before. One row at most.
CREATE TABLE pepper_fingerprint (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  fingerprint TEXT NOT NULL,
  recorded_at TEXT NOT NULL
) STRICT;
