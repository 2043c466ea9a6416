import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createTokenHasher } from "../../src/keys/hash.js";
import { generateToken } from "../../src/keys/token.js";
import { verifyApiKey } from "../../src/index.js";
import { ServiceError } from "../../src/service/errors.js";
import { KeyService } from "../../src/service/service.js";
import type { KeyUseRecorder } from "../../src/service/types.js";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import type { KeyStore, KeyUse } from "../../src/store/types.js";
import { openHarness, type Harness } from "../helpers/harness.js";

/**
 * The real store, with every method call counted by name; keyChangeVersion (the verification
 * cache's check that no key changed, not a read of a key) is left out.
 */
function countingStore(store: KeyStore): { store: KeyStore; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (property !== "keyChangeVersion") calls.push(String(property));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, calls };
}

const PEPPER = "a-pepper-of-sixteen-or-more";

let harness: Harness;
beforeEach(async () => {
  harness = await openHarness({ pepper: PEPPER });
});
afterEach(async () => {
  await harness.close();
});

describe("KeyService.verifyApiKey", () => {
  it("never reaches the store for a malformed token or a bad checksum", async () => {
    const { store, calls } = countingStore(harness.store);
    const service = new KeyService({ store, pepper: PEPPER, clock: harness.clock.now });
    const { key: token } = await harness.service.createApiKey(harness.principal, { name: "k" });
    const badChecksum = token.slice(0, -1) + (token.endsWith("0") ? "1" : "0");
    for (const bad of ["", "kw_", badChecksum, token.slice(1), generateToken("other").token, `${token}\n`]) {
      expect((await service.verifyApiKey(bad)).code).toBe("malformed");
    }
    expect(calls).toEqual([]);

    expect((await service.verifyApiKey(token)).code).toBe("valid");
    expect(calls).toEqual(["findKeyForVerification", "recordKeyUse"]);
  });

  it("looks up an unknown well-formed token once and records nothing", async () => {
    const { store, calls } = countingStore(harness.store);
    const service = new KeyService({ store, pepper: PEPPER });
    expect((await service.verifyApiKey(generateToken().token)).code).toBe("not_found");
    expect(calls).toEqual(["findKeyForVerification"]);
  });

  it("hashes with each row's own algorithm: a key from before the pepper still verifies", async () => {
    const unpeppered = new KeyService({ store: harness.store, clock: harness.clock.now });
    const old = await unpeppered.createApiKey(harness.principal, { name: "old" });
    const fresh = await harness.service.createApiKey(harness.principal, { name: "new" });
    expect((await harness.service.verifyApiKey(old.key)).code).toBe("valid");
    expect((await harness.service.verifyApiKey(fresh.key)).code).toBe("valid");
    // Without the pepper, a peppered row cannot be checked: the caller's key fails like an unknown
    // one (never a throw, which HTTP answered with 500, unaudited); the CLI refuses to start on it.
    expect(await unpeppered.verifyApiKey(fresh.key)).toMatchObject({ valid: false, code: "not_found", key_id: null });
    const origin = { transport: "http" as const, clientAddress: "192.0.2.1", userAgent: null };
    expect(await unpeppered.authenticateKey(fresh.key, origin)).toMatchObject({ ok: false, reason: "not_found", keyPrefix: fresh.key_prefix });
    // The library's verifyApiKey(store, …) is configured by its caller, like the CLI: it refuses.
    await expect(verifyApiKey(harness.store, fresh.key)).rejects.toThrow(/holds keys hashed with hmac-sha256, which needs the pepper/);
    expect(await unpeppered.unusableHashAlgorithms()).toEqual(["hmac-sha256"]);
    expect(await harness.service.unusableHashAlgorithms()).toEqual([]);
    // A different pepper gives a different hash: not_found.
    const otherPepper = new KeyService({ store: harness.store, pepper: "another-pepper-of-16+" });
    expect((await otherPepper.verifyApiKey(fresh.key)).code).toBe("not_found");
  });

  it("records last use through the KeyUseRecorder, with the caller's address and user agent, only when valid", async () => {
    const uses: [string, KeyUse][] = [];
    const recorder: KeyUseRecorder = { record: async (id, use) => void uses.push([id, use]) };
    const service = new KeyService({ store: harness.store, pepper: PEPPER, clock: harness.clock.now, useRecorder: recorder });
    const created = await service.createApiKey(harness.principal, { name: "k" });
    await service.verifyApiKey(created.key, { ip: "203.0.113.9", userAgent: "gateway/1.0" });
    await service.verifyApiKey(created.key, { requiredScopes: ["nope"] });
    await service.verifyApiKey(generateToken().token);
    expect(uses).toEqual([[created.id, { at: "2026-06-01T12:00:00.000Z", ip: "203.0.113.9", userAgent: "gateway/1.0" }]]);
    // The recorder replaced the direct write.
    expect((await harness.store.getKeyById(created.id))!.last_used_at).toBeNull();
  });

  it("stores last use with address and user agent by default", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    harness.clock.advance(5000);
    await harness.service.verifyApiKey(created.key, { ip: "198.51.100.7", userAgent: "curl/8" });
    expect(await harness.store.getKeyById(created.id)).toMatchObject({
      last_used_at: "2026-06-01T12:00:05.000Z",
      last_used_ip: "198.51.100.7",
      last_used_user_agent: "curl/8",
    });
  });

  it("refuses an invalid required scope before looking at the token", async () => {
    const { store, calls } = countingStore(harness.store);
    const service = new KeyService({ store, pepper: PEPPER });
    const error = await service.verifyApiKey(generateToken().token, { requiredScopes: ["Bad Scope"] }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServiceError);
    // Named as the library's option, which is what this caller passed; no value echoed.
    expect((error as ServiceError).errors).toEqual([{ key: "requiredScopes", message: expect.any(String) }]);
    expect(calls).toEqual([]);
  });

  it("refuses required scopes that are not a list of names, or more than 50, naming requiredScopes", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    const refusal = (requiredScopes: unknown) =>
      verifyApiKey(harness.service, created.key, { requiredScopes: requiredScopes as string[] }).then(
        () => null,
        (caught: unknown) => (caught as ServiceError).toBody().error,
      );
    expect(await refusal("tools:read")).toEqual({
      code: "validation_error",
      message: "invalid requiredScopes: must be a list of scope names",
      errors: [{ key: "requiredScopes", message: "must be a list of scope names" }],
    });
    expect(await refusal([created.key])).toMatchObject({ errors: [{ key: "requiredScopes", message: expect.stringMatching(/^each scope must be/) }] });
    expect(JSON.stringify(await refusal([created.key]))).not.toContain(created.key.slice(16));
    expect(await refusal(Array.from({ length: 51 }, (_, i) => `s${i}`))).toMatchObject({ errors: [{ key: "requiredScopes", message: "must name at most 50 scopes" }] });
    expect(await refusal(Array.from({ length: 50 }, (_, i) => `s${i}`))).toBeNull();
  });
});

