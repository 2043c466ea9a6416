import { createHash } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checksumOf, generateToken } from "../../src/keys/token.js";
import { verifyApiKey } from "../../src/index.js";
import { KeyService } from "../../src/service/service.js";
import type { KeyUseRecorder } from "../../src/service/types.js";
import { cacheKeyOf, MAX_REMEMBERED_ORIGINS, NEGATIVE_ENTRY_TTL_MS, NOT_FOUND, VerificationCache } from "../../src/service/verification-cache.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import type { KeyStore, KeyUse, VerifiableKey } from "../../src/store/types.js";
import { openSqliteHarness, type Harness } from "../helpers/harness.js";

// The verification cache (src/service/verification-cache.ts) on a real SQLite store: what it
// answers from memory, and that it never answers what the store no longer says.

/** The real store, with its reads of a key for verification counted. */
function countingReads(store: KeyStore): { store: KeyStore; reads: () => number } {
  let reads = 0;
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (property === "findKeyForVerification") reads++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, reads: () => reads };
}

/** A well-formed token with this key's prefix and another secret: a row exists, its hash differs. */
function samePrefixOtherSecret(keyPrefix: string): string {
  const body = `${keyPrefix}_${"A".repeat(32)}`;
  return body + checksumOf(body);
}

let harness: Harness<SqliteKeyStore>;
let uses: [string, KeyUse][];
const recorder: KeyUseRecorder = { record: (id, use) => void uses.push([id, use]) };
beforeEach(async () => {
  harness = await openSqliteHarness();
  uses = [];
});
afterEach(async () => {
  await harness.close();
});

function cachedService(store: KeyStore = harness.store, options: ConstructorParameters<typeof KeyService>[0]["verificationCache"] = {}) {
  return new KeyService({ store, clock: harness.clock.now, useRecorder: recorder, verificationCache: options });
}

