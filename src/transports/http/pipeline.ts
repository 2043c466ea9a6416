import type { Principal } from "../../service/principal.js";
import type { KeyService } from "../../service/service.js";
import type { RequestOrigin } from "../../service/types.js";
import type { Refusal } from "./answers.js";
import { createCredentialCheck, presentedCredential, type CredentialLogger, type CredentialOutcome } from "./credentials.js";
import { headerCountGuard, originGuard, scopeGuard, targetAndHostGuard, type RequestFacts } from "./guards.js";
import { FailedAuthLimiter } from "./rate-limit.js";

// The guards in the order every request meets them, composed once per server and run by both
// adapters: screen (headers, target and Host, Origin), then authenticate (credentials, rate
// limit, or --no-auth), then authorize (scope). CORS and methods sit between screen and
// authenticate in the Express app; the fast path takes only requests for which they change nothing.

export interface PipelineOptions {
  service: KeyService;
  logger: CredentialLogger;
  allowedHosts: readonly string[] | null;
  allowedOrigins: ReadonlySet<string> | null;
  /** --no-auth: every request acts as this principal, without a key. */
  anonymousPrincipal: Principal | null;
  allowQueryKey: boolean;
  authFailureLimit: number;
  authFailureWindowMs: number;
}

export interface Pipeline {
  /** Whether `?admin_key=` is read at all (--allow-query-key): else the adapter need not parse the query. */
  readonly readsQueryKey: boolean;
  /** Duplicated headers, target and Host, Origin: before anything reads the request. */
  screen(req: RequestFacts, path: string): Refusal | null;
  /** The principal of the request (its key, or --no-auth's), or the 401/429/500 refusal. */
  authenticate(req: RequestFacts, origin: RequestOrigin, path: string, queryKey: unknown): Promise<CredentialOutcome>;
  /**
   * null at once when the principal holds one of `scopes`; else the 403, once its `call.denied`
   * event is written. Not a promise when allowed: the verify fast path pays no await for it.
   */
  authorize(principal: Principal, scopes: readonly string[], path: string): Promise<Refusal> | null;
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { service, logger, allowedHosts, allowedOrigins, anonymousPrincipal, allowQueryKey } = options;
  const limiter = new FailedAuthLimiter({ limit: options.authFailureLimit, windowMs: options.authFailureWindowMs });
  const checkCredential = createCredentialCheck({ service, limiter, logger });
  // Host values the guard accepted for an origin-form target: a gateway sends the same one on every
  // request, so the hot path need not parse it each time. Bounded: Host is the client's to choose.
  const acceptedHosts = new Set<string>();
  const hostGuard = (target: string, host: string | undefined): Refusal | null => {
    const originForm = target.startsWith("/");
    if (originForm && host !== undefined && acceptedHosts.has(host)) return null;
    const refused = targetAndHostGuard(target, host, allowedHosts);
    if (refused === null && originForm && host !== undefined && acceptedHosts.size < 64) acceptedHosts.add(host);
    return refused;
  };
  return {
    readsQueryKey: allowQueryKey,
    screen(req, path) {
      const early = headerCountGuard(req.rawHeaders, req.httpVersion) ?? hostGuard(req.url ?? "/", req.headers.host);
      if (early) return early;
      const origin = req.headers.origin;
      const foreign = originGuard(origin, allowedOrigins);
      if (foreign) logger.info({ origin: origin!.slice(0, 200), path }, "request from a foreign origin refused");
      return foreign;
    },
    // Not async: the credential check's own promise is answered, one promise fewer per request.
    authenticate(req, origin, path, queryKey) {
      if (anonymousPrincipal !== null) return Promise.resolve({ ok: true, principal: { ...anonymousPrincipal, clientAddress: origin.clientAddress }, expiresAt: null });
      const authorization = req.headers.authorization;
      return checkCredential(presentedCredential(typeof authorization === "string" ? authorization : undefined, queryKey, allowQueryKey), origin, path);
    },
    authorize(principal, scopes, path) {
      const denial = scopeGuard(principal, scopes);
      if (denial === null) return null;
      return service
        .recordDeniedCall(principal, { endpoint: path, needed_scopes: scopes })
        .catch((error: unknown) => logger.error({ err: error }, "could not write call.denied to the audit log"))
        .then(() => denial);
    },
  };
}
