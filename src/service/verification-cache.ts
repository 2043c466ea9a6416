// The verification cache (README, "Verification cache"): what a verification read of a key, by the
// token's hash (never the token), so that a hit costs a hash and a Map lookup, not a store read.
// Never staler than the store: entries hold only while the store's keyChangeVersion holds still
// (src/store/types.ts). Status (keyStatusAt against the clock), scopes and last use are judged on
// every hit by verification.ts, exactly as on a miss: the cache holds rows, never answers.
import type { KeyStore, VerifiableKey } from "../store/types.js";
import { BoundedMap, type Held } from "./clock-map.js";
import { FrequencySketch } from "./frequency-sketch.js";

export interface VerificationCacheOptions {
  /** Keys held at most (`--verify-cache-entries`); 0 turns the cache off. */
  maxEntries?: number;
  /** Estimated bytes held at most (`--verify-cache-bytes`). */
  maxBytes?: number;
  /**
   * Last use of a key held here is kept to this resolution (README, "Verification cache"): a use
   * is recorded when the last one recorded through this cache for the key is at least this much
   * older, or came from another address or user agent; 0 records every use.
   */
  lastUseResolutionMs?: number;
}

export const DEFAULT_LAST_USE_RESOLUTION_MS = 60_000;

export const DEFAULT_VERIFY_CACHE_ENTRIES = 100_000;
export const DEFAULT_VERIFY_CACHE_BYTES = 48 * 1024 * 1024;
/** V8's Map holds at most 2^24 entries. */
export const MAX_VERIFY_CACHE_ENTRIES = 16_777_216;
/** How long a "no such key" is remembered: short, as it is only there to absorb repeats of one bad token. */
export const NEGATIVE_ENTRY_TTL_MS = 2000;
/**
 * Negative entries have their own bound, this share of the positive one: a flood of random
 * well-formed tokens evicts only other negative entries, never a working key.
 */
const NEGATIVE_SHARE = 10;

/**
 * What a hit answers from: a VerifiableKey without its hash (the cache's key is the hash), without
 * its prefix (the token names it: the row was found by it), and with its last use kept its own way
 * (CachedEntry.useUntilMs).
 */
export type CachedKey = Omit<VerifiableKey, "key_hash" | "hash_algorithm" | "key_prefix" | "last_used_at" | "last_used_ip" | "last_used_user_agent">;

/** A remembered "no key with this hash" (no row, or a row whose hash differs: the same entry). */
export const NOT_FOUND = Symbol("not found");

/**
 * The cache's key: a 32-byte hash as 16 UTF-16 code units, two bytes each (29 ns, against 91 for a
 * Buffer's latin1 string and more for hex; fewer characters for the Map to hash, too).
 */
export function cacheKeyOf(h: Uint8Array): string {
  if (h.length !== 32) throw new RangeError(`a verification cache key is a 32-byte hash, got ${h.length} bytes`);
  return String.fromCharCode(
    (h[0]! << 8) | h[1]!, (h[2]! << 8) | h[3]!, (h[4]! << 8) | h[5]!, (h[6]! << 8) | h[7]!,
    (h[8]! << 8) | h[9]!, (h[10]! << 8) | h[11]!, (h[12]! << 8) | h[13]!, (h[14]! << 8) | h[15]!,
    (h[16]! << 8) | h[17]!, (h[18]! << 8) | h[19]!, (h[20]! << 8) | h[21]!, (h[22]! << 8) | h[23]!,
    (h[24]! << 8) | h[25]!, (h[26]! << 8) | h[27]!, (h[28]! << 8) | h[29]!, (h[30]! << 8) | h[31]!,
  );
}

/** A positive entry: the fields a verification reads, and Held's. One shape for all, so V8 keeps its accesses monomorphic. */
export class CachedEntry implements CachedKey, Held {
  used = false;
  slot = -1;
  /** The last use recorded through this entry: until when (epoch ms) a use from the same origin adds nothing; -1: none yet. */
  useUntilMs = -1;
  useIp: string | null = null;
  useUserAgent: string | null = null;
  constructor(
    readonly id: string,
    readonly organization_id: string,
    readonly user_id: string,
    readonly project_id: string | null,
    readonly scopes: string[],
    readonly expires_at: string | null,
    readonly revoked_at: string | null,
    readonly bytes: number,
    readonly at: number,
  ) {}
}