describe("the verification cache", () => {
  it("answers a key's second verification without reading the store, in the same shape, recording each use", async () => {
    const { store, reads } = countingReads(harness.store);
    const service = cachedService(store);
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    const first = await service.verifyApiKey(created.key, { requiredScopes: ["tools:read"], ip: "192.0.2.1" });
    const second = await service.verifyApiKey(created.key, { requiredScopes: ["tools:read"], ip: "192.0.2.2" });
    expect(first).toMatchObject({ valid: true, code: "valid", key_id: created.id });
    expect(second).toEqual(first);
    expect(reads()).toBe(1);
    expect(uses.map(([id, use]) => [id, use.ip])).toEqual([
      [created.id, "192.0.2.1"],
      [created.id, "192.0.2.2"],
    ]);
    // Required scopes are judged on every hit, and a refusal records no use.
    expect(await service.verifyApiKey(created.key, { requiredScopes: ["admin"] })).toMatchObject({ valid: false, code: "insufficient_scope", key_id: created.id });
    expect(reads()).toBe(1);
    expect(uses).toHaveLength(2);
  });

  it("reads the store every time when turned off (false or 0 entries), and on a store that cannot tell when keys changed", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    const { store, reads } = countingReads(harness.store);
    for (const verificationCache of [false, { maxEntries: 0 }] as const) {
      const service = new KeyService({ store, useRecorder: recorder, verificationCache });
      const before = reads();
      await service.verifyApiKey(created.key);
      await service.verifyApiKey(created.key);
      expect(reads() - before).toBe(2);
    }
    // The same store without keyChangeVersion: exactness first, no cache.
    const blind = countingReads(new Proxy(harness.store, { get: (target, property) => (property === "keyChangeVersion" ? undefined : Reflect.get(target, property)) }));
    const service = new KeyService({ store: blind.store, useRecorder: recorder });
    await service.verifyApiKey(created.key);
    await service.verifyApiKey(created.key);
    expect(blind.reads()).toBe(2);
  });

  it("remembers an unknown well-formed token as not_found, alike whether a row has its prefix or none has", async () => {
    const { store, reads } = countingReads(harness.store);
    const service = cachedService(store);
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    const unknown = generateToken().token;
    const forged = samePrefixOtherSecret(created.key_prefix);
    for (const token of [unknown, forged]) {
      const before = reads();
      const first = await service.verifyApiKey(token);
      const again = await service.verifyApiKey(token);
      expect(first).toEqual({ valid: false, code: "not_found", key_id: null, key_prefix: null, user_id: null, organization_id: null, project_id: null, scopes: null, expires_at: null });
      expect(again).toEqual(first);
      expect(reads() - before).toBe(1);
    }
    expect(uses).toEqual([]);
    // The real key is not shadowed by the forgery's entry.
    expect((await service.verifyApiKey(created.key)).code).toBe("valid");
  });

  it("judges expiry against the service's clock on every hit", async () => {
    const { store, reads } = countingReads(harness.store);
    const service = cachedService(store);
    const expiresAt = new Date(harness.clock.current.getTime() + 60_000).toISOString();
    const created = await harness.service.createApiKey(harness.principal, { name: "k", expires_at: expiresAt });
    expect((await service.verifyApiKey(created.key)).code).toBe("valid");
    harness.clock.advance(59_999);
    expect((await service.verifyApiKey(created.key)).code).toBe("valid");
    harness.clock.advance(1);
    expect(await service.verifyApiKey(created.key)).toMatchObject({ valid: false, code: "expired", key_id: created.id });
    expect(reads()).toBe(1);
    // Two valid uses from one origin within a minute: the first is recorded (last use to the minute).
    expect(uses).toHaveLength(1);
  });

  describe.each([
    ["the same service", (service: KeyService) => service],
    ["another service on the same store object", () => harness.service],
  ])("a change through %s is seen by the next verification", (_name, writerOf) => {
    it("revoke", async () => {
      const service = cachedService();
      const writer = writerOf(service);
      const created = await writer.createApiKey(harness.principal, { name: "k" });
      expect((await service.verifyApiKey(created.key)).code).toBe("valid");
      await writer.revokeApiKey(harness.principal, { id: created.id });
      expect(await service.verifyApiKey(created.key)).toMatchObject({ valid: false, code: "revoked" });
    });

    it("update: narrowed scopes, shortened expiry", async () => {
      const service = cachedService();
      const writer = writerOf(service);
      const created = await writer.createApiKey(harness.principal, { name: "k" });
      expect((await service.verifyApiKey(created.key, { requiredScopes: ["tools:execute"] })).code).toBe("valid");
      await writer.updateApiKey(harness.principal, { id: created.id, scopes: ["tools:read"] });
      expect(await service.verifyApiKey(created.key, { requiredScopes: ["tools:execute"] })).toMatchObject({ code: "insufficient_scope", scopes: ["tools:read"] });
      const soon = new Date(harness.clock.current.getTime() + 1000).toISOString();
      await writer.updateApiKey(harness.principal, { id: created.id, expires_at: soon });
      expect(await service.verifyApiKey(created.key)).toMatchObject({ code: "valid", expires_at: soon });
      harness.clock.advance(1000);
      expect((await service.verifyApiKey(created.key)).code).toBe("expired");
    });

    it("rotate: the old key's grace is the store's, the new key verifies", async () => {
      const service = cachedService();
      const writer = writerOf(service);
      const created = await writer.createApiKey(harness.principal, { name: "k" });
      expect((await service.verifyApiKey(created.key)).code).toBe("valid");
      const rotated = await writer.rotateApiKey(harness.principal, { id: created.id, grace_period_seconds: 0 });
      expect((await service.verifyApiKey(created.key)).code).toBe("revoked");
      expect((await service.verifyApiKey(rotated.key)).code).toBe("valid");
    });
  });

  it("sees a revocation committed through another connection to the file (PRAGMA data_version)", async () => {
    const other = SqliteKeyStore.open({ path: harness.dbPath });
    try {
      const service = cachedService();
      const writer = new KeyService({ store: other, clock: harness.clock.now });
      const created = await writer.createApiKey(harness.principal, { name: "k" });
      expect((await service.verifyApiKey(created.key)).code).toBe("valid");
      await writer.revokeApiKey(harness.principal, { id: created.id });
      expect((await service.verifyApiKey(created.key)).code).toBe("revoked");
      // A token unknown when first asked is found once the other connection creates its key.
      const later = await writer.createApiKey(harness.principal, { name: "later" });
      expect((await service.verifyApiKey(later.key)).code).toBe("valid");
    } finally {
      await other.close();
    }
  });

  it("gives verifyApiKey(store, …) the default cache, invalidated by a service's write on that store", async () => {
    const { store, reads } = countingReads(harness.store);
    // The library's service runs on the real clock: so does this writer.
    const writer = new KeyService({ store });
    const created = await writer.createApiKey(harness.principal, { name: "k" });
    expect((await verifyApiKey(store, created.key)).code).toBe("valid");
    expect((await verifyApiKey(store, created.key)).code).toBe("valid");
    expect(reads()).toBe(1);
    await writer.revokeApiKey(harness.principal, { id: created.id });
    expect((await verifyApiKey(store, created.key)).code).toBe("revoked");
  });

  it("is bounded by entries: a key enters a full cache once verified more often than the key it would evict, the oldest not hit since", async () => {
    const { store, reads } = countingReads(harness.store);
    const service = cachedService(store, { maxEntries: 3 });
    const keys = [];
    for (let i = 0; i < 4; i++) keys.push((await harness.service.createApiKey(harness.principal, { name: `k${i}` })).key);
    for (const key of keys.slice(0, 3)) await service.verifyApiKey(key);
    await service.verifyApiKey(keys[0]!); // a hit: keys[0] gets its second chance
    expect(reads()).toBe(3);
    // keys[3], verified once, does not displace keys[1], verified once too (TinyLFU's admission)...
    expect(await service.verifyApiKey(keys[3]!)).toMatchObject({ valid: true });
    expect(reads()).toBe(4);
    // ...so its second verification reads the store again; verified twice now, it evicts keys[1],
    // the oldest not hit since.
    await service.verifyApiKey(keys[3]!);
    expect(reads()).toBe(5);
    await service.verifyApiKey(keys[0]!);
    await service.verifyApiKey(keys[2]!);
    await service.verifyApiKey(keys[3]!);
    expect(reads()).toBe(5);
    await service.verifyApiKey(keys[1]!);
    expect(reads()).toBe(6);
  });
});

