import type { Principal } from "../../service/principal.js";
import type { KeyService } from "../../service/service.js";
import type { RequestOrigin } from "../../service/types.js";
import { AUTHENTICATION_UNAVAILABLE, rateLimitedRefusal, unauthorizedRefusal, type Refusal } from "./answers.js";
import type { FailedAuthLimiter } from "./rate-limit.js";

// The credentials guard and the rate limit on failures, run by both adapters (pipeline.ts): the key
// is judged by the store alone (KeyService.authenticateKey, whose clock decides expiry), and every
// failure gets the same answer (answers.ts).

export type CredentialOutcome = { ok: true; principal: Principal; expiresAt: string | null } | { ok: false; refusal: Refusal };

/**
 * The key a request presents: the Bearer credential, or `?admin_key=` when allowed; null when it
 * presents none at all. Anything else in the Authorization header is a credential that fails ("")
 * and never falls back to the query.
 */
export function presentedCredential(authorization: string | undefined, queryKey: unknown, allowQueryKey: boolean): string | null {
  if (authorization !== undefined) return /^Bearer +(\S+) *$/i.exec(authorization)?.[1] ?? "";
  if (allowQueryKey && queryKey !== undefined) return typeof queryKey === "string" ? queryKey : "";
  return null;
}

export interface CredentialLogger {
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
  error(object: Record<string, unknown>, message: string): void;
}

export type CredentialCheck = (credential: string | null, origin: RequestOrigin, path: string) => Promise<CredentialOutcome>;

/**
 * Checks a presented credential. A valid key is always let through, whatever other requests from
 * its address did: the limiter only decides how a failure is answered (README, Authentication).
 * Below the limit a failure gets the 401, a log line and an `auth.failed` record (queued by the
 * service's failure recorder, never awaited); over it, a 429 and a counter increment, nothing more.
 */
export function createCredentialCheck({ service, limiter, logger }: { service: KeyService; limiter: FailedAuthLimiter; logger: CredentialLogger }): CredentialCheck {
  const note = (what: string, write: () => Promise<void> | void) => {
    try {
      void Promise.resolve(write()).catch((error: unknown) => logger.error({ err: error }, `could not write ${what} to the audit log`));
    } catch (error) {
      logger.error({ err: error }, `could not write ${what} to the audit log`);
    }
  };
  return async (credential, origin, path) => {
    let result;
    try {
      result = await service.authenticateKey(credential, origin);
    } catch (error) {
      logger.error({ err: error, path }, "authentication could not be completed");
      return { ok: false, refusal: AUTHENTICATION_UNAVAILABLE };
    }
    if (result.ok) return result;
    const address = origin.clientAddress ?? "unknown";
    const retryAfter = limiter.retryAfterSeconds(address);
    if (retryAfter > 0) {
      note("auth.failed", () => service.countAuthenticationFailure(origin));
      return { ok: false, refusal: rateLimitedRefusal(retryAfter) };
    }
    const failures = limiter.recordFailure(address);
    logger.info({ reason: result.reason, key_prefix: result.keyPrefix, ip: origin.clientAddress, path, failures }, "authentication failed");
    if (failures === limiter.limitPerWindow) {
      logger.warn({ ip: origin.clientAddress, failures }, "too many failed authentications: further failures from this address get 429 until its window ends");
    }
    note("auth.failed", () => service.recordAuthenticationFailure(result, origin, { path, failures_in_window: failures }));
    return { ok: false, refusal: unauthorizedRefusal(credential !== null) };
  };
}
