import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { StoreOpenError } from "../../src/store/errors.js";
import { countActiveKeysSql } from "../../src/store/key-sql.js";
import { loadPostgresMigrations, PostgresKeyStore } from "../../src/store/postgres.js";
import { fromPgTimestamp, toPgTimestamp } from "../../src/store/postgres-types.js";
import { USER_LOCK_CLASS, userLockKey } from "../../src/store/postgres-write.js";
import type { ApiKeyRow } from "../../src/store/types.js";
import { createTestDatabase, PG_URL, type TestDatabase } from "../helpers/pg.js";
import { freePort } from "../helpers/pg-cluster.mjs";
import { createServer, type AddressInfo, type Socket } from "node:net";

// What the contract suite cannot see: the schema, the connection settings, migrations, instants
// as timestamptz, and the per-user lock of write().

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  return db;
}

/** A plain connection to look at the database as it is (or to change it behind the store's back). */
function raw(url: string, max = 1): postgres.Sql {
  const sql = postgres(url, { max, onnotice: () => undefined });
  cleanups.push(() => sql.end({ timeout: 1 }));
  return sql;
}

async function open(url: string, options: Partial<Parameters<typeof PostgresKeyStore.open>[0]> = {}): Promise<PostgresKeyStore> {
  const store = await PostgresKeyStore.open({ url, ...options });
  cleanups.push(() => store.close());
  return store;
}

