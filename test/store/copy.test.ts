import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { createTokenHasher } from "../../src/keys/hash.js";
import { generateToken } from "../../src/keys/token.js";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import { KeyService } from "../../src/service/service.js";
import { COPIED_TABLES, copySqliteToPostgres, CopyFailedError } from "../../src/store/copy.js";
import { StoreOpenError } from "../../src/store/errors.js";
import { loadMigrations } from "../../src/store/migrations.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { openSqliteDatabase } from "../../src/store/sqlite-open.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import type { KeyStore } from "../../src/store/types.js";
import { makeTempDir, TestClock } from "../helpers/harness.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";

// keywarden admin copy, in process (src/store/copy.ts): a SQLite store filled through the real
// KeyService, copied, then read back through PostgresKeyStore row for row, and every token
// verified on both stores with the same answer.

const PEPPER = "pepper-for-the-copy-tests-0123456789";
const HOUR = 3_600_000;
const CONFIG = { policy: { ...DEFAULT_POLICY, maxActiveKeysPerUser: 20 }, keyBrand: "kw" };

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function targetUrl(): Promise<string> {
  const database = await createTestDatabase();
  cleanups.push(() => database.drop());
  return database.url;
}

async function openPg(url: string): Promise<PostgresKeyStore> {
  const store = await PostgresKeyStore.open({ url });
  cleanups.push(() => store.close());
  return store;
}

/** Rows per table, straight from PostgreSQL. */
async function pgCounts(url: string): Promise<Record<string, number>> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    const counts: Record<string, number> = {};
    for (const { name } of COPIED_TABLES) counts[name] = Number((await sql.unsafe(`SELECT count(*) AS n FROM ${name}`))[0]!.n);
    return counts;
  } finally {
    await sql.end();
  }
}

const fileDigest = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

interface Source {
  dbPath: string;
  store: SqliteKeyStore;
  clock: TestClock;
  /** Every token minted, by name, and two that never were. */
  tokens: Map<string, string>;
}

/** A SQLite store as a team's would be after a while: projects, owners, rotations, revocations, uses, failures, two hash algorithms. */
async function filledSource(): Promise<Source> {
  const { dir, cleanup } = makeTempDir();
  const dbPath = join(dir, "keywarden.db");
  const store = SqliteKeyStore.open({ path: dbPath });
  cleanups.push(() => cleanup());
  cleanups.push(() => store.close());
  const clock = new TestClock();
  const plain = new KeyService({ store, clock: clock.now, config: CONFIG });
  const ops = await plain.localPrincipal({ userName: "ops", transport: "cli", isAdmin: true });
  const tokens = new Map<string, string>();
  const mint = async (service: KeyService, name: string, input: Record<string, unknown> = {}) => {
    const created = await service.createApiKey(ops, { name, ...input });
    tokens.set(name, created.key);
    clock.advance(1000);
    return created;
  };
  await plain.createProject(ops, { slug: "web", name: "Web app", default_scopes: ["web:read", "web:write"] });
  await plain.createProject(ops, { slug: "batch", name: "Batch jobs", default_scopes: ["batch:run"] });

  await mint(plain, "alice web", { owner: "alice", project_reference: "web" });
  await mint(plain, "alice short", { owner: "alice", expires_at: new Date(clock.current.getTime() + HOUR).toISOString() });
  const bob = await mint(plain, "bob read", { owner: "bob", scopes: ["tools:read"] });
  await plain.revokeApiKey(ops, { id: bob.id, reason: "left the team" });
  const first = await mint(plain, "rotating", { owner: "bob" });
  const second = await plain.rotateApiKey(ops, { id: first.id, grace_period_seconds: 3600 });
  tokens.set("rotating, second", second.key);
  const third = await plain.rotateApiKey(ops, { id: second.id, grace_period_seconds: 0 });
  tokens.set("rotating, third", third.key);
  await plain.updateApiKey(ops, { id: third.id, name: "rotating (renamed) 👩‍💻", description: "für das Team, «deploys»", scopes: ["tools:read"] });

  // A pepper from here on: hmac-sha256 for new keys, the fingerprint recorded as a start records it.
  const peppered = new KeyService({ store, clock: clock.now, config: CONFIG, pepper: PEPPER });
  expect(await peppered.pepperDiffers()).toBe(false);
  const carol = await mint(peppered, "carol", { owner: "carol" });
  await mint(peppered, "carol batch", { owner: "carol", project_reference: "batch" });
  const carolNext = await peppered.rotateApiKey(ops, { id: carol.id, grace_period_seconds: 86_400 });
  tokens.set("carol, rotated", carolNext.key);

  // Last use, a failed authentication naming no key, and a denied call.
  expect((await peppered.verifyApiKey(tokens.get("alice web")!, { ip: "203.0.113.9", userAgent: "gateway/2.1" })).valid).toBe(true);
  expect((await peppered.verifyApiKey(tokens.get("carol batch")!, { ip: "2001:db8::7", userAgent: null })).valid).toBe(true);
  const unknown = generateToken("kw").token;
  tokens.set("never minted", unknown);
  tokens.set("malformed", "kw_not-a-token");
  const origin = { transport: "http" as const, clientAddress: "198.51.100.4", userAgent: "curl/8" };
  const refusal = await peppered.authenticateKey(unknown, origin);
  if (refusal.ok) throw new Error("an unknown key authenticated");
  await peppered.recordAuthenticationFailure(refusal, origin, { path: "/mcp" });
  await peppered.recordDeniedCall(ops, { tool: "create_project" });
  clock.advance(2 * HOUR); // "alice short" and the first rotated key have expired since
  return { dbPath, store, clock, tokens };
}