/** A store whose version the test moves by hand, for VerificationCache alone. */
function versionedStore(maxAgeMs?: number) {
  const state = { version: 0 as number | null };
  const store = { keyChangeVersion: () => state.version, keyChangeMaxAgeMs: maxAgeMs } as unknown as KeyStore & { keyChangeVersion(): number | null };
  return { store, state };
}

function keyRow(n: number, scopes: string[] = ["tools:read"]): VerifiableKey {
  const id = `key_${String(n).padStart(22, "0")}`;
  return {
    id,
    organization_id: "org_000000000000000000000000",
    user_id: "usr_000000000000000000000000",
    project_id: null,
    key_prefix: `kw_${String(n).padStart(12, "0")}`,
    key_hash: new Uint8Array(32),
    hash_algorithm: "sha256",
    scopes,
    expires_at: "2027-01-01T00:00:00.000Z",
    revoked_at: null,
    last_used_at: null,
    last_used_ip: null,
    last_used_user_agent: null,
  };
}

/** A cache key as the service makes them, from a SHA-256 (cacheKeyOf): uniformly random code units. */
const hashKey = (n: number) => cacheKeyOf(createHash("sha256").update(String(n)).digest());

describe("VerificationCache", () => {
  it("is bounded by estimated bytes as well as entries", () => {
    const { store } = versionedStore();
    const cache = new VerificationCache(store, { maxEntries: 1000, maxBytes: 10_000 });
    const version = cache.open()!;
    for (let n = 0; n < 1000; n++) cache.fill(version, hashKey(n), keyRow(n), 0);
    const { entries, bytes } = cache.stats();
    expect(bytes).toBeLessThanOrEqual(10_000);
    // About 500 bytes each with their strings: a 10,000-byte bound holds a handful, not 1000.
    expect(entries).toBeGreaterThan(5);
    expect(entries).toBeLessThan(40);
    expect(bytes / entries).toBeGreaterThan(300);
  });

  it("remembers last uses from at most MAX_REMEMBERED_ORIGINS addresses and user agents; past them, records every use", () => {
    const { store, state } = versionedStore();
    const cache = new VerificationCache(store);
    const version = cache.open()!;
    const entry = cache.fill(version, hashKey(1), keyRow(1), 0)!;
    // One address, MAX_REMEMBERED_ORIGINS - 1 user agents: the pool is full.
    for (let n = 0; n < MAX_REMEMBERED_ORIGINS - 1; n++) expect(cache.recordsUse(entry, 0, "10.0.0.1", `agent/${n}`)).toBe(true);
    expect(cache.recordsUse(entry, 0, "10.0.0.1", "agent/0")).toBe(true);
    expect(cache.recordsUse(entry, 0, "10.0.0.1", "agent/0")).toBe(false);
    // A user agent the pool cannot take: recorded, and not remembered.
    expect(cache.recordsUse(entry, 0, "10.0.0.1", "agent/new")).toBe(true);
    expect(cache.recordsUse(entry, 0, "10.0.0.1", "agent/new")).toBe(true);
    // A change of keys empties the pool with the entries.
    state.version = 1;
    const next = cache.fill(cache.open()!, hashKey(1), keyRow(1), 0)!;
    expect(cache.recordsUse(next, 0, "10.0.0.1", "agent/new")).toBe(true);
    expect(cache.recordsUse(next, 0, "10.0.0.1", "agent/new")).toBe(false);
  });

  it("keeps not-found entries for a short while, in a bound of their own that cannot evict a key", () => {
    const { store } = versionedStore();
    let now = 0;
    const cache = new VerificationCache(store, { maxEntries: 100 }, () => now);
    const version = cache.open()!;
    for (let n = 0; n < 100; n++) cache.fill(version, hashKey(n), keyRow(n), now);
    // A flood of unknown tokens: ten times the positive bound.
    for (let n = 1000; n < 2000; n++) cache.fill(version, hashKey(n), null, now);
    const stats = cache.stats();
    expect(stats.entries).toBe(100);
    expect(stats.negativeEntries).toBe(10);
    for (let n = 0; n < 100; n++) expect(cache.get(hashKey(n))).toMatchObject({ id: keyRow(n).id });
    expect(cache.get(hashKey(1999))).toBe(NOT_FOUND);
    now += NEGATIVE_ENTRY_TTL_MS;
    expect(cache.get(hashKey(1999))).toBe(NOT_FOUND);
    now += 1;
    expect(cache.get(hashKey(1999))).toBeUndefined();
    // Keys have no lifetime of their own on an exact store.
    now += 3_600_000;
    expect(cache.get(hashKey(1))).toMatchObject({ id: keyRow(1).id });
  });

  it("drops everything when the store's version moves, answers nothing while it is null, and keeps nothing read while it moved", () => {
    const { store, state } = versionedStore();
    const cache = new VerificationCache(store, {}, () => 0);
    let version = cache.open()!;
    cache.fill(version, hashKey(1), keyRow(1), 0);
    expect(cache.get(hashKey(1))).toBeDefined();
    state.version = 1;
    expect(cache.open()).toBe(1);
    expect(cache.get(hashKey(1))).toBeUndefined();
    // Read under version 1, but the version moved before the row came back: dropped at the next open().
    version = cache.open()!;
    state.version = 2;
    cache.fill(version, hashKey(1), keyRow(1), 0);
    expect(cache.open()).toBe(2);
    expect(cache.get(hashKey(1))).toBeUndefined();
    // And not kept at all once another verification has opened under the new version.
    cache.fill(version, hashKey(1), keyRow(1), 0);
    expect(cache.get(hashKey(1))).toBeUndefined();
    state.version = null;
    expect(cache.open()).toBeNull();
    expect(cache.stats().entries).toBe(0);
  });

  it("on a store with a max age (PostgreSQL), answers no key read longer ago than that", () => {
    const { store } = versionedStore(1000);
    let now = 0;
    const cache = new VerificationCache(store, {}, () => now);
    const version = cache.open()!;
    cache.fill(version, hashKey(1), keyRow(1), now);
    cache.fill(version, hashKey(2), null, now);
    now = 1000;
    expect(cache.get(hashKey(1))).toBeDefined();
    expect(cache.get(hashKey(2))).toBe(NOT_FOUND);
    now = 1001;
    expect(cache.get(hashKey(1))).toBeUndefined();
    expect(cache.get(hashKey(2))).toBeUndefined();
  });
});

