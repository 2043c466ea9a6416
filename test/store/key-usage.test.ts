import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { capUserAgent, USER_AGENT_MAX_LENGTH } from "../../src/service/validation.js";
import { CoalescingUseRecorder } from "../../src/service/use-recorder.js";
import { loadMigrations } from "../../src/store/migrations.js";
import { openSqliteDatabase, SqliteKeyStore } from "../../src/store/sqlite.js";
import type { KeyStore, KeyUse } from "../../src/store/types.js";
import { makeTempDir, openSqliteHarness, type Harness } from "../helpers/harness.js";

let harness: Harness<SqliteKeyStore>;
beforeEach(async () => {
  harness = await openSqliteHarness();
});
afterEach(async () => {
  await harness.close();
});

/** ApiKeyRow's fields, in order: a whole key read must keep this shape whatever table holds last use. */
const KEY_ROW_FIELDS = [
  "id", "organization_id", "user_id", "project_id", "name", "description", "key_prefix", "key_hash", "hash_algorithm",
  "scopes", "created_at", "created_by_user_id", "created_by_key_id", "expires_at", "last_used_at", "last_used_ip",
  "last_used_user_agent", "revoked_at", "revoked_reason", "rotated_from", "replaced_by",
];

const columnsOf = (store: SqliteKeyStore, table: string): string[] =>
  store.db.prepare<[], { name: string }>(`PRAGMA table_info(${table})`).all().map((column) => column.name);

/** `count` keys of the harness user inserted directly (the service's cap and hashing are beside the point here). */
function insertKeys(store: SqliteKeyStore, userId: string, organizationId: string, count: number): string[] {
  const insert = store.db.prepare(
    `INSERT INTO api_keys (id, organization_id, user_id, name, key_prefix, key_hash, hash_algorithm, scopes, created_at, created_by_user_id)
     VALUES (?, ?, ?, ?, ?, ?, 'sha256', '["tools:read"]', '2026-06-01T00:00:00.000Z', ?)`,
  );
  const ids = Array.from({ length: count }, (_, i) => `key_bulk${String(i).padStart(6, "0")}`);
  store.db.transaction(() => {
    ids.forEach((id, i) => insert.run(id, organizationId, userId, `k${i}`, `kw_bulk${String(i).padStart(8, "0")}`, Buffer.alloc(32, i % 256), userId));
  })();
  return ids;
}