async function tables(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1`;
  return rows.map((row) => row.name);
}

const T0 = "2026-06-01T12:00:00.000Z";

function keyRow(organizationId: string, userId: string, n: number, fields: Partial<ApiKeyRow> = {}): ApiKeyRow {
  const suffix = String(n).padStart(12, "0");
  return {
    id: `key_${suffix}`,
    organization_id: organizationId,
    user_id: userId,
    project_id: null,
    name: `k${n}`,
    description: null,
    key_prefix: `kw_${suffix}`,
    key_hash: Uint8Array.from({ length: 32 }, (_, i) => (i * 13 + n) % 256),
    hash_algorithm: "sha256",
    scopes: ["tools:read"],
    created_at: T0,
    created_by_user_id: userId,
    created_by_key_id: null,
    expires_at: "2026-06-02T12:00:00.000Z",
    last_used_at: null,
    last_used_ip: null,
    last_used_user_agent: null,
    revoked_at: null,
    revoked_reason: null,
    rotated_from: null,
    replaced_by: null,
    ...fields,
  };
}

async function insertKeys(store: PostgresKeyStore, ...keys: ApiKeyRow[]): Promise<void> {
  await store.write({ keyIds: [] }, () => ({ ok: true, plan: { insertKeys: keys, updateKeys: [], events: [] }, result: null }));
}

describe.skipIf(!PG_URL)("PostgresKeyStore.open", () => {
  it("migrates to the latest version and records each migration in keywarden_schema_migrations", async () => {
    const db = await database();
    const store = await open(db.url);
    const sql = raw(db.url);
    expect(await tables(sql)).toEqual([
      "api_keys",
      "key_events",
      "key_hash_algorithms",
      "key_usage",
      "keywarden_schema_migrations",
      "organizations",
      "pepper_fingerprint",
      "projects",
      "users",
    ]);
    const migrations = await sql`SELECT version, name FROM keywarden_schema_migrations ORDER BY version`;
    expect(migrations.map((row) => [row.version, row.name])).toEqual(loadPostgresMigrations().map((m) => [m.version, m.name]));
    await expect(store.ping()).resolves.toBeUndefined();
  });

  it("opens at most poolSize connections however many calls wait", async () => {
    const db = await database();
    const store = await open(db.url, { poolSize: 3 });
    const org = await store.ensureDefaultOrganization(T0);
    const user = await store.ensureUser(org.id, "u", T0);
    await Promise.all(Array.from({ length: 30 }, () => store.listUsers(org.id, T0)));
    await Promise.all(Array.from({ length: 30 }, () => store.countActiveKeys(user.id, T0)));
    const [row] = await raw(db.url)`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'keywarden'`;
    expect(row!.n).toBe(3);
  });

  it("refuses a database whose recorded version is newer, and writes nothing to it", async () => {
    const db = await database();
    const sql = raw(db.url);
    // A newer keywarden's database: its record says 99, and a table this build does not know.
    await sql`CREATE TABLE keywarden_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    await sql`INSERT INTO keywarden_schema_migrations (version, name, applied_at) VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z')`;
    await sql`CREATE TABLE future_things (id integer PRIMARY KEY)`;
    const before = { tables: await tables(sql), migrations: await sql`SELECT * FROM keywarden_schema_migrations` };
    const attempt = PostgresKeyStore.open({ url: db.url });
    await expect(attempt).rejects.toThrow(StoreOpenError);
    await expect(PostgresKeyStore.open({ url: db.url })).rejects.toThrow(
      /^database postgres:\/\/.*\/keywarden_test_\w+ has schema version 99, newer than this keywarden understands \(1\); upgrade keywarden, the database was not modified$/,
    );
    expect({ tables: await tables(sql), migrations: await sql`SELECT * FROM keywarden_schema_migrations` }).toEqual(before);
  });

  it("migrates once when several instances open a new database at the same moment", async () => {
    const db = await database();
    const stores = await Promise.all(Array.from({ length: 6 }, () => open(db.url)));
    const sql = raw(db.url);
    expect((await sql`SELECT version FROM keywarden_schema_migrations`).map((row) => row.version)).toEqual([1]);
    // Each works on the one schema.
    const orgs = await Promise.all(stores.map((store) => store.ensureDefaultOrganization(T0)));
    expect(new Set(orgs.map((org) => org.id)).size).toBe(1);
  });

  it("with createSchema false, refuses a database without keywarden's schema and creates nothing in it", async () => {
    const db = await database();
    await expect(PostgresKeyStore.open({ url: db.url, createSchema: false })).rejects.toThrow(
      /^database postgres:\/\/.* has no keywarden schema \(--db \/ KEYWARDEN_DB\): this command creates none; check the URL$/,
    );
    expect(await tables(raw(db.url))).toEqual([]);
    await open(db.url);
    const store = await open(db.url, { createSchema: false });
    await expect(store.ping()).resolves.toBeUndefined();
  });

  it("refuses a URL that sets another TimeZone, which would change how instants read", async () => {
    const db = await database();
    const url = `${db.url}?TimeZone=Europe/Berlin`;
    await expect(PostgresKeyStore.open({ url })).rejects.toThrow(/keywarden needs TimeZone=UTC and DateStyle=ISO on its connections, got Europe\/Berlin/);
  });

  it("refuses an unreachable server in one line that names the database without its password", async () => {
    const port = await freePort();
    const url = `postgres://keywarden:s3cret-pass@127.0.0.1:${port}/kw`;
    const error = await PostgresKeyStore.open({ url }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(StoreOpenError);
    expect(error!.message).toBe(`cannot open PostgreSQL database postgres://keywarden:***@127.0.0.1:${port}/kw: connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  // postgres.js retries such a port every few milliseconds without end (found by an outside tester:
  // `admin list-keys` ran for 10 minutes); opening gives up at its first-contact deadline instead.
  for (const [what, answer] of [
    ["accepts and closes at once", (socket: Socket) => socket.end()],
    ["answers in another protocol", (socket: Socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n")],
  ] as const) {
    it(`gives up, in one line, on a port that ${what}`, async () => {
      const impostor = createServer((socket) => socket.once("data", () => answer(socket)));
      await new Promise<void>((resolve) => impostor.listen(0, "127.0.0.1", resolve));
      const port = (impostor.address() as AddressInfo).port;
      try {
        const url = `postgres://keywarden:s3cret-pass@127.0.0.1:${port}/kw`;
        const error = await PostgresKeyStore.open({ url, firstContactDeadlineMs: 1500 }).then(
          () => null,
          (e: unknown) => e as Error,
        );
        expect(error).toBeInstanceOf(StoreOpenError);
        expect(error!.message).toBe(
          `cannot open PostgreSQL database postgres://keywarden:***@127.0.0.1:${port}/kw: no PostgreSQL answer within 1.5 s (is it a PostgreSQL server on that host and port?)`,
        );
      } finally {
        impostor.close();
      }
    });
  }
});


