import { afterEach, describe, expect, it } from "vitest";
import type { Principal } from "../../src/service/principal.js";
import { openHarness, type Harness } from "../helpers/harness.js";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const DAY_MS = 86_400_000;

describe("rotation rules", () => {
  it("refuses a caller whose acting key lacks a scope of the key to rotate (no escalation through rotation)", async () => {
    harness = await openHarness();
    const { service, principal } = harness;
    const key = await service.createApiKey(principal, { name: "powerful" });
    const narrow: Principal = { ...principal, transport: "http", keyId: "key_actingkey000000000", scopes: ["tools:read"] };
    await expect(service.rotateApiKey(narrow, { id: key.id })).rejects.toMatchObject({
      code: "forbidden",
      errors: [{ key: "id", message: "missing scopes: tools:execute" }],
    });
    const enough: Principal = { ...narrow, scopes: ["tools:read", "tools:execute"] };
    const rotated = await service.rotateApiKey(enough, { id: key.id });
    expect((await harness.store.getKeyById(rotated.id))!.created_by_key_id).toBe("key_actingkey000000000");
  });

  it("refuses rotation with an API key when minting with keys is switched off", async () => {
    harness = await openHarness({ policy: { allowMintingWithKeys: false } });
    const key = await harness.service.createApiKey(harness.principal, { name: "k" });
    const withKey: Principal = { ...harness.principal, keyId: "key_actingkey000000000", scopes: ["tools:read", "tools:execute"] };
    await expect(harness.service.rotateApiKey(withKey, { id: key.id })).rejects.toMatchObject({ code: "forbidden" });
    expect((await harness.store.getKeyById(key.id))!.replaced_by).toBeNull();
  });

  it("keeps a key without expiry without expiry while policy allows it", async () => {
    harness = await openHarness({ policy: { defaultExpiryDays: null, maxExpiryDays: null } });
    const key = await harness.service.createApiKey(harness.principal, { name: "forever" });
    expect(key.expires_at).toBeNull();
    const rotated = await harness.service.rotateApiKey(harness.principal, { id: key.id, grace_period_seconds: 60 });
    expect(rotated.expires_at).toBeNull();
    // The old key had no expiry: the grace period gives it one.
    expect(rotated.previous_key_expires_at).toBe(new Date(harness.clock.current.getTime() + 60_000).toISOString());
  });

  it("gives an admin's successor the old key's lifetime counted from now", async () => {
    harness = await openHarness({ isAdmin: true });
    const { clock } = harness;
    const key = await harness.service.createApiKey(harness.principal, {
      name: "weekly",
      expires_at: new Date(clock.current.getTime() + 7 * DAY_MS).toISOString(),
    });
    clock.advance(6 * DAY_MS);
    const rotated = await harness.service.rotateApiKey(harness.principal, { id: key.id });
    expect(rotated.expires_at).toBe(new Date(clock.current.getTime() + 7 * DAY_MS).toISOString());
  });

  it("ends anyone else's successor when the old key would have ended: only an admin may lengthen a key's life", async () => {
    harness = await openHarness();
    const { clock } = harness;
    const key = await harness.service.createApiKey(harness.principal, {
      name: "weekly",
      expires_at: new Date(clock.current.getTime() + 7 * DAY_MS).toISOString(),
    });
    clock.advance(6 * DAY_MS);
    const rotated = await harness.service.rotateApiKey(harness.principal, { id: key.id });
    expect(rotated.expires_at).toBe(key.expires_at);
    // Again and again: the chain never outlives the first key.
    clock.advance(DAY_MS / 2);
    const again = await harness.service.rotateApiKey(harness.principal, { id: rotated.id });
    expect(again.expires_at).toBe(key.expires_at);
  });
});
