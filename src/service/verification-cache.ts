// The verification cache (README, "Verification cache"): what a verification read of a key, by the
// token's hash (never the token), so that a hit costs a hash and a Map lookup, not a store read.
// Never staler than the store: entries hold only while the store's keyChangeVersion holds still
// (src/store/types.ts). Status (keyStatusAt against the clock), scopes and last use are judged on
// every hit by verification.ts, exactly as on a miss: the cache holds rows, never answers.
import type { KeyStore, VerifiableKey } from "../store/types.js";

export interface VerificationCacheOptions {
  /** Keys held at most (`--verify-cache-entries`); 0 turns the cache off. */
  maxEntries?: number;
  /** Estimated bytes held at most (`--verify-cache-bytes`). */
  maxBytes?: number;
}

export const DEFAULT_VERIFY_CACHE_ENTRIES = 100_000;
export const DEFAULT_VERIFY_CACHE_BYTES = 32 * 1024 * 1024;
/** V8's Map holds at most 2^24 entries. */
export const MAX_VERIFY_CACHE_ENTRIES = 16_777_216;
/** How long a "no such key" is remembered: short, as it is only there to absorb repeats of one bad token. */
export const NEGATIVE_ENTRY_TTL_MS = 2000;
/**
 * Negative entries have their own bound, this share of the positive one: a flood of random
 * well-formed tokens evicts only other negative entries, never a working key.
 */
const NEGATIVE_SHARE = 10;

/** What a hit answers from: a VerifiableKey without its hash (the cache's key is the hash). */
export type CachedKey = Omit<VerifiableKey, "key_hash" | "hash_algorithm">;

/** A remembered "no key with this hash" (no row, or a row whose hash differs: the same entry). */
export const NOT_FOUND = Symbol("not found");

/** The cache's key: the hash's 32 bytes as a 32-character string (cheaper to build and compare than hex). */
export function cacheKeyOf(hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("latin1");
}

interface Slot<V> {
  value: V;
  bytes: number;
  /** When it was read from the store (the monotonic clock), for max age and the negative lifetime. */
  at: number;
  /** Hit since eviction last passed it over (second chance). */
  used: boolean;
}

/**
 * A Map bounded by entries and estimated bytes, evicting in insertion order with a second chance
 * for entries hit since (CLOCK, an approximation of least recently used): a hit only sets a flag,
 * where lru-cache relinks its list (a lookup of 100,000 keys measured 110 ns here, 168 ns there).
 */
class BoundedMap<V> {
  private readonly slots = new Map<string, Slot<V>>();
  private totalBytes = 0;

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.slots.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get(key: string): Slot<V> | undefined {
    const slot = this.slots.get(key);
    if (slot !== undefined) slot.used = true;
    return slot;
  }

  delete(key: string): void {
    const slot = this.slots.get(key);
    if (slot === undefined) return;
    this.slots.delete(key);
    this.totalBytes -= slot.bytes;
  }

  set(key: string, value: V, bytes: number, at: number): void {
    if (this.maxEntries < 1 || bytes > this.maxBytes) return;
    this.delete(key);
    this.slots.set(key, { value, bytes, at, used: false });
    this.totalBytes += bytes;
    // Each entry moves to the back at most once per hit, so eviction is amortised O(1).
    while (this.slots.size > this.maxEntries || this.totalBytes > this.maxBytes) {
      const [oldestKey, oldest] = this.slots.entries().next().value as [string, Slot<V>];
      this.slots.delete(oldestKey);
      if (oldest.used && oldestKey !== key) {
        oldest.used = false;
        this.slots.set(oldestKey, oldest);
      } else {
        this.totalBytes -= oldest.bytes;
      }
    }
  }

  clear(): void {
    this.slots.clear();
    this.totalBytes = 0;
  }
}

/**
 * Bytes an entry keeps alive on a 64-bit V8, estimated from its parts: a one-byte string is a
 * 16-byte header plus its characters, rounded up to 8 (ids, prefixes and instants are ASCII); the
 * Map's entry with its share of a table that grows by doubling, the slot and the row object
 * together about 290 (measured: 100,000 typical keys add 586 bytes each to the heap, where this
 * estimates 676 with their scope list counted whole, which SqliteKeyStore shares between keys).
 * So the default 32 MiB holds about 50,000 such keys: the bytes bound binds before the entries'.
 */
const ENTRY_OVERHEAD = 290;
const NEGATIVE_OVERHEAD = 140;

function stringBytes(text: string | null): number {
  return text === null ? 0 : 16 + ((text.length + 7) & ~7);
}

function keyBytes(cacheKey: string, key: CachedKey): number {
  let scopes = 16 + 8 * key.scopes.length;
  for (const scope of key.scopes) scopes += stringBytes(scope);
  return (
    ENTRY_OVERHEAD +
    stringBytes(cacheKey) +
    stringBytes(key.id) +
    stringBytes(key.organization_id) +
    stringBytes(key.user_id) +
    stringBytes(key.project_id) +
    stringBytes(key.key_prefix) +
    stringBytes(key.expires_at) +
    stringBytes(key.revoked_at) +
    scopes
  );
}