describe("schema v3: last use in key_usage", () => {
  it("moves a v2 database's last-use data into key_usage and drops the api_keys columns", async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const path = join(dir, "v2.db");
      const v2 = openSqliteDatabase({ path, migrations: loadMigrations().slice(0, 2) });
      expect(v2.pragma("user_version", { simple: true })).toBe(2);
      v2.exec(`
        INSERT INTO organizations VALUES ('org_1', 'default', '2026-01-01T00:00:00.000Z');
        INSERT INTO users VALUES ('usr_1', 'org_1', 'alice', '2026-01-01T00:00:00.000Z');`);
      const insert = v2.prepare(
        `INSERT INTO api_keys (id, organization_id, user_id, name, key_prefix, key_hash, hash_algorithm, scopes, created_at,
           created_by_user_id, last_used_at, last_used_ip, last_used_user_agent)
         VALUES (?, 'org_1', 'usr_1', ?, ?, x'00', 'sha256', '["tools:read"]', ?, 'usr_1', ?, ?, ?)`,
      );
      insert.run("key_used", "used", "kw_used0000001", "2026-01-01T00:00:01.000Z", "2026-03-01T10:00:00.000Z", "203.0.113.5", "curl/8.1");
      insert.run("key_long", "long", "kw_long0000001", "2026-01-01T00:00:02.000Z", "2026-03-02T10:00:00.000Z", null, "x".repeat(1000));
      insert.run("key_never", "never", "kw_never000001", "2026-01-01T00:00:03.000Z", null, null, null);
      v2.close();

      const store = SqliteKeyStore.open({ path });
      try {
        expect(store.db.pragma("user_version", { simple: true })).toBe(loadMigrations().length);
        expect(columnsOf(store, "api_keys").filter((name) => name.startsWith("last_used"))).toEqual([]);
        expect(columnsOf(store, "key_usage")).toEqual(["key_id", "last_used_at", "last_used_ip", "last_used_user_agent"]);
        expect(store.db.prepare("SELECT * FROM key_usage ORDER BY key_id").all()).toEqual([
          { key_id: "key_long", last_used_at: "2026-03-02T10:00:00.000Z", last_used_ip: null, last_used_user_agent: "x".repeat(256) },
          { key_id: "key_used", last_used_at: "2026-03-01T10:00:00.000Z", last_used_ip: "203.0.113.5", last_used_user_agent: "curl/8.1" },
        ]);
        expect(store.db.pragma("integrity_check", { simple: true })).toBe("ok");
        expect(store.db.pragma("foreign_key_check")).toEqual([]);

        // Whole-key reads join the use back in, in ApiKeyRow's shape.
        const used = (await store.getKeyById("key_used"))!;
        expect(Object.keys(used)).toEqual(KEY_ROW_FIELDS);
        expect(used).toMatchObject({ last_used_at: "2026-03-01T10:00:00.000Z", last_used_ip: "203.0.113.5", last_used_user_agent: "curl/8.1" });
        expect(await store.getKeyByPrefix("kw_never000001")).toMatchObject({ id: "key_never", last_used_at: null, last_used_ip: null, last_used_user_agent: null });
        const listed = await store.listKeys({
          organizationId: "org_1", userId: null, projectId: null, status: "all", after: null, limit: 10, now: "2026-06-01T00:00:00.000Z",
        });
        expect(listed.map((key) => [key.id, key.last_used_at])).toEqual([
          ["key_used", "2026-03-01T10:00:00.000Z"],
          ["key_long", "2026-03-02T10:00:00.000Z"],
          ["key_never", null],
        ]);
        // Verification reads the narrow row, with the moved last use (which a verification cache compares new uses with).
        expect(await store.findKeyForVerification("kw_used0000001")).toMatchObject({ id: "key_used", last_used_at: "2026-03-01T10:00:00.000Z", last_used_ip: "203.0.113.5" });
        expect(await store.findKeyForVerification("kw_never000001")).toMatchObject({ id: "key_never", last_used_at: null, last_used_ip: null });
      } finally {
        await store.close();
      }
    } finally {
      cleanup();
    }
  });

  it("writes no last use for a new key and keeps every whole-key read in ApiKeyRow's shape", async () => {
    const { service, principal, store } = harness;
    const created = await service.createApiKey(principal, { name: "fresh" });
    expect(store.db.prepare("SELECT count(*) AS n FROM key_usage").get()).toEqual({ n: 0 });
    const row = (await store.getKeyById(created.id))!;
    expect(Object.keys(row)).toEqual(KEY_ROW_FIELDS);
    expect(row).toMatchObject({ last_used_at: null, last_used_ip: null, last_used_user_agent: null });

    await store.recordKeyUse(created.id, { at: "2026-06-01T12:00:01.000Z", ip: "10.0.0.1", userAgent: "a" });
    const rotated = await service.rotateApiKey(principal, { id: created.id, grace_period_seconds: 60 });
    // The retired key keeps its last use; its successor has none.
    expect(await store.getKeyById(created.id)).toMatchObject({ last_used_ip: "10.0.0.1", replaced_by: rotated.id });
    expect(await store.getKeyById(rotated.id)).toMatchObject({ last_used_at: null });
    const page = await store.listKeys({
      organizationId: principal.organizationId, userId: principal.userId, projectId: null, status: "all", after: null, limit: 10, now: "2026-06-01T12:00:00.000Z",
    });
    expect(page.map((key) => Object.keys(key))).toEqual([KEY_ROW_FIELDS, KEY_ROW_FIELDS]);
  });
});

