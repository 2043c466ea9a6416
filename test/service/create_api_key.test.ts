import { afterEach, describe, expect, it } from "vitest";
import { createTokenHasher, hashesEqual } from "../../src/keys/hash.js";
import { parseToken } from "../../src/keys/token.js";
import { ServiceError } from "../../src/service/errors.js";
import type { Principal } from "../../src/service/principal.js";
import { openSqliteHarness, tableCounts, type Harness } from "../helpers/harness.js";
import type { SqliteKeyStore } from "../../src/store/sqlite.js";

const DAY = 86_400_000;
let harness: Harness<SqliteKeyStore>;
afterEach(() => harness?.close());

async function refusal(promise: Promise<unknown>): Promise<ServiceError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServiceError);
  return error as ServiceError;
}

describe("createApiKey", () => {
  it("mints a user-level key with the default expiry and scopes, storing only its hash and prefix", async () => {
    harness = await openSqliteHarness();
    const { service, principal, clock, store } = harness;
    const created = await service.createApiKey(principal, { name: "  ci deploy  " });

    expect(created).toEqual({
      id: expect.stringMatching(/^key_[0-9A-Za-z]{20}$/),
      project_id: null,
      user_id: principal.userId,
      name: "ci deploy",
      key: expect.stringMatching(/^kw_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$/),
      key_prefix: created.key.slice(0, 15),
      expires_at: new Date(clock.current.getTime() + 90 * DAY).toISOString(),
      created_at: clock.current.toISOString(),
      scopes: ["tools:read", "tools:execute"],
    });
    expect(parseToken(created.key, "kw")?.keyPrefix).toBe(created.key_prefix);

    const row = await store.getKeyById(created.id);
    expect(row?.hash_algorithm).toBe("sha256");
    expect(hashesEqual(row!.key_hash, createTokenHasher().hash(created.key))).toBe(true);
    expect(row?.created_by_user_id).toBe(principal.userId);
    expect(row?.created_by_key_id).toBeNull();
    expect(JSON.stringify(row)).not.toContain(created.key.slice(16));
  });

  it("uses HMAC-SHA-256 with the pepper when one is configured", async () => {
    harness = await openSqliteHarness({ pepper: "a-pepper-of-16-chars+" });
    const created = await harness.service.createApiKey(harness.principal, { name: "peppered" });
    const row = await harness.store.getKeyById(created.id);
    expect(row?.hash_algorithm).toBe("hmac-sha256");
    expect(hashesEqual(row!.key_hash, createTokenHasher("a-pepper-of-16-chars+").hash(created.key))).toBe(true);
  });

  it("writes one key.created audit event without the token or its hash", async () => {
    harness = await openSqliteHarness();
    const created = await harness.service.createApiKey(harness.principal, { name: "audited" });
    const events = await harness.store.listEvents(created.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      event_type: "key.created",
      key_id: created.id,
      actor_user_id: harness.principal.userId,
      actor_key_id: null,
      transport: "stdio",
      detail: { name: "audited", project_id: null, scopes: ["tools:read", "tools:execute"], expires_at: created.expires_at },
    });
    const hashHex = Buffer.from((await harness.store.getKeyById(created.id))!.key_hash).toString("hex");
    expect(JSON.stringify(events)).not.toContain(created.key.slice(16));
    expect(JSON.stringify(events)).not.toContain(hashHex);
  });

  it("takes a project by id or slug and gives the key the project's default scopes", async () => {
    harness = await openSqliteHarness();
    const admin = { ...harness.principal, isAdmin: true };
    const project = await harness.service.createProject(admin, { slug: "billing", name: "Billing", default_scopes: ["billing:read"] });
    const bySlug = await harness.service.createApiKey(harness.principal, { name: "a", project_reference: "billing" });
    const byId = await harness.service.createApiKey(harness.principal, { name: "b", project_reference: project.id });
    expect(bySlug.project_id).toBe(project.id);
    expect(byId.project_id).toBe(project.id);
    expect(bySlug.scopes).toEqual(["billing:read"]);
  });

  it("accepts expires_at with any offset and returns it in UTC; honours the exact maximum", async () => {
    harness = await openSqliteHarness();
    const { service, principal } = harness;
    const withOffset = await service.createApiKey(principal, { name: "a", expires_at: "2026-07-01T14:30:00+02:00" });
    expect(withOffset.expires_at).toBe("2026-07-01T12:30:00.000Z");
    const atMax = new Date(harness.clock.current.getTime() + 365 * DAY).toISOString();
    expect((await service.createApiKey(principal, { name: "b", expires_at: atMax })).expires_at).toBe(atMax);
  });

  it("refuses bad names and expiry dates with one validation entry per field, writing nothing", async () => {
    harness = await openSqliteHarness();
    const { service, principal, store, clock } = harness;
    const before = tableCounts(store);
    const cases: [Record<string, string>, string[]][] = [
      [{ name: "" }, ["name"]],
      [{ name: "   " }, ["name"]],
      [{ name: "x".repeat(256) }, ["name"]],
      [{ name: "tab\there" }, ["name"]],
      [{ name: "ok", expires_at: "tomorrow" }, ["expires_at"]],
      [{ name: "ok", expires_at: "2026-13-01T00:00:00Z" }, ["expires_at"]],
      [{ name: "ok", expires_at: "2026-02-30T00:00:00Z" }, ["expires_at"]],
      [{ name: "ok", expires_at: "2026-07-01T00:00:00" }, ["expires_at"]], // no offset
      [{ name: "ok", expires_at: "2026-07-01" }, ["expires_at"]],
      [{ name: "ok", expires_at: "2020-01-01T00:00:00Z" }, ["expires_at"]],
      [{ name: "ok", expires_at: clock.current.toISOString() }, ["expires_at"]],
      [{ name: "ok", expires_at: new Date(clock.current.getTime() + 366 * DAY).toISOString() }, ["expires_at"]],
      [{ name: "", expires_at: "nope" }, ["name", "expires_at"]],
    ];
    for (const [input, fields] of cases) {
      const error = await refusal(service.createApiKey(principal, input as { name: string }));
      expect(error.code, JSON.stringify(input)).toBe("validation_error");
      expect(error.errors.map((e) => e.key), JSON.stringify(input)).toEqual(fields);
    }
    const error = await refusal(service.createApiKey(principal, { name: "ok", expires_at: "2020-01-01T00:00:00Z" }));
    expect(error.errors[0]).toEqual({ key: "expires_at", message: "must be in the future", value: "2020-01-01T00:00:00Z" });
    expect(tableCounts(store)).toEqual(before);
  });

  it("counts names in characters, not UTF-16 units", async () => {
    harness = await openSqliteHarness();
    const name = "🔑".repeat(255);
    expect((await harness.service.createApiKey(harness.principal, { name })).name).toBe(name);
  });

  it("answers not_found for an unknown project, naming project_reference, and writes nothing", async () => {
    harness = await openSqliteHarness();
    const before = tableCounts(harness.store);
    const error = await refusal(harness.service.createApiKey(harness.principal, { name: "x", project_reference: "nope" }));
    expect(error.code).toBe("not_found");
    expect(error.errors).toEqual([{ key: "project_reference", message: "not_found", value: "nope" }]);
    expect(tableCounts(harness.store)).toEqual(before);
  });

  it("refuses the sixth active key with max_keys_reached; revoked and expired keys do not count", async () => {
    harness = await openSqliteHarness();
    const { service, principal, store, clock } = harness;
    for (let i = 0; i < 5; i++) await service.createApiKey(principal, { name: `k${i}` });
    const before = tableCounts(store);
    const error = await refusal(service.createApiKey(principal, { name: "sixth" }));
    expect(error.code).toBe("max_keys_reached");
    expect(error.errors).toEqual([{ key: "limit", message: "max_keys_reached", value: 5 }]);
    expect(tableCounts(store)).toEqual(before);

    // Another user has a cap of their own.
    const bob = await service.localPrincipal({ userName: "bob", transport: "stdio", isAdmin: false });
    await expect(service.createApiKey(bob, { name: "bob's" })).resolves.toMatchObject({ user_id: bob.userId });

    // Once a key expires it no longer counts.
    const short = { ...principal };
    clock.advance(91 * DAY);
    await expect(service.createApiKey(short, { name: "after expiry" })).resolves.toMatchObject({ name: "after expiry" });
    expect(await store.countActiveKeys(principal.userId, clock.current.toISOString())).toBe(1);
  });

  it("never lets concurrent creates exceed the cap", async () => {
    harness = await openSqliteHarness({ policy: { maxActiveKeysPerUser: 3 } });
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => harness.service.createApiKey(harness.principal, { name: `p${i}` })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
    expect(await harness.store.countActiveKeys(harness.principal.userId, harness.clock.current.toISOString())).toBe(3);
  });

  it("gives keys no expiry when the operator sets the default to none", async () => {
    harness = await openSqliteHarness({ policy: { defaultExpiryDays: null, maxExpiryDays: null } });
    const created = await harness.service.createApiKey(harness.principal, { name: "forever" });
    expect(created.expires_at).toBeNull();
  });

  it("narrows a key minted with a key to the acting key's scopes, and honours the minting switch", async () => {
    harness = await openSqliteHarness();
    const viaKey: Principal = { ...harness.principal, transport: "http", keyId: "key_actingkey", scopes: ["tools:execute"] };
    expect((await harness.service.createApiKey(viaKey, { name: "narrow" })).scopes).toEqual(["tools:execute"]);

    const admin = { ...harness.principal, isAdmin: true };
    await harness.service.createProject(admin, { slug: "gw", name: "Gateway", default_scopes: ["keys:verify"] });
    const error = await refusal(harness.service.createApiKey(viaKey, { name: "wider", project_reference: "gw" }));
    expect(error.code).toBe("forbidden");
  });

  it("lets an admin create a key for another user (owner), recorded as created by the admin; refuses anyone else", async () => {
    harness = await openSqliteHarness({ isAdmin: true, userName: "operator", policy: { maxActiveKeysPerUser: 1 } });
    const { service, principal, store } = harness;
    const created = await service.createApiKey(principal, { name: "gw", owner: "gateway", scopes: ["keys:verify"] });
    const row = (await store.getKeyById(created.id))!;
    expect(row.user_id).not.toBe(principal.userId);
    expect(row.created_by_user_id).toBe(principal.userId);
    // The owner's cap, not the admin's, applies.
    expect((await refusal(service.createApiKey(principal, { name: "gw2", owner: "gateway" }))).code).toBe("max_keys_reached");
    expect((await service.createApiKey(principal, { name: "mine" })).user_id).toBe(principal.userId);

    const alice = await service.localPrincipal({ userName: "alice", transport: "cli", isAdmin: false });
    const before = tableCounts(store);
    expect((await refusal(service.createApiKey(alice, { name: "x", owner: "gateway" }))).code).toBe("forbidden");
    expect(tableCounts(store)).toEqual(before);
    // Naming yourself is not creating for someone else.
    expect((await service.createApiKey(alice, { name: "own", owner: "alice" })).user_id).toBe(alice.userId);
  });

  it("takes expires_in_days (admin create-key --expires-in-days) within the longest expiry and 9999-12-31T23:59:59Z", async () => {
    harness = await openSqliteHarness({ isAdmin: true, policy: { defaultExpiryDays: null, maxExpiryDays: null } });
    const { service, principal, clock } = harness;
    expect((await service.createApiKey(principal, { name: "week", expires_in_days: 7 })).expires_at).toBe(new Date(clock.current.getTime() + 7 * 86_400_000).toISOString());
    const far = await refusal(service.createApiKey(principal, { name: "far", expires_in_days: 3_000_000 }));
    expect(far.errors).toEqual([{ key: "expires_in_days", message: "would end after 9999-12-31T23:59:59Z, the latest instant keywarden stores", value: 3_000_000 }]);
    const both = await refusal(service.createApiKey(principal, { name: "both", expires_in_days: 7, expires_at: "2030-01-01T00:00:00Z" }));
    expect(both.errors.map((e) => e.key)).toEqual(["expires_in_days"]);
    expect(await harness.store.countActiveKeys(principal.userId, clock.current.toISOString())).toBe(1);
  });

  it("refuses minting with a key when the operator forbids it", async () => {
    harness = await openSqliteHarness({ policy: { allowMintingWithKeys: false } });
    const viaKey: Principal = { ...harness.principal, transport: "http", keyId: "key_actingkey", scopes: ["tools:execute"] };
    expect((await refusal(harness.service.createApiKey(viaKey, { name: "x" }))).code).toBe("forbidden");
  });
});

describe("createProject", () => {
  it("is admin only, checks the slug and refuses a duplicate with conflict", async () => {
    harness = await openSqliteHarness();
    const { service, principal } = harness;
    expect((await refusal(service.createProject(principal, { slug: "web", name: "Web" }))).code).toBe("forbidden");
    const admin = { ...principal, isAdmin: true };
    const project = await service.createProject(admin, { slug: "web", name: "Web" });
    expect(project).toMatchObject({ slug: "web", name: "Web", default_scopes: ["tools:read", "tools:execute"] });
    expect((await refusal(service.createProject(admin, { slug: "web", name: "Again" }))).code).toBe("conflict");
    const bad = await refusal(service.createProject(admin, { slug: "Web!", name: "", default_scopes: ["BAD SCOPE"] }));
    expect(bad.errors.map((e) => e.key)).toEqual(["slug", "name", "default_scopes"]);
    expect(await service.listProjects(principal)).toHaveLength(1);
  });
});