describe("last use through the cache, to the minute", () => {
  it("records a held key's use when its last recorded one is a minute older or came from another address or user agent", async () => {
    const service = cachedService();
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    const verify = (ip: string, userAgent = "gw/1") => service.verifyApiKey(created.key, { ip, userAgent });
    const recorded = () => uses.map(([, use]) => [use.at, use.ip, use.userAgent]);
    const start = harness.clock.now().toISOString();

    await verify("10.0.0.1"); // the store read: recorded
    harness.clock.advance(59_999);
    await verify("10.0.0.1"); // the same origin within the minute: nothing
    await verify("10.0.0.2"); // another address: recorded
    await verify("10.0.0.2", "gw/2"); // another user agent: recorded
    harness.clock.advance(59_999);
    await verify("10.0.0.2", "gw/2"); // within the minute of the last recorded: nothing
    harness.clock.advance(1);
    await verify("10.0.0.2", "gw/2"); // a minute after it: recorded
    const at = (ms: number) => new Date(Date.parse(start) + ms).toISOString();
    expect(recorded()).toEqual([
      [at(0), "10.0.0.1", "gw/1"],
      [at(59_999), "10.0.0.2", "gw/1"],
      [at(59_999), "10.0.0.2", "gw/2"],
      [at(119_999), "10.0.0.2", "gw/2"],
    ]);
  });

  it("records every use with lastUseResolutionMs 0, and after the key left the cache", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    const everyUse = cachedService(harness.store, { lastUseResolutionMs: 0 });
    await everyUse.verifyApiKey(created.key, { ip: "10.0.0.1" });
    await everyUse.verifyApiKey(created.key, { ip: "10.0.0.1" });
    expect(uses).toHaveLength(2);

    const service = cachedService();
    await service.verifyApiKey(created.key, { ip: "10.0.0.1" });
    await service.verifyApiKey(created.key, { ip: "10.0.0.1" });
    expect(uses).toHaveLength(3);
    // A change of any key empties the cache: the next use is read from the store and recorded.
    await harness.service.createApiKey(harness.principal, { name: "another" });
    await service.verifyApiKey(created.key, { ip: "10.0.0.1" });
    expect(uses).toHaveLength(4);
  });

  it("judges a key read from the store by the last use stored with it, held or not", async () => {
    const created = await harness.service.createApiKey(harness.principal, { name: "k" });
    const start = harness.clock.now();
    await harness.store.recordKeyUse(created.id, { at: start.toISOString(), ip: "10.0.0.1", userAgent: "gw/1" });
    harness.clock.advance(30_000);
    const verify = (service: KeyService, ip: string) => service.verifyApiKey(created.key, { ip, userAgent: "gw/1" });

    // Held: the entry starts from the stored use.
    const service = cachedService();
    await verify(service, "10.0.0.1");
    expect(uses).toHaveLength(0);
    await verify(service, "10.0.0.2");
    expect(uses.map(([, use]) => use.ip)).toEqual(["10.0.0.2"]);

    // Not held (a full cache of one, whose key is verified as often): judged by the row each time.
    const other = await harness.service.createApiKey(harness.principal, { name: "other" });
    const full = cachedService(harness.store, { maxEntries: 1 });
    await full.verifyApiKey(other.key);
    uses = [];
    await verify(full, "10.0.0.1");
    expect(uses).toHaveLength(0);
    harness.clock.advance(30_000); // a minute after the stored use
    await verify(full, "10.0.0.1");
    expect(uses.map(([id, use]) => [id, use.at])).toEqual([[created.id, new Date(start.getTime() + 60_000).toISOString()]]);
  });
});

