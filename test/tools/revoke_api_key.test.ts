import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ApiKeyRecord } from "../../src/service/records.js";
import { callError, callOk, errorKeys, expectNoSecrets, openWorld, type World } from "../helpers/lifecycle.js";

interface Created {
  id: string;
  key: string;
}

let world: World;
let key: Created;
beforeEach(async () => {
  world = await openWorld();
  key = await callOk<Created>(world.aliceClient, "create_api_key", { name: "ci" });
});
afterEach(async () => {
  await world.close();
});

const nowIso = () => world.harness.clock.current.toISOString();

describe("revoke_api_key", () => {
  it("revokes with a reason: status revoked, the key is refused, one key.revoked event", async () => {
    world.harness.clock.advance(5000);
    const record = await callOk<ApiKeyRecord>(world.aliceClient, "revoke_api_key", { id: key.id, reason: "  leaked in a log  " });
    expect(record).toMatchObject({ id: key.id, status: "revoked", revoked_at: nowIso(), revoked_reason: "leaked in a log" });
    expectNoSecrets(record, [key.key]);
    expect((await callOk<{ code: string }>(world.aliceClient, "verify_api_key", { key: key.key })).code).toBe("revoked");
    const events = await world.harness.store.listEvents(key.id);
    expect(events.map((event) => [event.event_type, event.detail])).toEqual([
      ["key.created", expect.any(Object)],
      ["key.revoked", { reason: "leaked in a log" }],
    ]);
  });

  it("is idempotent: revoking again returns the same record and writes nothing", async () => {
    const first = await callOk<ApiKeyRecord>(world.aliceClient, "revoke_api_key", { id: key.id, reason: "first" });
    world.harness.clock.advance(60_000);
    const before = await world.harness.tableCounts();
    const second = await callOk<ApiKeyRecord>(world.aliceClient, "revoke_api_key", { id: key.id, reason: "second" });
    expect(second).toEqual(first);
    expect(second.revoked_reason).toBe("first");
    expect(await world.harness.tableCounts()).toEqual(before);
  });

  it("revokes without a reason (revoked_reason null)", async () => {
    const record = await callOk<ApiKeyRecord>(world.aliceClient, "revoke_api_key", { id: key.id });
    expect(record).toMatchObject({ status: "revoked", revoked_reason: null, revoked_at: nowIso() });
  });

  it("ends a rotation grace period at once", async () => {
    await callOk(world.aliceClient, "rotate_api_key", { id: key.id, grace_period_seconds: 3600 });
    expect((await callOk<{ code: string }>(world.aliceClient, "verify_api_key", { key: key.key })).code).toBe("valid");
    await callOk(world.aliceClient, "revoke_api_key", { id: key.id });
    expect((await callOk<{ code: string }>(world.aliceClient, "verify_api_key", { key: key.key })).code).toBe("revoked");
  });

  it.each([
    [{ reason: "" }, "reason", "must not be empty"],
    [{ reason: "r".repeat(256) }, "reason", "must be at most 255 characters"],
    [{ reason: "a\nb" }, "reason", "must not contain control characters"],
    [{ reason: 5 }, "reason", "expected string"],
    [{ force: true }, "force", "unknown field"],
  ])("refuses %j with a validation_error naming %s, revoking nothing", async (args, field, message) => {
    const error = await callError(world.aliceClient, "revoke_api_key", { id: key.id, ...args });
    expect(error.code).toBe("validation_error");
    expect(errorKeys(error)).toEqual([field]);
    expect(error.errors[0]!.message).toBe(message);
    expect((await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { id: key.id })).status).toBe("active");
  });

  it("requires id", async () => {
    expect((await callError(world.aliceClient, "revoke_api_key", {})).errors).toEqual([{ key: "id", message: "required" }]);
  });

  it("answers not_found for an unknown id and for another user's key, which stays active; an admin may revoke it", async () => {
    const bobs = await callOk<Created>(world.bobClient, "create_api_key", { name: "bob's" });
    for (const id of ["key_doesnotexist000000", bobs.id]) {
      const error = await callError(world.aliceClient, "revoke_api_key", { id });
      expect(error.code).toBe("not_found");
      expect(errorKeys(error)).toEqual(["id"]);
    }
    expect((await callOk<ApiKeyRecord>(world.bobClient, "get_api_key", { id: bobs.id })).status).toBe("active");

    const revoked = await callOk<ApiKeyRecord>(world.rootClient, "revoke_api_key", { id: bobs.id, reason: "offboarding" });
    expect(revoked).toMatchObject({ status: "revoked", user_id: world.bob.userId });
    const [, event] = await world.harness.store.listEvents(bobs.id);
    expect(event).toMatchObject({ event_type: "key.revoked", actor_user_id: world.root.userId });
  });
});