class NotFoundEntry implements Held {
  used = false;
  slot = -1;
  constructor(
    readonly bytes: number,
    readonly at: number,
  ) {}
}

/**
 * Bytes an entry keeps alive on a 64-bit V8, estimated from its parts: a one-byte string is a
 * 16-byte header plus its characters, rounded up to 8 (ids and instants are ASCII); the Map's
 * entry with its share of a table that grows by doubling, its slot, the entry object, its times, about 215
 * (calibrate with bench/verify-memory.mjs). Organization, user and project ids are interned: keys
 * share them, so they are counted once, when first held, and the pool has its own bound.
 */
const ENTRY_OVERHEAD = 215;
const NEGATIVE_OVERHEAD = 125;
/**
 * Distinct client addresses and user agents the entries remember last uses from, at most: with
 * user agents capped at 256 characters, about 2 MiB.
 */
export const MAX_REMEMBERED_ORIGINS = 4096;
/** Distinct organization, user and project ids held for sharing at most; then the pool starts again. */
const INTERNED_IDS_MAX = 65_536;

/** A cacheKeyOf string: a header and 16 two-byte characters. */
const CACHE_KEY_BYTES = 16 + 32;

function stringBytes(text: string | null): number {
  return text === null ? 0 : 16 + ((text.length + 7) & ~7);
}

type VersionedStore = KeyStore & { keyChangeVersion(): number | null };

/** Whether this store can tell a cache when keys changed (KeyStore.keyChangeVersion); without it, no cache. */
export function canCacheVerification(store: KeyStore): store is VersionedStore {
  return typeof store.keyChangeVersion === "function";
}