/** Everything a KeyStore reads back, in its own order. */
async function readBack(store: KeyStore, now: string) {
  const org = await store.ensureDefaultOrganization(now);
  const keys = await store.listKeys({ organizationId: org.id, userId: null, projectId: null, status: "all", now, after: null, limit: 1000 });
  return {
    org,
    keys,
    byId: await Promise.all(keys.map((key) => store.getKeyById(key.id))),
    byPrefix: await Promise.all(keys.map((key) => store.getKeyByPrefix(key.key_prefix))),
    eventsOfKeys: await Promise.all(keys.map((key) => store.listEvents(key.id))),
    log: (await store.listKeyEvents({ organizationId: org.id, keyId: null, ownerUserId: null, after: null, limit: 1000 })).map((entry) => entry.event),
    users: await store.listUsers(org.id, now),
    projects: await store.listProjects(org.id),
    algorithms: (await store.listHashAlgorithms()).sort(),
  };
}

// A column added to either schema and not to COPIED_TABLES would be left behind without a word.
describe("COPIED_TABLES", () => {
  const copied = Object.fromEntries(COPIED_TABLES.map((table) => [table.name, table.columns.map(([name]) => name).sort()]));

  it("names every table and column of the SQLite schema", async () => {
    const db = openSqliteDatabase({ path: ":memory:" });
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all() as string[];
    const schema = Object.fromEntries(tables.map((table) => [table, (db.pragma(`table_info(${table})`) as { name: string }[]).map((column) => column.name).sort()]));
    db.close();
    expect(schema).toEqual(copied);
  });

  it.skipIf(!PG_URL)("names every table and column of the PostgreSQL schema but its own bookkeeping", async () => {
    const url = await targetUrl();
    await (await openPg(url)).close();
    const sql = postgres(url, { max: 1, onnotice: () => undefined });
    cleanups.push(() => sql.end());
    const columns = await sql<{ table: string; column: string }[]>`
      SELECT table_name AS table, column_name AS column FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name <> 'keywarden_schema_migrations' ORDER BY table_name, column_name`;
    const schema: Record<string, string[]> = {};
    for (const { table, column } of columns) (schema[table] ??= []).push(column);
    // seq is the target's own: the insertion order, generated (src/store/migrations-postgres/001_initial.sql).
    schema.key_events = schema.key_events!.filter((column) => column !== "seq");
    for (const table of Object.keys(schema)) schema[table]!.sort(); // code-point order, as `copied`, whatever the locale
    expect(schema).toEqual(copied);
  });
});

