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
let key: Created;
beforeEach(async () => {
  world = await openWorld();
  key = await callOk<Created>(world.aliceClient, "create_api_key", { name: "ci" });
});
afterEach(async () => {
  await world.close();
});

const inDays = (days: number) => new Date(world.harness.clock.current.getTime() + days * DAY_MS).toISOString();

describe("update_api_key", () => {
  it("renames, describes, narrows scopes and moves the expiry; the key keeps working", async () => {
    const expiresAt = inDays(30);
    const record = await callOk<ApiKeyRecord>(world.aliceClient, "update_api_key", {
      id: key.id,
      name: "  ci runner  ",
      description: "Used by the nightly build.\nOwner: platform team",
      scopes: ["tools:read"],
      expires_at: expiresAt.replace("Z", "+00:00"),
    });
    expect(record).toMatchObject({
      id: key.id,
      name: "ci runner",
      description: "Used by the nightly build.\nOwner: platform team",
      scopes: ["tools:read"],
      expires_at: expiresAt,
      status: "active",
      key_prefix: key.key_prefix,
    });
    expectNoSecrets(record, [key.key]);
    expect(await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { id: key.id })).toEqual(record);
    const verified = await callOk<{ code: string; scopes: string[] }>(world.aliceClient, "verify_api_key", { key: key.key });
    expect(verified).toMatchObject({ code: "valid", scopes: ["tools:read"] });
  });

  it("records one key.updated event naming the changed fields with old and new values", async () => {
    await callOk(world.aliceClient, "update_api_key", { id: key.id, name: "renamed", scopes: ["tools:read"], description: "x" });
    const events = await world.harness.store.listEvents(key.id);
    expect(events.map((event) => event.event_type)).toEqual(["key.created", "key.updated"]);
    expect(events[1]).toMatchObject({
      actor_user_id: world.alice.userId,
      actor_key_id: null,
      transport: "stdio",
      detail: {
        changed: ["name", "description", "scopes"],
        from: { name: "ci", scopes: ["tools:read", "tools:execute"] },
        to: { name: "renamed", scopes: ["tools:read"] },
      },
    });
  });

  it("clears the description with null", async () => {
    await callOk(world.aliceClient, "update_api_key", { id: key.id, description: "temporary" });
    const record = await callOk<ApiKeyRecord>(world.aliceClient, "update_api_key", { id: key.id, description: null });
    expect(record.description).toBeNull();
  });

  it("writes nothing, not even an event, when nothing really changes", async () => {
    const before = await world.harness.tableCounts();
    const record = await callOk<ApiKeyRecord>(world.aliceClient, "update_api_key", { id: key.id, name: "ci", scopes: ["tools:read", "tools:execute"] });
    expect(record.name).toBe("ci");
    expect(await world.harness.tableCounts()).toEqual(before);
  });

  it("refuses to widen scopes for a non-admin (forbidden, nothing written); an admin may set any", async () => {
    await callOk(world.aliceClient, "update_api_key", { id: key.id, scopes: ["tools:read"] });
    const before = await world.harness.tableCounts();
    const error = await callError(world.aliceClient, "update_api_key", { id: key.id, scopes: ["tools:read", "tools:execute"] });
    expect(error.code).toBe("forbidden");
    expect(error.errors).toEqual([{ key: "scopes", message: "not on the key: tools:execute", value: "tools:execute" }]);
    expect(await world.harness.tableCounts()).toEqual(before);

    const widened = await callOk<ApiKeyRecord>(world.rootClient, "update_api_key", { id: key.id, scopes: ["tools:read", "orders:write"] });
    expect(widened.scopes).toEqual(["tools:read", "orders:write"]);
  });

  it.each([
    [{ name: "" }, "name", "must not be empty"],
    [{ name: "x".repeat(256) }, "name", "must be at most 255 characters"],
    [{ name: "a\u0007b" }, "name", "must not contain control characters"],
    [{ description: "   " }, "description", "must not be empty; pass null to clear the description"],
    [{ description: "d".repeat(1001) }, "description", "must be at most 1000 characters"],
    [{ description: "a\u0000b" }, "description", "must not contain control characters other than tab and newlines"],
    [{ scopes: [] }, "scopes", "must name at least one scope"],
    [{ scopes: ["Tools Read"] }, "scopes", "each scope must be lowercase words joined by : . _ or -, at most 64 characters"],
    [{ scopes: "tools:read" }, "scopes", "expected array"],
    [{ expires_at: "tomorrow" }, "expires_at", "must be an ISO 8601 date-time with a UTC offset, e.g. 2027-01-31T12:00:00Z"],
    [{ expires_at: "2026-05-01T00:00:00Z" }, "expires_at", "must be in the future"],
    [{ expires_at: "2027-06-02T12:00:00Z" }, "expires_at", "must be at most 365 days from now"],
    [{}, "arguments", "name at least one of name, description, scopes and expires_at to change"],
    [{ key_prefix: "kw_x" }, "key_prefix", "unknown field"],
  ])("refuses %j with a validation_error naming %s", async (change, field, message) => {
    const before = await world.harness.tableCounts();
    const error = await callError(world.aliceClient, "update_api_key", { id: key.id, ...change });
    expect(error.code).toBe("validation_error");
    expect(errorKeys(error)).toEqual([field]);
    expect(error.errors[0]!.message).toBe(message);
    expect(await world.harness.tableCounts()).toEqual(before);
  });

  it("requires id", async () => {
    const error = await callError(world.aliceClient, "update_api_key", { name: "x" });
    expect(error.errors).toEqual([{ key: "id", message: "required" }]);
  });

  it("answers not_found for an unknown id and for another user's key", async () => {
    const bobs = await callOk<Created>(world.bobClient, "create_api_key", { name: "bob's" });
    for (const id of ["key_doesnotexist000000", bobs.id]) {
      const error = await callError(world.aliceClient, "update_api_key", { id, name: "mine now" });
      expect(error.code).toBe("not_found");
      expect(errorKeys(error)).toEqual(["id"]);
    }
    expect((await callOk<ApiKeyRecord>(world.bobClient, "get_api_key", { id: bobs.id })).name).toBe("bob's");
  });

  it("refuses to move the expiry of a revoked, expired or rotated key (conflict), but still renames it", async () => {
    await callOk(world.aliceClient, "revoke_api_key", { id: key.id });
    const revoked = await callError(world.aliceClient, "update_api_key", { id: key.id, expires_at: inDays(10) });
    expect(revoked.code).toBe("conflict");
    expect(errorKeys(revoked)).toEqual(["expires_at"]);
    expect((await callOk<ApiKeyRecord>(world.aliceClient, "update_api_key", { id: key.id, name: "old ci" })).name).toBe("old ci");

    const short = await callOk<Created>(world.aliceClient, "create_api_key", { name: "short", expires_at: inDays(1) });
    world.harness.clock.advance(DAY_MS);
    const expired = await callError(world.aliceClient, "update_api_key", { id: short.id, expires_at: inDays(10) });
    expect(expired.code).toBe("conflict");
    expect((await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { id: short.id })).status).toBe("expired");

    const live = await callOk<Created>(world.aliceClient, "create_api_key", { name: "live" });
    await callOk(world.aliceClient, "rotate_api_key", { id: live.id, grace_period_seconds: 3600 });
    const rotated = await callError(world.aliceClient, "update_api_key", { id: live.id, expires_at: inDays(10) });
    expect(rotated.code).toBe("conflict");
    expect(rotated.message).toMatch(/rotated/);
  });
});
