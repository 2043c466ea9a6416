import { afterEach, describe, expect, it } from "vitest";
import { generateToken } from "../../src/keys/token.js";
import { ServiceError } from "../../src/service/errors.js";
import type { RequestOrigin } from "../../src/service/types.js";
import { CoalescingUseRecorder } from "../../src/service/use-recorder.js";
import { openSqliteHarness, secretOf, type Harness } from "../helpers/harness.js";
import type { SqliteKeyStore } from "../../src/store/sqlite.js";

const DAY = 86_400_000;
const origin: RequestOrigin = { transport: "http", clientAddress: "203.0.113.7", userAgent: "probe/1" };
let harness: Harness<SqliteKeyStore>;
afterEach(() => harness?.close());

describe("authenticateKey", () => {
  it("builds the principal of a good key and records its use", async () => {
    harness = await openSqliteHarness({ isAdmin: true });
    const { service, principal, store, clock } = harness;
    const admin = await service.createApiKey(principal, { name: "admin", scopes: ["admin"] });
    const result = await service.authenticateKey(admin.key, origin);
    expect(result).toEqual({
      ok: true,
      expiresAt: admin.expires_at,
      principal: {
        userId: principal.userId,
        userName: "alice",
        organizationId: principal.organizationId,
        transport: "http",
        keyId: admin.id,
        scopes: ["admin"],
        isAdmin: true,
        clientAddress: "203.0.113.7",
      },
    });
    expect(await store.getKeyById(admin.id)).toMatchObject({
      last_used_at: clock.current.toISOString(),
      last_used_ip: "203.0.113.7",
      last_used_user_agent: "probe/1",
    });
  });

  it("tells the kinds of failure apart for the audit log, and never reports a key for an unknown token", async () => {
    harness = await openSqliteHarness();
    const { service, principal, clock } = harness;
    const revoked = await service.createApiKey(principal, { name: "r" });
    await service.revokeApiKey(principal, { id: revoked.id });
    const expiring = await service.createApiKey(principal, { name: "e", expires_at: new Date(clock.current.getTime() + DAY).toISOString() });
    clock.advance(2 * DAY);
    const unknown = generateToken("kw");
    const outcomes = await Promise.all(
      [null, "kw_nope", unknown.token, revoked.key, expiring.key].map((token) => service.authenticateKey(token, origin)),
    );
    expect(outcomes).toEqual([
      { ok: false, reason: "missing", keyId: null, keyPrefix: null, organizationId: null },
      { ok: false, reason: "malformed", keyId: null, keyPrefix: null, organizationId: null },
      { ok: false, reason: "not_found", keyId: null, keyPrefix: unknown.keyPrefix, organizationId: null },
      { ok: false, reason: "revoked", keyId: revoked.id, keyPrefix: revoked.key_prefix, organizationId: principal.organizationId },
      { ok: false, reason: "expired", keyId: expiring.id, keyPrefix: expiring.key_prefix, organizationId: principal.organizationId },
    ]);
  });

  it("writes auth.failed under the default organization, with reason and address, and no secret", async () => {
    harness = await openSqliteHarness();
    const { service, store, principal } = harness;
    const unknown = generateToken("kw");
    const refusal = await service.authenticateKey(unknown.token, origin);
    if (refusal.ok) throw new Error("expected a refusal");
    await service.recordAuthenticationFailure(refusal, origin, { path: "/mcp" });
    const rows = store.db.prepare("SELECT * FROM key_events").all() as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      organization_id: principal.organizationId,
      key_id: null,
      event_type: "auth.failed",
      actor_user_id: null,
      transport: "http",
      client_address: "203.0.113.7",
    });
    expect(JSON.parse(rows[0]!.detail as string)).toEqual({ reason: "not_found", key_prefix: unknown.keyPrefix, user_agent: "probe/1", path: "/mcp" });
    expect(JSON.stringify(rows)).not.toContain(secretOf(unknown.token));
  });
});

describe("createApiKey with explicit scopes (admin create-key)", () => {
  it("lets an admin grant any scope, a key only scopes it holds, and checks the names", async () => {
    harness = await openSqliteHarness({ isAdmin: true });
    const { service, principal } = harness;
    expect((await service.createApiKey(principal, { name: "a", scopes: ["admin", "keys:verify"] })).scopes).toEqual(["admin", "keys:verify"]);

    const keyPrincipal = { ...principal, isAdmin: false, keyId: "key_x", scopes: ["tools:read"] };
    const refused = await service.createApiKey(keyPrincipal, { name: "b", scopes: ["tools:read", "admin"] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ServiceError);
    expect((refused as ServiceError).toBody().error).toMatchObject({ code: "forbidden", errors: [{ key: "scopes", value: "admin" }] });
    expect((await service.createApiKey(keyPrincipal, { name: "c", scopes: ["tools:read"] })).scopes).toEqual(["tools:read"]);

    const invalid = await service.createApiKey(principal, { name: "d", scopes: ["Not Valid"] }).catch((e: unknown) => e);
    expect((invalid as ServiceError).code).toBe("validation_error");
    const empty = await service.createApiKey(principal, { name: "d", scopes: [] }).catch((e: unknown) => e);
    expect((empty as ServiceError).toBody().error.errors).toMatchObject([{ key: "scopes", message: "must name at least one scope" }]);
  });
});

describe("CoalescingUseRecorder", () => {
  it("keeps the latest use per key in memory and writes them together on flush and close", async () => {
    harness = await openSqliteHarness();
    const { service, principal, store } = harness;
    const one = await service.createApiKey(principal, { name: "one" });
    const two = await service.createApiKey(principal, { name: "two" });
    const recorder = new CoalescingUseRecorder(store, { intervalMs: 60_000 });
    await recorder.record(one.id, { at: "2026-06-01T12:00:02.000Z", ip: "10.0.0.2", userAgent: "b" });
    await recorder.record(one.id, { at: "2026-06-01T12:00:01.000Z", ip: "10.0.0.1", userAgent: "a" }); // older: ignored
    await recorder.record(two.id, { at: "2026-06-01T12:00:03.000Z", ip: "10.0.0.3", userAgent: "c" });
    expect(recorder.pendingCount).toBe(2);
    expect((await store.getKeyById(one.id))!.last_used_at).toBeNull(); // not yet written

    await recorder.flush();
    expect(await store.getKeyById(one.id)).toMatchObject({ last_used_at: "2026-06-01T12:00:02.000Z", last_used_ip: "10.0.0.2", last_used_user_agent: "b" });
    expect(await store.getKeyById(two.id)).toMatchObject({ last_used_ip: "10.0.0.3" });

    await recorder.record(two.id, { at: "2026-06-01T12:00:04.000Z", ip: "10.0.0.4", userAgent: "d" });
    await recorder.close();
    expect(recorder.pendingCount).toBe(0);
    expect(await store.getKeyById(two.id)).toMatchObject({ last_used_ip: "10.0.0.4" });
  });

  it("writes a batch after its interval without being asked", async () => {
    harness = await openSqliteHarness();
    const { service, principal, store } = harness;
    const key = await service.createApiKey(principal, { name: "k" });
    const recorder = new CoalescingUseRecorder(store, { intervalMs: 20 });
    await recorder.record(key.id, { at: "2026-06-01T12:00:00.000Z", ip: "10.0.0.9", userAgent: null });
    for (let i = 0; i < 100 && (await store.getKeyById(key.id))!.last_used_ip === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await store.getKeyById(key.id))!.last_used_ip).toBe("10.0.0.9");
    await recorder.close();
  });
});