describe.skipIf(!PG_URL)("copySqliteToPostgres", () => {
  it("copies every row as it was: PostgresKeyStore reads back what SqliteKeyStore reads, and every token verifies alike", async () => {
    const source = await filledSource();
    const url = await targetUrl();
    // Batches of two: each rotation chain (three keys, two keys) must still land in one statement.
    const report = await copySqliteToPostgres({ from: source.dbPath, to: url, batchSize: 2 });

    const raw = (table: string) => source.store.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
    expect(report.counts.map(({ table, source: n, target }) => [table, n, target])).toEqual(COPIED_TABLES.map(({ name }) => [name, raw(name), raw(name)]));
    expect(Object.fromEntries(report.counts.map(({ table, target }) => [table, target]))).toEqual({
      organizations: 1,
      users: 4, // ops, alice, bob, carol
      projects: 2,
      key_hash_algorithms: 2,
      pepper_fingerprint: 1,
      api_keys: 9,
      key_usage: 2,
      key_events: raw("key_events"),
    });
    expect(report.sourceSchemaVersion).toBe(loadMigrations().length);

    const now = source.clock.current.toISOString();
    const pg = await openPg(url);
    const expected = await readBack(source.store, now);
    const copied = await readBack(pg, now);
    expect(copied).toEqual(expected);
    expect(copied.keys).toHaveLength(9);
    expect(copied.log.map((event) => event.event_type)).toEqual(expected.log.map((event) => event.event_type));
    expect(copied.log.filter((event) => event.event_type === "auth.failed")).toHaveLength(1);
    expect(copied.algorithms).toEqual(["hmac-sha256", "sha256"]);
    // The audit log as stored: the same order, each detail as written (json keeps its text, key order included).
    const sql = postgres(url, { max: 1, onnotice: () => undefined });
    cleanups.push(() => sql.end());
    const pgLog = await sql.unsafe("SELECT id, detail::text AS detail FROM key_events ORDER BY occurred_at, seq");
    expect(pgLog.map((row) => ({ ...row }))).toEqual(source.store.db.prepare("SELECT id, detail FROM key_events ORDER BY occurred_at, rowid").all());
    expect(copied.keys.find((key) => key.description !== null)).toMatchObject({ name: "rotating (renamed) 👩‍💻", description: "für das Team, «deploys»" });
    expect(copied.keys.find((key) => key.name === "alice web")).toMatchObject({ last_used_ip: "203.0.113.9", last_used_user_agent: "gateway/2.1" });
    // The recorded pepper came along: a start with another pepper would be refused on PostgreSQL too.
    const fingerprint = source.store.db.prepare("SELECT fingerprint FROM pepper_fingerprint").pluck().get();
    expect(await pg.recordPepperFingerprint("not-the-one", now)).toBe(fingerprint);

    const onSqlite = new KeyService({ store: source.store, clock: source.clock.now, config: CONFIG, pepper: PEPPER, useRecorder: { record: () => undefined } });
    const onPg = new KeyService({ store: pg, clock: source.clock.now, config: CONFIG, pepper: PEPPER, useRecorder: { record: () => undefined } });
    const answers = new Map<string, string>();
    for (const [name, token] of source.tokens) {
      const [before, after] = [await onSqlite.verifyApiKey(token), await onPg.verifyApiKey(token)];
      expect(after, name).toEqual(before);
      answers.set(name, after.code);
    }
    expect(Object.fromEntries(answers)).toEqual({
      "alice web": "valid",
      "alice short": "expired",
      "bob read": "revoked",
      rotating: "expired",
      "rotating, second": "revoked",
      "rotating, third": "valid",
      carol: "valid",
      "carol batch": "valid",
      "carol, rotated": "valid",
      "never minted": "not_found",
      malformed: "malformed",
    });
  });

  it("migrates an older source in memory and leaves the file as it was (schema v2: last use still in api_keys)", async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(() => cleanup());
    const dbPath = join(dir, "old.db");
    const old = openSqliteDatabase({ path: dbPath, migrations: loadMigrations().slice(0, 2) });
    const { token, keyPrefix } = generateToken("kw");
    const T = "2026-03-01T08:00:00.000Z";
    old.prepare("INSERT INTO organizations VALUES ('org_old', 'default', ?)").run(T);
    old.prepare("INSERT INTO users VALUES ('usr_old', 'org_old', 'dana', ?)").run(T);
    old
      .prepare(
        `INSERT INTO api_keys (id, organization_id, user_id, name, key_prefix, key_hash, hash_algorithm, scopes, created_at, created_by_user_id,
           expires_at, last_used_at, last_used_ip, last_used_user_agent)
         VALUES ('key_old', 'org_old', 'usr_old', 'old key', ?, ?, 'sha256', '["tools:read"]', ?, 'usr_old', '9999-12-31T23:59:59.000Z', ?, '192.0.2.1', 'old-agent')`,
      )
      .run(keyPrefix, Buffer.from(createTokenHasher().hash(token)), T, "2026-04-01T00:00:00.000Z");
    old.close();
    const before = fileDigest(dbPath);

    const url = await targetUrl();
    const report = await copySqliteToPostgres({ from: dbPath, to: url });
    expect(report.sourceSchemaVersion).toBe(2);
    expect(report.counts.find((count) => count.table === "key_usage")).toEqual({ table: "key_usage", source: 1, target: 1 });
    expect(fileDigest(dbPath)).toBe(before);
    const file = new Database(dbPath, { readonly: true });
    expect(file.pragma("user_version", { simple: true })).toBe(2);
    file.close();

    const pg = await openPg(url);
    expect(await pg.getKeyById("key_old")).toMatchObject({
      key_prefix: keyPrefix,
      expires_at: "9999-12-31T23:59:59.000Z",
      last_used_at: "2026-04-01T00:00:00.000Z",
      last_used_ip: "192.0.2.1",
      last_used_user_agent: "old-agent",
    });
    expect(await pg.listHashAlgorithms()).toEqual(["sha256"]);
    const verified = await new KeyService({ store: pg, useRecorder: { record: () => undefined } }).verifyApiKey(token);
    expect(verified).toMatchObject({ valid: true, code: "valid", key_id: "key_old" });
  });

  it("is all or nothing: a value it cannot copy, met in the last table, leaves the target empty and the source unchanged", async () => {
    const source = await filledSource();
    source.store.db.prepare("UPDATE key_events SET occurred_at = '2026-06-01 12:00:00' WHERE rowid = (SELECT max(rowid) FROM key_events)").run();
    source.store.db.pragma("wal_checkpoint(TRUNCATE)");
    const before = fileDigest(source.dbPath);
    const url = await targetUrl();
    const failure = await copySqliteToPostgres({ from: source.dbPath, to: url }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(CopyFailedError);
    expect((failure as Error).message).toMatch(/^copy into postgres:\/\/\S+ failed, nothing was copied: key_events\.occurred_at of row evt_\w+ is "2026-06-01 12:00:00", not an instant keywarden writes$/);
    expect(Object.values(await pgCounts(url))).toEqual(COPIED_TABLES.map(() => 0));
    expect(fileDigest(source.dbPath)).toBe(before);
  });

  it("is all or nothing when the connection is lost part-way: the target keeps none of it", async () => {
    const source = await filledSource();
    const add = source.store.db.prepare("INSERT INTO key_events (id, transport, event_type, occurred_at, detail) VALUES (?, 'http', 'auth.failed', ?, '{}')");
    source.store.db.transaction(() => {
      for (let i = 0; i < 2000; i++) add.run(`evt_bulk_${i}`, "2026-06-01T13:00:00.000Z");
    })();
    const url = await targetUrl();
    const database = new URL(url).pathname.slice(1);
    const admin = postgres(PG_URL!, { max: 1, onnotice: () => undefined });
    cleanups.push(() => admin.end());
    // A row per statement: the copy runs long enough to be cut off in the middle of the audit log,
    // every other table written by then.
    let settled = false;
    const copying = copySqliteToPostgres({ from: source.dbPath, to: url, batchSize: 1 })
      .catch((error: unknown) => error)
      .finally(() => (settled = true));
    let killed = 0;
    while (killed === 0 && !settled) {
      const rows = await admin`SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE datname = ${database} AND query LIKE 'INSERT INTO key_events%'`;
      killed = rows.filter((row) => row.done).length;
    }
    const failure = await copying;
    expect(killed).toBe(1);
    expect(failure).toBeInstanceOf(CopyFailedError);
    expect((failure as Error).message).toMatch(new RegExp(`^copy into ${url} failed, nothing was copied: \\S`));
    expect(Object.values(await pgCounts(url))).toEqual(COPIED_TABLES.map(() => 0));
  });

  it("refuses a target that holds any keywarden data, even only the default organization of an instance started on it", async () => {
    const source = await filledSource();
    const url = await targetUrl();
    const instance = await openPg(url);
    await instance.ensureDefaultOrganization("2026-06-01T00:00:00.000Z");
    const refusal = copySqliteToPostgres({ from: source.dbPath, to: url });
    await expect(refusal).rejects.toBeInstanceOf(StoreOpenError);
    await expect(refusal).rejects.toThrow(
      `database ${url} already holds keywarden data (organizations: 1): admin copy never merges into or overwrites a database; copy into a new, empty database`,
    );
    expect((await pgCounts(url)).api_keys).toBe(0);
  });

  it("refuses a target another session is writing to, without waiting; copies once it is done", async () => {
    const source = await filledSource();
    const url = await targetUrl();
    await (await openPg(url)).close(); // the schema, as an instance starting on it makes it
    const other = postgres(url, { max: 1, onnotice: () => undefined });
    cleanups.push(() => other.end());
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    // A write in progress elsewhere: its transaction holds ROW EXCLUSIVE on key_usage until it ends.
    const writer = other.begin(async (tx) => {
      await tx.unsafe("LOCK TABLE key_usage IN ROW EXCLUSIVE MODE");
      locked();
      await held;
    });
    await lockTaken;
    const started = performance.now();
    const refusal = await copySqliteToPostgres({ from: source.dbPath, to: url }).catch((error: unknown) => error);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(refusal).toBeInstanceOf(StoreOpenError);
    expect((refusal as Error).message).toBe(
      `database ${url} is in use (another session is writing to it): admin copy needs it to itself; stop what uses it and run the copy again (could not obtain lock on relation "key_usage")`,
    );
    release();
    await writer;
    const report = await copySqliteToPostgres({ from: source.dbPath, to: url });
    expect(report.counts.find((count) => count.table === "api_keys")).toEqual({ table: "api_keys", source: 9, target: 9 });
  });

  it("refuses a source written to while it is read: nothing is copied", async () => {
    const source = await filledSource();
    const url = await targetUrl();
    // Another process's writes, as a running server would make them, all through the copy.
    const writer = new Database(source.dbPath);
    cleanups.push(() => writer.close());
    const write = writer.prepare("INSERT INTO key_events (id, transport, event_type, occurred_at, detail) VALUES (?, 'http', 'auth.failed', ?, '{}')");
    let n = 0;
    const timer = setInterval(() => write.run(`evt_during_${n++}`, new Date().toISOString()), 1);
    const outcome = await copySqliteToPostgres({ from: source.dbPath, to: url, batchSize: 1 }).catch((error: unknown) => error);
    clearInterval(timer);
    expect(n).toBeGreaterThan(0);
    expect(outcome).toBeInstanceOf(CopyFailedError);
    expect((outcome as Error).message).toBe(
      `${source.dbPath} was written to during the copy: nothing was copied; stop every keywarden that uses it and run the copy again`,
    );
    expect(Object.values(await pgCounts(url))).toEqual(COPIED_TABLES.map(() => 0));
  });
});