export class VerificationCache {
  private readonly positive: BoundedMap<CachedEntry>;
  private readonly negative: BoundedMap<NotFoundEntry>;
  /** The store's version the entries were read under; null: nothing is held. */
  private version: number | null = null;
  private readonly maxAgeMs: number;
  private readonly negativeTtlMs: number;
  /** One string per distinct organization, user and project id, shared by the entries that name it. */
  private readonly ids = new Map<string, string>();
  /** The client addresses and user agents entries hold for last use (noteUse); emptied with the entries. */
  private readonly origins = new Map<string, string>();
  private readonly lastUseResolutionMs: number;

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
    // A key read from the store enters a full cache only if verified more often lately than the
    // key it would evict: keys used once in a while pass through without evicting keys used all
    // the time (TinyLFU; at 1M keys drawn Zipf(1), bench/verify-1m.mjs).
    this.positive = new BoundedMap(maxEntries, maxBytes, new FrequencySketch(maxEntries));
    this.negative = new BoundedMap(Math.max(1, Math.floor(maxEntries / NEGATIVE_SHARE)), Math.max(1, Math.floor(maxBytes / NEGATIVE_SHARE)));
    this.lastUseResolutionMs = Math.max(0, options.lastUseResolutionMs ?? DEFAULT_LAST_USE_RESOLUTION_MS);
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
      this.origins.clear();
      this.version = version;
    }
    return version;
  }

  /** The key read under the current version, NOT_FOUND, or undefined (read the store). Call open() first. */
  get(cacheKey: string): CachedEntry | typeof NOT_FOUND | undefined {
    const entry = this.positive.get(cacheKey);
    if (entry !== undefined) {
      if (this.maxAgeMs === Number.POSITIVE_INFINITY || this.monotonicNow() - entry.at <= this.maxAgeMs) return entry;
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
  fill(version: number, cacheKey: string, key: VerifiableKey | null, at: number): CachedEntry | null {
    if (this.version !== version) return null;
    if (key === null) {
      this.negative.set(cacheKey, new NotFoundEntry(NEGATIVE_OVERHEAD + CACHE_KEY_BYTES, at));
      return null;
    }
    let bytes = ENTRY_OVERHEAD + CACHE_KEY_BYTES + stringBytes(key.id) + stringBytes(key.expires_at) + stringBytes(key.revoked_at);
    const intern = (id: string): string => {
      const known = this.ids.get(id);
      if (known !== undefined) return known;
      if (this.ids.size >= INTERNED_IDS_MAX) this.ids.clear();
      this.ids.set(id, id);
      bytes += stringBytes(id);
      return id;
    };
    // Only the fields a verification reads, in an entry of its own: not the hash, not the store's row.
    const entry = new CachedEntry(
      key.id,
      intern(key.organization_id),
      intern(key.user_id),
      key.project_id === null ? null : intern(key.project_id),
      // Scope lists are shared between rows by the store (sqlite-rows.ts); counted whole all the same.
      key.scopes,
      key.expires_at,
      key.revoked_at,
      bytes + 16 + 8 * key.scopes.length + key.scopes.reduce((sum, scope) => sum + stringBytes(scope), 0),
      at,
    );
    // The store's last use stands for one recorded through the entry (recordsUse).
    this.noteUse(entry, this.lastUseUntilMs(key), key.last_used_ip, key.last_used_user_agent);
    this.negative.delete(cacheKey);
    return this.positive.set(cacheKey, entry) ? entry : null;
  }

  /**
   * Whether a valid use at `atMs` of a key this cache holds is to be recorded, noting it when it
   * is: not when the last use recorded, through the entry or in the store when it was read, is
   * less than the resolution older and came from the same address and user agent. Kept on the
   * entry, which a hit has just read: a Map of its own cost a random memory access per
   * verification (about 1 µs with 100,000 keys, bench/verify-inprocess.mjs).
   */
  recordsUse(entry: CachedEntry, atMs: number, ip: string | null, userAgent: string | null): boolean {
    if (!this.isNewUse(entry.useUntilMs, entry.useIp, entry.useUserAgent, atMs, ip, userAgent)) return false;
    this.noteUse(entry, atMs + this.lastUseResolutionMs, ip, userAgent);
    return true;
  }

  /**
   * Keeps on the entry the last use recorded, its address and user agent as pooled strings: an
   * entry's estimated bytes leave them out, so a string each (a user agent up to 256 characters)
   * would have let 100,000 entries outgrow the bound by tens of MiB. Past the pool's bound the
   * entry remembers no use, and the next is recorded.
   */
  private noteUse(entry: CachedEntry, untilMs: number, ip: string | null, userAgent: string | null): void {
    const pooledIp = this.pooled(ip);
    const pooledUserAgent = this.pooled(userAgent);
    const remembered = pooledIp !== undefined && pooledUserAgent !== undefined;
    entry.useUntilMs = remembered ? untilMs : -1;
    entry.useIp = remembered ? pooledIp : null;
    entry.useUserAgent = remembered ? pooledUserAgent : null;
  }

  /** One string per distinct address or user agent; undefined once the pool holds MAX_REMEMBERED_ORIGINS. */
  private pooled(text: string | null): string | null | undefined {
    if (text === null) return null;
    const known = this.origins.get(text);
    if (known !== undefined) return known;
    if (this.origins.size >= MAX_REMEMBERED_ORIGINS) return undefined;
    this.origins.set(text, text);
    return text;
  }

  /**
   * The same for a key read from the store that the cache did not keep (not admitted): judged by
   * the last use the store holds. A key used now and then, by a gateway verifying many more keys
   * than the cache holds, is then written once a minute, not at each use (bench/verify-1m.mjs).
   */
  recordsUseOf(key: VerifiableKey, atMs: number, ip: string | null, userAgent: string | null): boolean {
    return this.isNewUse(this.lastUseUntilMs(key), key.last_used_ip, key.last_used_user_agent, atMs, ip, userAgent);
  }

  /** Until when (epoch ms) the store's last use of `key` makes another from its origin add nothing; -1: never used. */
  private lastUseUntilMs(key: VerifiableKey): number {
    return key.last_used_at === null ? -1 : Date.parse(key.last_used_at) + this.lastUseResolutionMs;
  }

  private isNewUse(untilMs: number, lastIp: string | null, lastUserAgent: string | null, atMs: number, ip: string | null, userAgent: string | null): boolean {
    return this.lastUseResolutionMs === 0 || atMs >= untilMs || ip !== lastIp || userAgent !== lastUserAgent;
  }
}