type VersionedStore = KeyStore & { keyChangeVersion(): number | null };

/** Whether this store can tell a cache when keys changed (KeyStore.keyChangeVersion); without it, no cache. */
export function canCacheVerification(store: KeyStore): store is VersionedStore {
  return typeof store.keyChangeVersion === "function";
}

export class VerificationCache {
  private readonly positive: BoundedMap<CachedKey>;
  private readonly negative: BoundedMap<true>;
  /** The store's version the entries were read under; null: nothing is held. */
  private version: number | null = null;
  private readonly maxAgeMs: number;
  private readonly negativeTtlMs: number;

  constructor(
    private readonly store: VersionedStore,
    options: VerificationCacheOptions = {},
    /** A monotonic clock in ms (tests pass their own): ages, never a key's expiry (that is the service's clock). */
    private readonly monotonicNow: () => number = () => performance.now(),
  ) {
    const maxEntries = options.maxEntries ?? DEFAULT_VERIFY_CACHE_ENTRIES;
    const maxBytes = options.maxBytes ?? DEFAULT_VERIFY_CACHE_BYTES;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 0 || maxEntries > MAX_VERIFY_CACHE_ENTRIES) {
      throw new RangeError(`verificationCache.maxEntries must be an integer from 0 to ${MAX_VERIFY_CACHE_ENTRIES}, got ${maxEntries}`);
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError(`verificationCache.maxBytes must be a positive integer, got ${maxBytes}`);
    this.positive = new BoundedMap(maxEntries, maxBytes);
    this.negative = new BoundedMap(Math.max(1, Math.floor(maxEntries / NEGATIVE_SHARE)), Math.max(1, Math.floor(maxBytes / NEGATIVE_SHARE)));
    this.maxAgeMs = store.keyChangeMaxAgeMs ?? Number.POSITIVE_INFINITY;
    this.negativeTtlMs = Math.min(NEGATIVE_ENTRY_TTL_MS, this.maxAgeMs);
  }

  /** The monotonic clock: read before a store read, and passed to fill as when the row was read. */
  now(): number {
    return this.monotonicNow();
  }

  /** Held entries and their estimated bytes, positive and negative. */
  stats(): { entries: number; bytes: number; negativeEntries: number; negativeBytes: number } {
    return { entries: this.positive.size, bytes: this.positive.bytes, negativeEntries: this.negative.size, negativeBytes: this.negative.bytes };
  }

  /**
   * The store's version now, first dropping every entry read under another; null: the store cannot
   * tell now (a PostgreSQL listener that is not up), so neither get nor fill may be used.
   */
  open(): number | null {
    const version = this.store.keyChangeVersion();
    if (version !== this.version) {
      this.positive.clear();
      this.negative.clear();
      this.version = version;
    }
    return version;
  }

  /** The key read under the current version, NOT_FOUND, or undefined (read the store). Call open() first. */
  get(cacheKey: string): CachedKey | typeof NOT_FOUND | undefined {
    const slot = this.positive.get(cacheKey);
    if (slot !== undefined) {
      if (this.maxAgeMs === Number.POSITIVE_INFINITY || this.monotonicNow() - slot.at <= this.maxAgeMs) return slot.value;
      this.positive.delete(cacheKey);
      return undefined;
    }
    const miss = this.negative.get(cacheKey);
    if (miss === undefined) return undefined;
    if (this.monotonicNow() - miss.at <= this.negativeTtlMs) return NOT_FOUND;
    this.negative.delete(cacheKey);
    return undefined;
  }

  /**
   * Keeps what the store answered under `version` (open()'s), or that it has no such key (null),
   * unless another verification's open() saw the version move meanwhile. A change the store
   * reports only after this read (a notification on its way) needs no second look here: it moves
   * the version, so the next open() drops this entry with the rest before anything is answered.
   */
  fill(version: number, cacheKey: string, key: VerifiableKey | null, at: number): void {
    if (this.version !== version) return;
    if (key === null) {
      this.negative.set(cacheKey, true, NEGATIVE_OVERHEAD + stringBytes(cacheKey), at);
      return;
    }
    // Only the fields a verification reads, in a fresh object: not the hash, not the store's row.
    const cached: CachedKey = {
      id: key.id,
      organization_id: key.organization_id,
      user_id: key.user_id,
      project_id: key.project_id,
      key_prefix: key.key_prefix,
      scopes: key.scopes,
      expires_at: key.expires_at,
      revoked_at: key.revoked_at,
    };
    this.negative.delete(cacheKey);
    this.positive.set(cacheKey, cached, keyBytes(cacheKey, cached), at);
  }
}