describe.skipIf(!PG_URL)("PostgreSQL rows", () => {
  it("stores instants as timestamptz and reads them back canonical, from year 0000 to 9999-12-31T23:59:59Z", async () => {
    const db = await database();
    const store = await open(db.url);
    const org = await store.ensureDefaultOrganization(T0);
    const user = await store.ensureUser(org.id, "u", T0);
    const instants = ["0000-01-01T00:00:00.000Z", "0000-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z", T0, "9999-12-31T23:59:59.000Z"];
    const keys = instants.map((instant, i) => keyRow(org.id, user.id, i, { created_at: instant, expires_at: instant }));
    await insertKeys(store, ...keys);
    for (const key of keys) expect(await store.getKeyById(key.id)).toEqual(key);
    const sql = raw(db.url);
    const [types] = await sql`SELECT pg_typeof(created_at)::text AS created, pg_typeof(expires_at)::text AS expires FROM api_keys LIMIT 1`;
    expect(types).toEqual({ created: "timestamp with time zone", expires: "timestamp with time zone" });
    const [bc] = await sql`SELECT expires_at::text AS text FROM api_keys WHERE id = ${keys[0]!.id}`;
    expect(bc!.text).toMatch(/^0001-01-01 00:00:00\+00 BC$|^0001-01-01 \d\d:\d\d:\d\d[+-]\d\d(:\d\d)? BC$/);
  });

  it("compares instants as instants: an expiry written with an offset expires at that instant", async () => {
    const db = await database();
    const store = await open(db.url);
    const org = await store.ensureDefaultOrganization(T0);
    const user = await store.ensureUser(org.id, "u", T0);
    const key = keyRow(org.id, user.id, 1);
    await insertKeys(store, key);
    // 14:00 at +02:00 is T0: written by hand, read back canonical, expired at T0 and not a millisecond before.
    await raw(db.url)`UPDATE api_keys SET expires_at = '2026-06-01 14:00:00+02' WHERE id = ${key.id}`;
    expect((await store.getKeyById(key.id))!.expires_at).toBe(T0);
    expect(await store.countActiveKeys(user.id, "2026-06-01T11:59:59.999Z")).toBe(1);
    expect(await store.countActiveKeys(user.id, T0)).toBe(0);
    const list = (now: string) => store.listKeys({ organizationId: org.id, userId: null, projectId: null, status: "expired", now, after: null, limit: 10 });
    expect((await list(T0)).map((row) => row.id)).toEqual([key.id]);
    expect(await list("2026-06-01T11:59:59.999Z")).toEqual([]);
  });

  it("converts between the canonical form and PostgreSQL's text, BC years and fractions included", () => {
    expect(toPgTimestamp("0000-03-04T05:06:07.089Z")).toBe("0001-03-04 05:06:07.089+00 BC");
    expect(toPgTimestamp(T0)).toBe(T0);
    expect(fromPgTimestamp("0001-03-04 05:06:07.089+00 BC")).toBe("0000-03-04T05:06:07.089Z");
    expect(fromPgTimestamp("2026-06-01 12:00:00+00")).toBe(T0);
    expect(fromPgTimestamp("2026-06-01 12:00:00.5+00")).toBe("2026-06-01T12:00:00.500Z");
    expect(fromPgTimestamp("2026-06-01 12:00:00.123456+00")).toBe("2026-06-01T12:00:00.123Z");
    for (const outside of ["0002-01-01 00:00:00+00 BC", "infinity", "2026-06-01 14:00:00+02", "10000-01-01 00:00:00+00"]) {
      expect(() => fromPgTimestamp(outside), outside).toThrow(RangeError);
    }
  });

  it("keeps hashes as bytea, scopes as text[] and event details as written, key order included", async () => {
    const db = await database();
    const store = await open(db.url);
    const org = await store.ensureDefaultOrganization(T0);
    const user = await store.ensureUser(org.id, "u", T0);
    const key = keyRow(org.id, user.id, 1, { scopes: ["b:2", "a:1", "é:ü"], key_hash: Uint8Array.from([0, 255, 1, 254]) });
    await insertKeys(store, key);
    const detail = { zeta: 1, alpha: { nested: [1, "two", null] }, nul: "a\u0000b" };
    await store.appendEvent({ id: "evt_detail", organization_id: org.id, key_id: key.id, event_type: "x", actor_user_id: null, actor_key_id: null, transport: "http", client_address: null, occurred_at: T0, detail });
    const [event] = await store.listEvents(key.id);
    expect(Object.keys(event!.detail)).toEqual(["zeta", "alpha", "nul"]);
    expect(event!.detail).toEqual(detail);
    const sql = raw(db.url);
    const [row] = await sql`SELECT encode(key_hash, 'hex') AS hash, scopes, pg_typeof(scopes)::text AS scopes_type FROM api_keys`;
    expect(row).toEqual({ hash: "00ff01fe", scopes: ["b:2", "a:1", "é:ü"], scopes_type: "text[]" });
    const found = await store.getKeyById(key.id);
    expect(found!.key_hash).toBeInstanceOf(Uint8Array);
    expect([...found!.key_hash]).toEqual([0, 255, 1, 254]);
  });

  it("orders by code point whatever the database's collation, as SQLite does", async () => {
    const db = await database();
    const store = await open(db.url);
    const org = await store.ensureDefaultOrganization(T0);
    for (const name of ["b", "B", "a", "A", "_x", "é"]) await store.ensureUser(org.id, name, T0);
    expect((await store.listUsers(org.id, T0)).map((user) => user.name)).toEqual(["A", "B", "_x", "a", "b", "é"]);
  });

  it("counts the cap from the partial index of unrevoked, unreplaced keys", async () => {
    const db = await database();
    await open(db.url);
    const sql = raw(db.url);
    const plan = await sql.begin(async (tx) => {
      await tx`SET LOCAL enable_seqscan = off`;
      return tx.unsafe(`EXPLAIN ${countActiveKeysSql("$1", "$2")}`, ["usr_x", T0]);
    });
    expect(plan.map((row) => row["QUERY PLAN"]).join("\n")).toMatch(/using api_keys_unrevoked_by_user on api_keys/);
  });
});