describe("recordKeyUses", () => {
  it("lets the newer use win, in a batch as against what is stored; equal times take the later write", async () => {
    const { store, principal } = harness;
    const [a, b, c, d] = insertKeys(store, principal.userId, principal.organizationId, 4) as [string, string, string, string];
    await store.recordKeyUses([
      [a, { at: "2026-06-01T12:00:10.000Z", ip: "10.0.0.1", userAgent: "a1" }],
      [b, { at: "2026-06-01T12:00:10.000Z", ip: "10.0.0.1", userAgent: "b1" }],
      [c, { at: "2026-06-01T12:00:10.000Z", ip: "10.0.0.1", userAgent: "c1" }],
    ]);
    await store.recordKeyUses([
      [a, { at: "2026-06-01T12:00:05.000Z", ip: "10.0.0.2", userAgent: "a-older" }], // older: ignored
      [b, { at: "2026-06-01T12:00:10.000Z", ip: "10.0.0.2", userAgent: "b-same" }], // same time: written
      [c, { at: "2026-06-01T12:00:20.000Z", ip: null, userAgent: null }], // newer: written, nulls too
      [d, { at: "2026-06-01T12:00:30.000Z", ip: "10.0.0.4", userAgent: "d-new" }],
      [d, { at: "2026-06-01T12:00:29.000Z", ip: "10.0.0.5", userAgent: "d-older" }], // older, same batch: ignored
    ]);
    const uses = store.db.prepare("SELECT * FROM key_usage ORDER BY key_id").all();
    expect(uses).toEqual([
      { key_id: a, last_used_at: "2026-06-01T12:00:10.000Z", last_used_ip: "10.0.0.1", last_used_user_agent: "a1" },
      { key_id: b, last_used_at: "2026-06-01T12:00:10.000Z", last_used_ip: "10.0.0.2", last_used_user_agent: "b-same" },
      { key_id: c, last_used_at: "2026-06-01T12:00:20.000Z", last_used_ip: null, last_used_user_agent: null },
      { key_id: d, last_used_at: "2026-06-01T12:00:30.000Z", last_used_ip: "10.0.0.4", last_used_user_agent: "d-new" },
    ]);
    expect(await store.getKeyById(a)).toMatchObject({ last_used_user_agent: "a1" });
  });

  it("drops the use of a key that does not exist without failing the rest of the batch", async () => {
    const { store, principal } = harness;
    const [a] = insertKeys(store, principal.userId, principal.organizationId, 1) as [string];
    await store.recordKeyUses([
      ["key_missing", { at: "2026-06-01T12:00:00.000Z", ip: null, userAgent: null }],
      [a, { at: "2026-06-01T12:00:00.000Z", ip: "10.0.0.1", userAgent: null }],
    ]);
    await store.recordKeyUse("key_missing", { at: "2026-06-01T12:00:00.000Z", ip: null, userAgent: null });
    expect(store.db.prepare("SELECT key_id FROM key_usage").pluck().all()).toEqual([a]);
  });
});

describe("user agent cap", () => {
  it("stores at most 256 characters of a verifier's user agent, and cuts no surrogate pair in half", async () => {
    const { service, principal, store } = harness;
    const created = await service.createApiKey(principal, { name: "k" });
    await service.verifyApiKey(created.key, { ip: "10.0.0.1", userAgent: `agent/${"y".repeat(5000)}` });
    const stored = (await store.getKeyById(created.id))!.last_used_user_agent!;
    expect(stored).toHaveLength(USER_AGENT_MAX_LENGTH);
    expect(stored).toBe(`agent/${"y".repeat(250)}`);

    const astral = `${"z".repeat(USER_AGENT_MAX_LENGTH - 1)}😀tail`; // the emoji's high surrogate is unit 256
    expect(capUserAgent(astral)).toBe("z".repeat(USER_AGENT_MAX_LENGTH - 1));
    expect(capUserAgent("short/1")).toBe("short/1");
    expect(capUserAgent(null)).toBeNull();
    harness.clock.advance(1000);
    await service.verifyApiKey(created.key, { userAgent: astral });
    expect((await store.getKeyById(created.id))!.last_used_user_agent).toBe("z".repeat(USER_AGENT_MAX_LENGTH - 1));
  });
});

