import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { loadMigrations } from "../../src/store/migrations.js";
import { COUNT_ACTIVE_KEYS_SQL, openSqliteDatabase, SQLITE_CACHE_KIB, SqliteKeyStore, StoreOpenError } from "../../src/store/sqlite.js";
import { makeTempDir } from "../helpers/harness.js";

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((cleanup) => cleanup()));

function tempDbPath(): string {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  return join(dir, "nested", "keywarden.db");
}

describe("SqliteKeyStore.open", () => {
  it("creates the file and its directory, migrates to the latest version and sets durability pragmas", async () => {
    const path = tempDbPath();
    const store = SqliteKeyStore.open({ path });
    expect(store.db.pragma("user_version", { simple: true })).toBe(loadMigrations().length);
    expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(store.db.pragma("synchronous", { simple: true })).toBe(2); // FULL
    expect(store.db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(store.db.pragma("busy_timeout", { simple: true })).toBeGreaterThanOrEqual(1000);
    // The page cache's bound is keywarden's, whatever better-sqlite3 compiles in (the soak counts on it).
    expect(store.db.pragma("cache_size", { simple: true })).toBe(-SQLITE_CACHE_KIB);
    const tables = store.db.prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").pluck().all();
    expect(tables).toEqual(["api_keys", "key_events", "key_hash_algorithms", "key_usage", "organizations", "pepper_fingerprint", "projects", "users"]);
    await store.close();
  });

  it("creates the directory 0700 and the database, WAL and SHM files 0600: they hold every key's hash", async () => {
    const path = tempDbPath();
    const store = SqliteKeyStore.open({ path });
    store.db.prepare("INSERT INTO organizations (id, name, created_at) VALUES ('org_x', 'x', '2026-01-01T00:00:00.000Z')").run();
    const modes = Object.fromEntries(
      [dirname(path), path, `${path}-wal`, `${path}-shm`].map((file) => [basename(file), statSync(file).mode & 0o777]),
    );
    expect(modes).toEqual({ nested: 0o700, "keywarden.db": 0o600, "keywarden.db-wal": 0o600, "keywarden.db-shm": 0o600 });
    await store.close();
  });

  it("counts a user's active keys from the partial index alone, never their revoked or rotated history", async () => {
    const store = SqliteKeyStore.open({ path: tempDbPath() });
    const plan = store.db.prepare(`EXPLAIN QUERY PLAN ${COUNT_ACTIVE_KEYS_SQL}`).all({ user_id: "usr_x", now: "2026-01-01T00:00:00.000Z" });
    expect(plan.map((step) => (step as { detail: string }).detail)).toEqual(["SEARCH api_keys USING COVERING INDEX api_keys_unrevoked_by_user (user_id=?)"]);
    await store.close();
  });

  it("knows the hash algorithms its keys use without reading the keys: schema v6 fills the set from v5's rows, triggers keep it", async () => {
    const path = tempDbPath();
    const v5 = openSqliteDatabase({ path, migrations: loadMigrations().slice(0, 5) });
    v5.prepare("INSERT INTO organizations (id, name, created_at) VALUES ('org_1', 'default', '2026-01-01T00:00:00.000Z')").run();
    v5.prepare("INSERT INTO users (id, organization_id, name, created_at) VALUES ('usr_1', 'org_1', 'u', '2026-01-01T00:00:00.000Z')").run();
    const insertKey = (db: Database.Database, id: string, algorithm: string) =>
      db
        .prepare(
          `INSERT INTO api_keys (id, organization_id, user_id, name, key_prefix, key_hash, hash_algorithm, scopes, created_at, created_by_user_id)
           VALUES (?, 'org_1', 'usr_1', 'k', ?, zeroblob(32), ?, '[]', '2026-01-01T00:00:00.000Z', 'usr_1')`,
        )
        .run(id, `kw_${id}`, algorithm);
    insertKey(v5, "key_1", "sha256");
    insertKey(v5, "key_2", "hmac-sha256");
    v5.close();

    const store = SqliteKeyStore.open({ path });
    try {
      expect((await store.listHashAlgorithms()).sort()).toEqual(["hmac-sha256", "sha256"]);
      insertKey(store.db, "key_3", "argon2id");
      store.db.prepare("UPDATE api_keys SET hash_algorithm = 'scrypt' WHERE id = 'key_1'").run();
      expect((await store.listHashAlgorithms()).sort()).toEqual(["argon2id", "hmac-sha256", "scrypt", "sha256"]);
      // Read from the set, not by scanning api_keys.
      const plan = store.db.prepare("EXPLAIN QUERY PLAN SELECT hash_algorithm FROM key_hash_algorithms").all() as { detail: string }[];
      expect(plan.map((row) => row.detail).join(" ")).not.toContain("api_keys");
    } finally {
      await store.close();
    }
  });

  it("reopens an up-to-date database without re-running migrations", async () => {
    const path = tempDbPath();
    const first = SqliteKeyStore.open({ path });
    const org = await first.ensureDefaultOrganization(new Date().toISOString());
    await first.close();
    const second = SqliteKeyStore.open({ path });
    expect((await second.ensureDefaultOrganization(new Date().toISOString())).id).toBe(org.id);
    await second.close();
  });

  it("refuses a database from a newer keywarden and leaves its bytes untouched", async () => {
    const path = tempDbPath();
    (await SqliteKeyStore.open({ path }).close());
    const raw = new Database(path);
    raw.pragma("journal_mode = DELETE"); // fold the WAL in so the main file is the whole database
    raw.pragma("user_version = 99");
    raw.close();
    const before = createHash("sha256").update(readFileSync(path)).digest("hex");
    expect(() => SqliteKeyStore.open({ path })).toThrow(StoreOpenError);
    expect(() => SqliteKeyStore.open({ path })).toThrow(/schema version 99, newer than this keywarden understands .*not modified/);
    expect(createHash("sha256").update(readFileSync(path)).digest("hex")).toBe(before);
  });

  it("refuses a file that is not a database with a clear message", () => {
    const path = tempDbPath();
    SqliteKeyStore.open({ path }).close();
    const garbage = join(path, "..", "garbage.db");
    writeFileSync(garbage, "this is not sqlite".repeat(100));
    expect(() => SqliteKeyStore.open({ path: garbage })).toThrow(/cannot open database .*garbage\.db/);
  });

  it("supports :memory:", async () => {
    const store = SqliteKeyStore.open({ path: ":memory:" });
    const org = await store.ensureDefaultOrganization("2026-01-01T00:00:00.000Z");
    const user = await store.ensureUser(org.id, "bob", "2026-01-01T00:00:00.000Z");
    expect(await store.ensureUser(org.id, "bob", "2026-01-02T00:00:00.000Z")).toEqual(user);
    expect(await store.getUserById(user.id)).toEqual(user);
    await store.close();
  });
});
