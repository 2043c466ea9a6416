import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ApiKeyRecord } from "../../src/service/records.js";
import { KeyService } from "../../src/service/service.js";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import type { CreatedApiKey } from "../../src/service/types.js";
import { callError, callOk, DAY_MS, errorKeys, expectNoSecrets, openWorld, type World } from "../helpers/lifecycle.js";

type Created = CreatedApiKey;
interface Rotated extends Created {
  previous_key_id: string;
  previous_key_expires_at: string;
}

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(async () => {
  await world.close();
});

const now = () => world.harness.clock.current.getTime();
const iso = (ms: number) => new Date(ms).toISOString();
const verify = (key: string) => callOk<{ code: string; key_id: string | null }>(world.aliceClient, "verify_api_key", { key });
const get = (id: string, client = world.aliceClient) => callOk<ApiKeyRecord>(client, "get_api_key", { id });

describe("rotate_api_key", () => {
  it("mints a successor with the same owner, project, name, description and scopes, and revokes the old key at once by default", async () => {
    await callOk(world.rootClient, "create_project", { slug: "shop", name: "Shop", default_scopes: ["orders:read", "orders:write"] });
    const old = await callOk<Created>(world.aliceClient, "create_api_key", { name: "shop backend", project_reference: "shop" });
    await callOk(world.aliceClient, "update_api_key", { id: old.id, description: "prod", scopes: ["orders:read"] });
    world.harness.clock.advance(10 * DAY_MS);

    const rotated = await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: old.id });
    expect(Object.keys(rotated).sort()).toEqual(
      ["id", "project_id", "user_id", "name", "key", "key_prefix", "expires_at", "created_at", "scopes", "previous_key_id", "previous_key_expires_at"].sort(),
    );
    expect(rotated).toMatchObject({
      project_id: old.project_id,
      user_id: world.alice.userId,
      name: "shop backend",
      scopes: ["orders:read"],
      created_at: iso(now()),
      // Only an admin may lengthen a key's life: alice's successor ends when the old key would have.
      expires_at: old.expires_at,
      previous_key_id: old.id,
      previous_key_expires_at: iso(now()),
    });
    expect(rotated.id).not.toBe(old.id);
    expect(rotated.key).toMatch(/^kw_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$/);
    expect(rotated.key.startsWith(`${rotated.key_prefix}_`)).toBe(true);
    expect(JSON.stringify(rotated)).not.toContain(old.key);

    const oldRecord = await get(old.id);
    expect(oldRecord).toMatchObject({ status: "revoked", revoked_at: iso(now()), revoked_reason: "rotated", replaced_by: rotated.id });
    const newRecord = await get(rotated.id);
    expect(newRecord).toMatchObject({ status: "active", rotated_from: old.id, replaced_by: null, description: "prod", project_id: old.project_id });
    expectNoSecrets([oldRecord, newRecord], [old.key, rotated.key]);

    expect((await verify(old.key)).code).toBe("revoked");
    expect(await verify(rotated.key)).toMatchObject({ code: "valid", key_id: rotated.id });
  });

  it("keeps the old key working for the grace period, then it expires; both are linked", async () => {
    const old = await callOk<Created>(world.aliceClient, "create_api_key", { name: "gw" });
    const rotated = await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: old.id, grace_period_seconds: 60 });
    expect(rotated.previous_key_expires_at).toBe(iso(now() + 60_000));
    expect(await get(old.id)).toMatchObject({ status: "active", expires_at: iso(now() + 60_000), revoked_at: null, replaced_by: rotated.id });
    expect((await verify(old.key)).code).toBe("valid");
    expect((await verify(rotated.key)).code).toBe("valid");

    world.harness.clock.advance(60_000);
    expect((await verify(old.key)).code).toBe("expired");
    expect((await verify(rotated.key)).code).toBe("valid");
  });

  it("never lengthens the old key's life: a grace period beyond its expiry leaves the expiry as it was", async () => {
    const old = await callOk<Created>(world.aliceClient, "create_api_key", { name: "soon", expires_at: iso(now() + 3_600_000) });
    const rotated = await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: old.id, grace_period_seconds: 86_400 });
    expect(rotated.previous_key_expires_at).toBe(old.expires_at);
    expect((await get(old.id)).expires_at).toBe(old.expires_at);
    // The successor has the old key's lifetime (1 hour), from now.
    expect(rotated.expires_at).toBe(iso(now() + 3_600_000));
  });

  it("caps the successor's lifetime at the maximum in force now", async () => {
    const old = await world.harness.service.createApiKey(world.alice, { name: "long" });
    // The same store under a stricter policy: 10-day default, 30-day maximum.
    const strict = new KeyService({
      store: world.harness.store,
      clock: world.harness.clock.now,
      config: { policy: { ...DEFAULT_POLICY, defaultExpiryDays: 10, maxExpiryDays: 30 }, keyBrand: "kw" },
    });
    const rotated = await strict.rotateApiKey(world.alice, { id: old.id });
    expect(rotated.expires_at).toBe(iso(now() + 30 * DAY_MS));
  });

  it("succeeds for a user at the active-key cap: it replaces, it does not add", async () => {
    const keys: Created[] = [];
    for (let i = 0; i < 5; i++) keys.push(await callOk<Created>(world.aliceClient, "create_api_key", { name: `k${i}` }));
    expect((await callError(world.aliceClient, "create_api_key", { name: "sixth" })).code).toBe("max_keys_reached");

    const rotated = await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: keys[0]!.id, grace_period_seconds: 3600 });
    expect((await verify(rotated.key)).code).toBe("valid");
    // The successor counts against the cap; the old key in its grace period no longer does.
    expect(await world.harness.store.countActiveKeys(world.alice.userId, iso(now()))).toBe(5);
    expect((await callError(world.aliceClient, "create_api_key", { name: "sixth" })).code).toBe("max_keys_reached");
  });

  it("writes key.rotated on both keys, with the link and the grace period", async () => {
    const old = await callOk<Created>(world.aliceClient, "create_api_key", { name: "gw" });
    const rotated = await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: old.id, grace_period_seconds: 120 });
    const detail = {
      previous_key_id: old.id,
      new_key_id: rotated.id,
      grace_period_seconds: 120,
      new_key_expires_at: rotated.expires_at,
      previous_key_expires_at: rotated.previous_key_expires_at,
      previous_key_revoked: false,
    };
    const oldEvents = await world.harness.store.listEvents(old.id);
    const newEvents = await world.harness.store.listEvents(rotated.id);
    expect(oldEvents.map((event) => event.event_type)).toEqual(["key.created", "key.rotated"]);
    expect(newEvents.map((event) => event.event_type)).toEqual(["key.rotated"]);
    expect(oldEvents[1]!.detail).toEqual(detail);
    expect(newEvents[0]!.detail).toEqual(detail);
    expectNoSecrets([oldEvents, newEvents], [old.key, rotated.key]);
  });

  it.each([
    [-1, "must be an integer from 0 to 2592000"],
    [2_592_001, "must be an integer from 0 to 2592000"],
    [1.5, "expected int"],
    ["60", "expected number"],
  ])("refuses grace_period_seconds %j with a validation_error, writing nothing", async (grace, message) => {
    const old = await callOk<Created>(world.aliceClient, "create_api_key", { name: "gw" });
    const before = await world.harness.tableCounts();
    const error = await callError(world.aliceClient, "rotate_api_key", { id: old.id, grace_period_seconds: grace });
    expect(error.code).toBe("validation_error");
    expect(errorKeys(error)).toEqual(["grace_period_seconds"]);
    expect(error.errors[0]!.message).toBe(message);
    expect(await world.harness.tableCounts()).toEqual(before);
  });

  it("accepts the bounds 0 and 30 days", async () => {
    const a = await callOk<Created>(world.aliceClient, "create_api_key", { name: "a" });
    const b = await callOk<Created>(world.aliceClient, "create_api_key", { name: "b" });
    expect((await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: a.id, grace_period_seconds: 0 })).previous_key_expires_at).toBe(iso(now()));
    expect((await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: b.id, grace_period_seconds: 2_592_000 })).previous_key_expires_at).toBe(
      iso(now() + 30 * DAY_MS),
    );
  });

  it("requires id and refuses unknown fields", async () => {
    expect((await callError(world.aliceClient, "rotate_api_key", {})).errors).toEqual([{ key: "id", message: "required" }]);
    const error = await callError(world.aliceClient, "rotate_api_key", { id: "key_x", scopes: ["admin"] });
    expect(error.errors).toEqual([{ key: "scopes", message: "unknown field" }]);
  });

  it("answers not_found for an unknown id and for another user's key, minting nothing", async () => {
    const bobs = await callOk<Created>(world.bobClient, "create_api_key", { name: "bob's" });
    const before = await world.harness.tableCounts();
    for (const id of ["key_doesnotexist000000", bobs.id]) {
      const error = await callError(world.aliceClient, "rotate_api_key", { id });
      expect(error.code).toBe("not_found");
      expect(errorKeys(error)).toEqual(["id"]);
    }
    expect(await world.harness.tableCounts()).toEqual(before);
    // An admin may rotate it; the successor still belongs to bob.
    const rotated = await callOk<Rotated>(world.rootClient, "rotate_api_key", { id: bobs.id });
    expect(rotated.user_id).toBe(world.bob.userId);
    expect((await get(rotated.id, world.bobClient)).created_by).toEqual({ user_id: world.root.userId, key_id: null });
  });

  it("refuses a revoked, an expired or an already rotated key with conflict, minting nothing", async () => {
    const revoked = await callOk<Created>(world.aliceClient, "create_api_key", { name: "r" });
    await callOk(world.aliceClient, "revoke_api_key", { id: revoked.id });
    const expiring = await callOk<Created>(world.aliceClient, "create_api_key", { name: "e", expires_at: iso(now() + 1000) });
    const rotatedOnce = await callOk<Created>(world.aliceClient, "create_api_key", { name: "o" });
    const successor = await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: rotatedOnce.id, grace_period_seconds: 600 });
    world.harness.clock.advance(1000);

    const before = await world.harness.tableCounts();
    for (const [id, reason] of [
      [revoked.id, "revoked"],
      [expiring.id, "expired"],
      [rotatedOnce.id, "already_rotated"],
    ] as const) {
      const error = await callError(world.aliceClient, "rotate_api_key", { id });
      expect(error.code).toBe("conflict");
      expect(error.errors).toEqual([{ key: "id", message: reason, value: id }]);
    }
    expect((await callError(world.aliceClient, "rotate_api_key", { id: rotatedOnce.id })).message).toContain(successor.id);
    expect(await world.harness.tableCounts()).toEqual(before);
  });

  it("lets a rotated key's successor be rotated in turn (a chain)", async () => {
    const first = await callOk<Created>(world.aliceClient, "create_api_key", { name: "chain" });
    const second = await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: first.id });
    const third = await callOk<Rotated>(world.aliceClient, "rotate_api_key", { id: second.id });
    expect(await get(second.id)).toMatchObject({ rotated_from: first.id, replaced_by: third.id, status: "revoked" });
    expect((await verify(third.key)).code).toBe("valid");
  });
});