describe.skipIf(!PG_URL)("PostgresKeyStore.write's lock", () => {
  it("waits for the lock of the user it decides on, and only that user's; the statement timeout bounds the wait", async () => {
    const db = await database();
    const store = await open(db.url, { statementTimeoutMs: 300 });
    const org = await store.ensureDefaultOrganization(T0);
    const alice = await store.ensureUser(org.id, "alice", T0);
    const bob = await store.ensureUser(org.id, "bob", T0);
    const holder = raw(db.url);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const holding = new Promise<void>((resolve) => (locked = resolve));
    // Another instance deciding on alice: it holds her lock until it commits.
    const other = holder.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${USER_LOCK_CLASS}::int4, ${userLockKey(alice.id)}::int4)`;
      locked();
      await released;
    });
    await holding;
    const count = (userId: string) => store.write({ keyIds: [], activeKeysOf: { userId, now: T0 } }, (rows) => ({ ok: false, refusal: rows.activeKeys }));
    await expect(count(bob.id)).resolves.toEqual({ ok: false, refusal: 0 });
    const started = Date.now();
    await expect(count(alice.id)).rejects.toMatchObject({ code: "57014" }); // canceling statement due to statement timeout
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    release();
    await other;
    await expect(count(alice.id)).resolves.toEqual({ ok: false, refusal: 0 });
  });

  it("a write that reads a key locks its owner: it waits for another write on that owner to commit, then sees it", async () => {
    const db = await database();
    const store = await open(db.url);
    const org = await store.ensureDefaultOrganization(T0);
    const alice = await store.ensureUser(org.id, "alice", T0);
    const key = keyRow(org.id, alice.id, 1);
    await insertKeys(store, key);
    const holder = raw(db.url);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const holding = new Promise<void>((resolve) => (locked = resolve));
    const other = holder.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${USER_LOCK_CLASS}::int4, ${userLockKey(alice.id)}::int4)`;
      await tx`UPDATE api_keys SET name = 'renamed by the other' WHERE id = ${key.id}`;
      locked();
      await released;
    });
    await holding;
    let seen: string | undefined;
    const write = store.write({ keyIds: [key.id] }, (rows) => {
      seen = rows.keys.get(key.id)!.name;
      return { ok: false, refusal: null };
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen).toBeUndefined();
    release();
    await other;
    await write;
    expect(seen).toBe("renamed by the other");
  });
});
