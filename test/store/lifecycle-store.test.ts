import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ServiceError } from "../../src/service/errors.js";
import { decideRevoke } from "../../src/service/revoke.js";
import { decideRotate } from "../../src/service/rotate.js";
import { decideUpdate } from "../../src/service/update.js";
import type { Principal } from "../../src/service/principal.js";
import { loadMigrations } from "../../src/store/migrations.js";
import { openSqliteDatabase, SqliteKeyStore } from "../../src/store/sqlite.js";
import type { KeyChanges } from "../../src/store/types.js";
import { makeTempDir, openSqliteHarness, type Harness } from "../helpers/harness.js";

let harness: Harness<SqliteKeyStore>;
beforeEach(async () => {
  harness = await openSqliteHarness();
});
afterEach(async () => {
  await harness.close();
});

const at = (harnessClock = harness.clock) => harnessClock.current.toISOString();

describe("schema v2", () => {
  it("brings a v1 database to v2 and keeps its events", async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const path = join(dir, "old.db");
      const v1 = openSqliteDatabase({ path, migrations: loadMigrations().slice(0, 1) });
      v1.prepare(
        "INSERT INTO key_events (id, organization_id, key_id, event_type, actor_user_id, actor_key_id, transport, client_address, occurred_at, detail) VALUES ('evt_1', 'org_1', 'key_1', 'key.created', NULL, NULL, 'cli', NULL, '2026-01-01T00:00:00.000Z', '{}')",
      ).run();
      expect(v1.pragma("user_version", { simple: true })).toBe(1);
      v1.close();

      const store = SqliteKeyStore.open({ path });
      try {
        expect(store.db.pragma("user_version", { simple: true })).toBe(loadMigrations().length);
        expect((await store.listEvents("key_1")).map((event) => event.id)).toEqual(["evt_1"]);
        const indexColumns = (name: string) =>
          store.db.prepare<[], { name: string }>(`PRAGMA index_info(${name})`).all().map((column) => column.name);
        expect(indexColumns("key_events_by_key")).toEqual(["key_id", "occurred_at"]);
        expect(indexColumns("key_events_by_time")).toEqual(["organization_id", "occurred_at"]);
      } finally {
        await store.close();
      }
    } finally {
      cleanup();
    }
  });
});

