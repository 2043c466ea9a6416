import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ApiKeyRecord } from "../../src/service/records.js";
import { callError, callOk, DAY_MS, errorKeys, expectNoSecrets, openWorld, type World } from "../helpers/lifecycle.js";

interface Created {
  id: string;
  key: string;
  key_prefix: string;
  expires_at: string | null;
}

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(async () => {
  await world.close();
});

describe("get_api_key", () => {
  it("finds a key by id and by key_prefix, with the same record and no secret", async () => {
    const created = await callOk<Created>(world.aliceClient, "create_api_key", { name: "deploy bot" });
    const byId = await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { id: created.id });
    const byPrefix = await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { key_prefix: created.key_prefix });
    expect(byPrefix).toEqual(byId);
    expect(byId).toMatchObject({
      id: created.id,
      name: "deploy bot",
      key_prefix: created.key_prefix,
      user_id: world.alice.userId,
      status: "active",
      expires_at: created.expires_at,
      created_by: { user_id: world.alice.userId, key_id: null },
    });
    expect(Object.keys(byId).sort()).toEqual(
      [
        "id", "project_id", "user_id", "organization_id", "name", "description", "key_prefix", "scopes", "status",
        "created_at", "created_by", "expires_at", "last_used_at", "last_used_ip", "last_used_user_agent",
        "revoked_at", "revoked_reason", "rotated_from", "replaced_by",
      ].sort(),
    );
    expectNoSecrets(byId, [created.key]);
  });

  it("derives status from the clock: expired once expires_at has passed", async () => {
    const created = await callOk<Created>(world.aliceClient, "create_api_key", {
      name: "short",
      expires_at: new Date(world.harness.clock.current.getTime() + DAY_MS).toISOString(),
    });
    world.harness.clock.advance(DAY_MS - 1);
    expect((await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { id: created.id })).status).toBe("active");
    world.harness.clock.advance(1);
    expect((await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { id: created.id })).status).toBe("expired");
  });

  it("answers not_found for an unknown id or prefix", async () => {
    const byId = await callError(world.aliceClient, "get_api_key", { id: "key_doesnotexist000000" });
    expect(byId.code).toBe("not_found");
    expect(byId.errors).toEqual([{ key: "id", message: "not_found", value: "key_doesnotexist000000" }]);
    const byPrefix = await callError(world.aliceClient, "get_api_key", { key_prefix: "kw_000000000000" });
    expect(byPrefix.code).toBe("not_found");
    expect(errorKeys(byPrefix)).toEqual(["key_prefix"]);
  });

  it("answers not_found, not forbidden, for another user's key; an admin sees it", async () => {
    const bobs = await callOk<Created>(world.bobClient, "create_api_key", { name: "bob's" });
    const unknown = await callError(world.aliceClient, "get_api_key", { id: "key_doesnotexist000000" });
    const byId = await callError(world.aliceClient, "get_api_key", { id: bobs.id });
    // Indistinguishable from a key that does not exist, apart from the echoed id.
    expect({ ...byId, errors: byId.errors.map(({ value, ...rest }) => rest) }).toEqual({
      ...unknown,
      errors: unknown.errors.map(({ value, ...rest }) => rest),
    });
    const byPrefix = await callError(world.aliceClient, "get_api_key", { key_prefix: bobs.key_prefix });
    expect(byPrefix.code).toBe("not_found");

    const seenByAdmin = await callOk<ApiKeyRecord>(world.rootClient, "get_api_key", { id: bobs.id });
    expect(seenByAdmin.user_id).toBe(world.bob.userId);
  });

  it.each([
    [{}, ["id"]],
    [{ id: "key_a", key_prefix: "kw_a" }, ["key_prefix"]],
  ])("refuses %j: exactly one of id and key_prefix", async (args, keys) => {
    const error = await callError(world.aliceClient, "get_api_key", args);
    expect(error.code).toBe("validation_error");
    expect(errorKeys(error)).toEqual(keys);
    expect(error.errors[0]!.message).toBe("give exactly one of id and key_prefix");
  });

  it.each([
    [{ id: 42 }, "id"],
    [{ key_prefix: ["kw"] }, "key_prefix"],
    [{ key: "kw_x" }, "key"],
  ])("refuses %j with a validation_error naming %s", async (args, key) => {
    const error = await callError(world.aliceClient, "get_api_key", args);
    expect(error.code).toBe("validation_error");
    expect(errorKeys(error)).toEqual([key]);
  });
});
