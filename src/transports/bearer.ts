import type { Principal } from "../service/principal.js";
import type { KeyService } from "../service/service.js";
import type { RequestOrigin } from "../service/types.js";
import type { FailedAuthLimiter } from "./auth-limiter.js";

// The one credential check of the HTTP transport, used by the Express /mcp and /v1/keys/verify
// routes and by the bare node:http verify fast path alike: the key is judged by the store alone
// (KeyService.authenticateKey, whose clock decides expiry), and every failure gets the same answer.

/** The protection space named in every challenge (RFC 7235 section 2.2). */
export const AUTH_REALM = "keywarden";

/**
 * The one description every failed authentication gets, whatever failed: a caller cannot tell a
 * typo from a revoked key. The audit log keeps the real reason.
 */
export const INVALID_TOKEN_DESCRIPTION = "The bearer token is malformed, unknown, revoked or expired";

/** What a request without any credential is told: what to send (keywarden takes API keys, not OAuth). */
export const MISSING_TOKEN_DESCRIPTION = "This endpoint needs a keywarden API key, sent as Authorization: Bearer kw_…; keywarden does not use OAuth";

/** A refused request, as both the Express routes and the fast path write it. */
export interface CredentialRefusal {
  status: number;
  code: string;
  message: string;
  headers: Record<string, string>;
  /** The exact body on every path; absent: the path's usual error envelope (see http.ts refusalBody). */
  body?: unknown;
}

export type CredentialOutcome = { ok: true; principal: Principal; expiresAt: string | null } | { ok: false; refusal: CredentialRefusal };

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

/**
 * The 401, written once here. With a credential that failed: `error="invalid_token"` (RFC 6750
 * section 3.1), the same header and body whatever failed. With none at all: a bare challenge with
 * no error code, as section 3.1 asks for a request that lacks authentication information.
 */
export function unauthorizedRefusal(presented: boolean): CredentialRefusal {
  if (!presented) {
    return {
      status: 401,
      code: "unauthorized",
      message: MISSING_TOKEN_DESCRIPTION,
      headers: { "WWW-Authenticate": `Bearer realm="${AUTH_REALM}"` },
      body: { error: "unauthorized", error_description: MISSING_TOKEN_DESCRIPTION },
    };
  }
  return {
    status: 401,
    code: "invalid_token",
    message: INVALID_TOKEN_DESCRIPTION,
    headers: { "WWW-Authenticate": `Bearer realm="${AUTH_REALM}", error="invalid_token", error_description="${INVALID_TOKEN_DESCRIPTION}"` },
    body: { error: "invalid_token", error_description: INVALID_TOKEN_DESCRIPTION },
  };
}

/** The answer to a failed credential from an address over its limit (see FailedAuthLimiter). */
export function rateLimitedRefusal(retryAfterSeconds: number): CredentialRefusal {
  return {
    status: 429,
    code: "rate_limited",
    message: `too many failed authentication attempts from this address; retry in ${retryAfterSeconds} s`,
    headers: { "Retry-After": String(retryAfterSeconds) },
  };
}

/** The store could not be asked: nothing is known about the key. */
const UNAVAILABLE: CredentialRefusal = {
  status: 500,
  code: "server_error",
  message: "Internal Server Error",
  headers: {},
  body: { error: "server_error", error_description: "Internal Server Error" },
};

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
      return { ok: false, refusal: UNAVAILABLE };
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
