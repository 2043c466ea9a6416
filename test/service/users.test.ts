import { afterEach, describe, expect, it } from "vitest";
import { ServiceError } from "../../src/service/errors.js";
import { openHarness, type Harness } from "../helpers/harness.js";

const DAY = 86_400_000;
let harness: Harness;
afterEach(() => harness?.close());

describe("listUsers", () => {
  it("counts each user's active keys as the cap does: not revoked, not expired, not replaced", async () => {
    harness = await openHarness({ isAdmin: true });
    const { service, principal, clock } = harness;
    const bob = await service.localPrincipal({ userName: "bob", transport: "stdio", isAdmin: false });
    const kept = await service.createApiKey(bob, { name: "kept" });
    const revoked = await service.createApiKey(bob, { name: "revoked" });
    await service.revokeApiKey(bob, { id: revoked.id });
    await service.createApiKey(bob, { name: "short", expires_at: new Date(clock.current.getTime() + DAY).toISOString() });
    await service.rotateApiKey(bob, { id: kept.id, grace_period_seconds: 3600 }); // the old one is replaced, in grace
    await service.createApiKey(principal, { name: "mine" });

    expect((await service.listUsers(principal)).map(({ name, active_keys }) => ({ name, active_keys }))).toEqual([
      { name: "alice", active_keys: 1 },
      { name: "bob", active_keys: 2 }, // the rotated key's successor and "short"
    ]);
    clock.advance(2 * DAY); // "short" has expired
    expect((await service.listUsers(principal)).find((user) => user.name === "bob")?.active_keys).toBe(1);
    // The same number the cap uses.
    expect(await harness.store.countActiveKeys(bob.userId, clock.now().toISOString())).toBe(1);
  });

  it("is for admins only", async () => {
    harness = await openHarness({ isAdmin: false });
    await expect(harness.service.listUsers(harness.principal)).rejects.toMatchObject({ code: "forbidden" });
    await expect(harness.service.listUsers(harness.principal)).rejects.toBeInstanceOf(ServiceError);
  });
});

describe("listApiKeys status", () => {
  it("refuses a status the tool's schema would not allow, from a library or CLI caller", async () => {
    harness = await openHarness({ isAdmin: true });
    await expect(harness.service.listApiKeys(harness.principal, { status: "bogus" as never })).rejects.toMatchObject({
      code: "validation_error",
      errors: [{ key: "status", message: "must be one of active, revoked, expired, all", value: "bogus" }],
    });
  });
});
