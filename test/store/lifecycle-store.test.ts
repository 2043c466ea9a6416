import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ServiceError } from "../../src/service/errors.js";
import type { Principal } from "../../src/service/principal.js";
import { loadMigrations } from "../../src/store/migrations.js";
import { openSqliteDatabase, SqliteKeyStore } from "../../src/store/sqlite.js";
import { makeTempDir, openHarness, type Harness } from "../helpers/harness.js";

let harness: Harness;
beforeEach(async () => {
  harness = await openHarness();
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
    const result = await harness.store.rotateKey({
      oldKeyId: created.id,
      newKey: { ...stale, id: "key_successor0000000000", key_prefix: "kw_successor00", rotated_from: created.id },
      graceUntil: at(),
      now: at(),
      expected: stale,
      events: [],
    });
    expect(result).toMatchObject({ ok: false, reason: "changed" });
    expect(await harness.store.getKeyById("key_successor0000000000")).toBeNull();
  });

  it("checks scope narrowing inside the update transaction", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    const event = {
      id: "evt_x",
      organization_id: harness.principal.organizationId,
      key_id: created.id,
      event_type: "key.updated",
      actor_user_id: harness.principal.userId,
      actor_key_id: null,
      transport: "stdio" as const,
      client_address: null,
      occurred_at: at(),
      detail: {},
    };
    const widen = await harness.store.updateKey({ id: created.id, changes: { scopes: ["tools:read", "admin"] }, event, now: at(), narrowScopesOnly: true });
    expect(widen).toMatchObject({ ok: false, reason: "scope_widening", extra: ["admin"] });
    const missing = await harness.store.updateKey({ id: "key_nope", changes: { name: "x" }, event, now: at(), narrowScopesOnly: true });
    expect(missing).toEqual({ ok: false, reason: "not_found" });
  });

  it("runs authorize on the row as it is inside the update or revoke transaction; a throw writes nothing", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "a" });
    const event = { id: "evt_a", organization_id: null, key_id: created.id, event_type: "x", actor_user_id: null, actor_key_id: null, transport: "cli" as const, client_address: null, occurred_at: at(), detail: {} };
    // Widened after the caller's read: authorize sees the widened row, not the one read before.
    await harness.service.updateApiKey({ ...harness.principal, isAdmin: true }, { id: created.id, scopes: ["tools:read", "tools:execute", "orders:write"] });
    const seen: string[][] = [];
    const refuse = (current: { scopes: string[] }) => {
      seen.push(current.scopes);
      throw new ServiceError("forbidden", "no");
    };
    const before = await harness.store.getKeyById(created.id);
    await expect(harness.store.updateKey({ id: created.id, changes: { name: "b" }, event, now: at(), narrowScopesOnly: true, authorize: refuse })).rejects.toMatchObject({ code: "forbidden" });
    await expect(harness.store.revokeKey({ id: created.id, reason: null, now: at(), event, authorize: refuse })).rejects.toMatchObject({ code: "forbidden" });
    expect(seen).toEqual([["tools:read", "tools:execute", "orders:write"], ["tools:read", "tools:execute", "orders:write"]]);
    expect(await harness.store.getKeyById(created.id)).toEqual(before);
    expect((await harness.store.listEvents(created.id)).map((e) => e.id)).not.toContain("evt_a");
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
    const event = (id: string) => ({
      id,
      organization_id: null,
      key_id: created.id,
      event_type: "key.revoked",
      actor_user_id: null,
      actor_key_id: null,
      transport: "cli" as const,
      client_address: null,
      occurred_at: at(),
      detail: {},
    });
    expect(await harness.store.revokeKey({ id: created.id, reason: "one", now: at(), event: event("evt_1") })).toMatchObject({ ok: true, changed: true });
    const again = await harness.store.revokeKey({ id: created.id, reason: "two", now: at(), event: event("evt_2") });
    expect(again).toMatchObject({ ok: true, changed: false, key: { revoked_reason: "one" } });
    expect((await harness.store.listEvents(created.id)).map((e) => e.id)).toContain("evt_1");
    expect((await harness.store.listEvents(created.id)).map((e) => e.id)).not.toContain("evt_2");
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
