// Verification (README, "The key itself"): parse and checksum (no I/O), look up by key_prefix,
// compare hashes in constant time, revoked, expired, required scopes, then record the use. The
// library entry point verifyApiKey (verify.ts) and the tools call this through KeyService. The
// verification cache (verification-cache.ts) replaces only the lookup and the compare.
import { hashesEqual } from "../keys/hash.js";
import { parseToken } from "../keys/token.js";
import { keyStatusAt, toInstant } from "../store/instants.js";
import type { KeyUse, VerifiableKey } from "../store/types.js";
import type { ServiceContext } from "./context.js";
import { validationError, type FieldError } from "./errors.js";
import type { VerifyCode, VerifyOptions, VerifyResult } from "./types.js";
import { capUserAgent, checkRequiredScopes } from "./validation.js";
import { cacheKeyOf, NOT_FOUND, type CachedEntry, type CachedKey, type VerificationCache } from "./verification-cache.js";

const UNKNOWN_KEY: Omit<VerifyResult, "valid" | "code"> = {
  key_id: null,
  key_prefix: null,
  user_id: null,
  organization_id: null,
  project_id: null,
  scopes: null,
  expires_at: null,
};

/** Compared against when no row matches, so a miss costs about what a hit costs. */
const DUMMY_HASH = new Uint8Array(32);
const NO_SCOPES: readonly string[] = Object.freeze([]);

/** Records a valid key's use; returns nothing once the use is queued (see KeyUseRecorder). */
export type RecordUse = (keyId: string, use: KeyUse) => Promise<void> | void;

/** Every outcome has the same shape; only a caller error (bad requiredScopes) throws. Never echoes the token. */
export async function verifyToken(
  ctx: ServiceContext,
  recordUse: RecordUse,
  token: string,
  options: VerifyOptions = {},
  cache: VerificationCache | null = null,
): Promise<VerifyResult> {
  let required: readonly string[] = NO_SCOPES;
  if (options.requiredScopes !== undefined) {
    // Named as the library's option; the tool and the HTTP endpoint rename it to their
    // `required_scopes` (tools/verify_api_key.ts verifyForSnakeCaseCaller).
    const errors: FieldError[] = [];
    required = checkRequiredScopes("requiredScopes", options.requiredScopes, errors);
    if (errors.length > 0) throw validationError(errors);
  }

  const parsed = parseToken(token, ctx.config.keyBrand);
  if (!parsed) return { valid: false, code: "malformed", ...UNKNOWN_KEY };

  // Hashed once, with the algorithm new keys get: the cache's key, and the compare's below when
  // the row uses it too (every row but those made before a pepper was set).
  const hash = ctx.hasher.hash(token);
  const version = cache === null ? null : cache.open();
  let cacheKey = "";
  let readAt = 0;
  if (version !== null) {
    cacheKey = cacheKeyOf(hash);
    const cached = cache!.get(cacheKey);
    if (cached === NOT_FOUND) return { valid: false, code: "not_found", ...UNKNOWN_KEY };
    if (cached !== undefined) return answer(ctx, recordUse, cached, parsed.keyPrefix, required, options, cache, cached, null);
    readAt = cache!.now();
  }

  const found = await ctx.store.findKeyForVerification(parsed.keyPrefix);
  // A row whose hash cannot be computed here (its pepper is not set, or its algorithm is newer
  // than this build) cannot be matched: it fails like an unknown key, after the same work.
  const row = found !== null && ctx.hasher.canHash(found.hash_algorithm) ? found : null;
  const rowHash = row === null || row.hash_algorithm === ctx.hasher.algorithm ? hash : ctx.hasher.hash(token, row.hash_algorithm);
  const matches = hashesEqual(rowHash, row?.key_hash ?? DUMMY_HASH);
  if (!row || !matches) {
    // No row and a row whose hash differs are remembered alike: the cache shows no one which it was.
    if (version !== null) cache!.fill(version, cacheKey, null, readAt);
    return { valid: false, code: "not_found", ...UNKNOWN_KEY };
  }
  const held = version === null ? null : cache!.fill(version, cacheKey, row, readAt);
  return answer(ctx, recordUse, row, parsed.keyPrefix, required, options, cache, held, row);
}

/**
 * Status at the service's clock, required scopes, last use: the same on a hit as after a store
 * read. Synchronous unless the recorder writes at once: a hit then resolves verifyToken's own
 * promise, with no other promise in between.
 */
function answer(
  ctx: ServiceContext,
  recordUse: RecordUse,
  row: CachedKey,
  keyPrefix: string,
  required: readonly string[],
  options: VerifyOptions,
  cache: VerificationCache | null,
  held: CachedEntry | null,
  read: VerifiableKey | null,
): VerifyResult | Promise<VerifyResult> {
  const nowMs = ctx.clock().getTime();
  const now = toInstant(nowMs);
  const status = keyStatusAt(row, now);
  // Exact names: `admin` implies nothing to the operator's own services (VerifyOptions).
  const code: VerifyCode = status !== "active" ? status : required.every((scope) => row.scopes.includes(scope)) ? "valid" : "insufficient_scope";
  const ip = options.ip ?? null;
  // Capped before it is compared with the stored one, which was capped as it was recorded.
  const userAgent = capUserAgent(options.userAgent ?? null);
  // Last use to the cache's resolution (judged by the entry, or by the store's row of a key not
  // kept); every use with the cache off.
  if (code === "valid" && (cache === null || (held !== null ? cache.recordsUse(held, nowMs, ip, userAgent) : cache.recordsUseOf(read!, nowMs, ip, userAgent)))) {
    const queued = recordUse(row.id, { at: now, ip, userAgent });
    if (queued !== undefined) return queued.then(() => result(row, keyPrefix, code));
  }
  return result(row, keyPrefix, code);
}

/** The row was found by the token's prefix (or cached under the token's hash): the prefix is the token's. */
function result(row: CachedKey, keyPrefix: string, code: VerifyCode): VerifyResult {
  return {
    valid: code === "valid",
    code,
    key_id: row.id,
    key_prefix: keyPrefix,
    user_id: row.user_id,
    organization_id: row.organization_id,
    project_id: row.project_id,
    scopes: [...row.scopes],
    expires_at: row.expires_at,
  };
}