describe("SqliteKeyStore lifecycle methods", () => {
  it("does not count a key in its rotation grace period against the cap", async () => {
    const old = await harness.service.createApiKey(harness.principal, { name: "a" });
    expect(await harness.store.countActiveKeys(harness.principal.userId, at())).toBe(1);
    await harness.service.rotateApiKey(harness.principal, { id: old.id, grace_period_seconds: 600 });
    // Two keys work, but only the successor counts.
    expect(await harness.store.countActiveKeys(harness.principal.userId, at())).toBe(1);
  });

  it("refuses a rotation built from a stale read (a concurrent narrowing must not be undone)", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    const stale = (await harness.store.getKeyById(created.id))!;
    await harness.service.updateApiKey(harness.principal, { id: created.id, scopes: ["tools:read"] });
    const successor = { ...stale, id: "key_successor0000000000", key_prefix: "kw_successor00", rotated_from: created.id };
    const result = await harness.store.write({ keyIds: [created.id] }, (rows) =>
      decideRotate(rows, { id: created.id, successor, expected: stale, graceSeconds: 0, graceUntil: at() }, harness.principal, at()),
    );
    expect(result).toMatchObject({ ok: false, refusal: { code: "conflict", errors: [{ message: "changed" }] } });
    expect(await harness.store.getKeyById("key_successor0000000000")).toBeNull();
  });

  it("checks scope narrowing inside the update transaction", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    const update = (id: string, changes: KeyChanges) =>
      harness.store.write({ keyIds: [id] }, (rows) => decideUpdate(rows, { id, changes }, harness.principal, at()));
    const widen = await update(created.id, { scopes: ["tools:read", "admin"] });
    expect(widen).toMatchObject({ ok: false, refusal: { code: "forbidden", errors: [{ key: "scopes", message: "not on the key: admin" }] } });
    expect(await update("key_nope", { name: "x" })).toMatchObject({ ok: false, refusal: { code: "not_found" } });
  });

  it("judges the row as it is inside the update or revoke transaction; a refusal writes nothing", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    // Read by a key holding tools:read and tools:execute, then widened by an admin: the deciders
    // see the widened row, not the one read before, and refuse the weaker key.
    const weaker: Principal = { ...harness.principal, keyId: "key_acting", scopes: ["tools:read", "tools:execute"] };
    await harness.service.updateApiKey({ ...harness.principal, isAdmin: true }, { id: created.id, scopes: ["tools:read", "tools:execute", "orders:write"] });
    const before = await harness.store.getKeyById(created.id);
    const events = (await harness.store.listEvents(created.id)).length;
    const update = await harness.store.write({ keyIds: [created.id] }, (rows) => decideUpdate(rows, { id: created.id, changes: { name: "b" } }, weaker, at()));
    const revoke = await harness.store.write({ keyIds: [created.id] }, (rows) => decideRevoke(rows, { id: created.id, reason: null }, weaker, at()));
    for (const outcome of [update, revoke]) {
      expect(outcome).toMatchObject({ ok: false, refusal: { code: "forbidden", errors: [{ key: "id", message: "missing scopes: orders:write" }] } });
    }
    expect(await harness.store.getKeyById(created.id)).toEqual(before);
    expect(await harness.store.listEvents(created.id)).toHaveLength(events);
  });

  it("ends a predecessor's grace only while it still works", async () => {
    const first = await harness.service.createApiKey(harness.principal, { name: "a" });
    const second = await harness.service.rotateApiKey(harness.principal, { id: first.id, grace_period_seconds: 600 });
    await harness.service.revokeApiKey(harness.principal, { id: first.id });
    const revokedFirst = await harness.store.getKeyById(first.id);
    await harness.service.rotateApiKey(harness.principal, { id: second.id, grace_period_seconds: 600 });
    // Already revoked: its row and its events stay as they were.
    expect(await harness.store.getKeyById(first.id)).toEqual(revokedFirst);
    expect((await harness.store.listEvents(first.id)).map((e) => e.event_type)).toEqual(["key.created", "key.rotated", "key.revoked"]);
  });

  it("never lets an older use overwrite a newer one", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    await harness.store.recordKeyUse(created.id, { at: "2026-06-01T12:00:10.000Z", ip: "10.0.0.2", userAgent: "new" });
    await harness.store.recordKeyUse(created.id, { at: "2026-06-01T12:00:05.000Z", ip: "10.0.0.1", userAgent: "old" });
    expect(await harness.store.getKeyById(created.id)).toMatchObject({
      last_used_at: "2026-06-01T12:00:10.000Z",
      last_used_ip: "10.0.0.2",
      last_used_user_agent: "new",
    });
  });

  it("revokes once: a second revocation reports changed=false and writes no event", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    const revoke = (reason: string) =>
      harness.store.write({ keyIds: [created.id] }, (rows) => decideRevoke(rows, { id: created.id, reason }, harness.principal, at()));
    expect(await revoke("one")).toMatchObject({ ok: true, result: { changed: true } });
    harness.clock.advance(1000);
    const again = await revoke("two");
    expect(again).toMatchObject({ ok: true, result: { changed: false, key: { revoked_reason: "one" } } });
    const revocations = (await harness.store.listEvents(created.id)).filter((e) => e.event_type === "key.revoked");
    expect(revocations.map((e) => e.detail)).toEqual([{ reason: "one" }]);
  });

  it("lists events of the same instant in the order they were written", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    for (let i = 0; i < 20; i++) await harness.service.updateApiKey(harness.principal, { id: created.id, name: `n${i}` });
    const names = (await harness.store.listEvents(created.id)).slice(1).map((event) => (event.detail.to as { name: string }).name);
    expect(names).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
  });
});

describe("organizations", () => {
  it("keep their keys apart, even from another organization's admin", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    harness.store.db.prepare("INSERT INTO organizations (id, name, created_at) VALUES ('org_other', 'other', ?)").run(at());
    const outsider = await harness.store.ensureUser("org_other", "mallory", at());
    const principal: Principal = {
      userId: outsider.id,
      userName: outsider.name,
      organizationId: "org_other",
      transport: "stdio",
      keyId: null,
      scopes: null,
      isAdmin: true,
      clientAddress: null,
    };
    expect((await harness.service.listApiKeys(principal, { status: "all" })).keys).toEqual([]);
    expect((await harness.service.listKeyEvents(principal)).events).toEqual([]);
    for (const attempt of [
      () => harness.service.getApiKey(principal, { id: created.id }),
      () => harness.service.revokeApiKey(principal, { id: created.id }),
      () => harness.service.rotateApiKey(principal, { id: created.id }),
      () => harness.service.updateApiKey(principal, { id: created.id, name: "x" }),
    ]) {
      await expect(attempt()).rejects.toMatchObject({ code: "not_found" } satisfies Partial<ServiceError>);
    }
  });
});
