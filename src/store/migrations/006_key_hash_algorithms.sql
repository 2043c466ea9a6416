-- keywarden schema v6: the hash algorithms the stored keys use, one row each. Every start checks
-- that a pepper the rows need is set (src/cli/app.ts); read from api_keys that was a scan of every key
-- (about 110 ms warm, far more cold, at 1,000,000 keys) before the first request. The triggers keep
-- the set in the same transaction as each write of a key's algorithm. Keys are never deleted, so
-- the set never names an algorithm no row uses, unless a rehash leaves one behind: then a start
-- asks for a pepper that is no longer needed, never the other way round.
CREATE TABLE key_hash_algorithms (
  hash_algorithm TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
INSERT INTO key_hash_algorithms (hash_algorithm) SELECT DISTINCT hash_algorithm FROM api_keys;
CREATE TRIGGER api_keys_hash_algorithm AFTER INSERT ON api_keys
BEGIN
  INSERT OR IGNORE INTO key_hash_algorithms (hash_algorithm) VALUES (NEW.hash_algorithm);
END;
CREATE TRIGGER api_keys_hash_algorithm_changed AFTER UPDATE OF hash_algorithm ON api_keys
BEGIN
  INSERT OR IGNORE INTO key_hash_algorithms (hash_algorithm) VALUES (NEW.hash_algorithm);
END;