describe("CoalescingUseRecorder, chunked", () => {
  /** The harness store with its recordKeyUses calls logged (batch sizes) and optionally failing. */
  function watchedStore(fail: (call: number) => boolean = () => false) {
    const log: (number | "tick")[] = [];
    let calls = 0;
    const real = harness.store;
    const store = new Proxy(real, {
      get(target, property, receiver) {
        if (property === "recordKeyUses") {
          return async (uses: readonly (readonly [string, KeyUse])[]) => {
            calls++;
            if (fail(calls)) throw new Error(`write ${calls} failed`);
            log.push(uses.length);
            return target.recordKeyUses(uses);
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as KeyStore;
    return { store, log };
  }
  const usedCount = () => (harness.store.db.prepare("SELECT count(*) AS n FROM key_usage").get() as { n: number }).n;

  it("writes 5,000 pending uses in transactions of 2,000, letting the event loop run between them", async () => {
    const ids = insertKeys(harness.store, harness.principal.userId, harness.principal.organizationId, 5000);
    const { store, log } = watchedStore();
    const recorder = new CoalescingUseRecorder(store, { intervalMs: 60_000 });
    for (const id of ids) await recorder.record(id, { at: "2026-06-01T12:00:00.000Z", ip: "10.0.0.1", userAgent: "bulk/1" });
    expect(recorder.pendingCount).toBe(5000);

    const flushed = recorder.flush();
    setImmediate(() => log.push("tick"));
    await flushed;
    expect(log.filter((entry) => entry !== "tick")).toEqual([2000, 2000, 1000]);
    // Other work ran before the flush was over: it did not hold the event loop for the whole batch.
    expect(log.indexOf("tick")).toBeGreaterThan(0);
    expect(log.indexOf("tick")).toBeLessThan(log.length - 1);
    expect(recorder.pendingCount).toBe(0);
    expect(usedCount()).toBe(5000);
    await recorder.close();
  });

  it("keeps a failed chunk and the rest pending, retries them on the next flush, and close writes everything", async () => {
    const ids = insertKeys(harness.store, harness.principal.userId, harness.principal.organizationId, 5000);
    const { store, log } = watchedStore((call) => call === 2);
    const errors: unknown[] = [];
    const recorder = new CoalescingUseRecorder(store, { intervalMs: 60_000, chunkSize: 2000, onError: (error) => errors.push(error) });
    for (const id of ids) await recorder.record(id, { at: "2026-06-01T12:00:00.000Z", ip: "10.0.0.1", userAgent: null });

    const flushed = recorder.flush();
    // A newer use arriving during the flush is not displaced by the older one coming back from a failed chunk.
    await recorder.record(ids[4999]!, { at: "2026-06-01T12:00:09.000Z", ip: "10.0.0.9", userAgent: null });
    await expect(flushed).rejects.toThrow(/write 2 failed/);
    expect(usedCount()).toBe(2000);
    expect(recorder.pendingCount).toBe(3000);

    await recorder.close();
    expect(recorder.pendingCount).toBe(0);
    expect(usedCount()).toBe(5000);
    expect(log).toEqual([2000, 2000, 1000]);
    expect(await harness.store.getKeyById(ids[4999]!)).toMatchObject({ last_used_at: "2026-06-01T12:00:09.000Z", last_used_ip: "10.0.0.9" });
    expect(errors).toEqual([]);
  });
});