describe("verifyApiKey (library export)", () => {
  it("accepts the KeyService the program already has", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    expect(await verifyApiKey(harness.service, created.key, { requiredScopes: ["tools:read"] })).toMatchObject({
      valid: true,
      code: "valid",
      key_id: created.id,
    });
    expect((await verifyApiKey(harness.service, created.key, { requiredScopes: ["orders:read"] })).code).toBe("insufficient_scope");
  });

  it("accepts a store with the pepper and brand its keys were made with", async () => {
    // verifyApiKey(store, …) judges expiry by the real clock: mint with the real clock too.
    const realClock = new KeyService({ store: harness.store, pepper: PEPPER });
    const created = await realClock.createApiKey(harness.principal, { name: "k" });
    expect((await verifyApiKey(harness.store, created.key, { pepper: PEPPER })).code).toBe("valid");
    expect((await verifyApiKey(harness.store, created.key, { pepper: PEPPER, requiredScopes: ["tools:execute"] })).code).toBe("valid");
    // The brand decides what is well-formed.
    expect((await verifyApiKey(harness.store, created.key, { pepper: PEPPER, keyBrand: "acme" })).code).toBe("malformed");

    const acme = new KeyService({ store: harness.store, config: { policy: DEFAULT_POLICY, keyBrand: "acme" } });
    const acmeKey = await acme.createApiKey(harness.principal, { name: "acme" });
    expect(acmeKey.key.startsWith("acme_")).toBe(true);
    // The store holds peppered keys, so every call on it passes the pepper (the next test).
    expect((await verifyApiKey(harness.store, acmeKey.key, { keyBrand: "acme", pepper: PEPPER })).code).toBe("valid");
  });

  it("refuses a store holding peppered keys when called without the pepper, saying what to pass, as the server refuses to start", async () => {
    const withPepper = new KeyService({ store: harness.store, pepper: PEPPER });
    const created = await withPepper.createApiKey(harness.principal, { name: "k" });
    const refusal = await verifyApiKey(harness.store, created.key).catch((caught: unknown) => caught);
    expect(refusal).toBeInstanceOf(Error);
    expect((refusal as Error).message).toBe(
      "this store holds keys hashed with hmac-sha256, which needs the pepper option of verifyApiKey (KEYWARDEN_PEPPER): set it to the pepper those keys were created with",
    );
    // Never the token, never the pepper.
    expect((refusal as Error).message).not.toContain(created.key.slice(16));
    // Refused at every call until it is usable; with the pepper, verified.
    await expect(verifyApiKey(harness.store, created.key)).rejects.toThrow(/needs the pepper option/);
    expect((await verifyApiKey(harness.store, created.key, { pepper: PEPPER })).code).toBe("valid");
  });

  it("rejects a pepper shorter than 16 characters, as KEYWARDEN_PEPPER is refused", async () => {
    const created = await new KeyService({ store: harness.store, pepper: PEPPER }).createApiKey(harness.principal, { name: "k" });
    await expect(verifyApiKey(harness.store, created.key, { pepper: "too-short" })).rejects.toThrow(new RangeError("the pepper must be at least 16 characters"));
    expect(() => new KeyService({ store: harness.store, pepper: "" })).toThrow(RangeError);
    expect((await verifyApiKey(harness.store, created.key, { pepper: PEPPER })).code).toBe("valid");
  });

  it("refuses another pepper than the one the store recorded, and records none itself", async () => {
    const withPepper = new KeyService({ store: harness.store, pepper: PEPPER });
    const created = await withPepper.createApiKey(harness.principal, { name: "k" });
    // No fingerprint recorded yet (no server started on it): a wrong pepper cannot be told, and is not recorded.
    expect((await verifyApiKey(harness.store, created.key, { pepper: "a-mistaken-pepper-16+" })).code).toBe("not_found");
    expect(await harness.store.pepperFingerprint()).toBeNull();
    // A server's start records the pepper (as keywarden serve does); from then on the wrong one is refused.
    expect(await withPepper.pepperDiffers()).toBe(false);
    expect(await harness.store.pepperFingerprint()).toBe(createTokenHasher(PEPPER).pepperFingerprint);
    const refusal = await verifyApiKey(harness.store, created.key, { pepper: "another-mistaken-16+" }).catch((caught: unknown) => caught);
    expect((refusal as Error).message).toBe(
      "the pepper option of verifyApiKey (KEYWARDEN_PEPPER) is not the pepper this store hashes its keys with: set the one its keys were created with (keys made with another would never verify)",
    );
    expect((refusal as Error).message).not.toContain("another-mistaken");
    expect((await verifyApiKey(harness.store, created.key, { pepper: PEPPER })).code).toBe("valid");
  });
});
