import type { Principal } from "../../service/principal.js";
import { holdsAnyScope } from "../../tools/access.js";
import { isLoopbackHost, isWildcardHost } from "../../net/hosts.js";
import { HEALTH_PATH, insufficientScopeRefusal, jsonRpcError, MCP_PATH, methodNotAllowed, refusal, VERIFY_PATH, type Refusal } from "./answers.js";
import { isOAuthPath } from "./oauth-discovery.js";

// The pure guards of the HTTP transport: request facts in, a refusal (or null) out, no I/O. Both
// adapters (express-app.ts for /mcp, fast-path.ts for /v1/keys/verify) run the same ones, so they
// cannot answer a request differently. Each is built once per server from its options.

const LOOPBACK_HOSTNAMES = ["localhost", "127.0.0.1", "[::1]"];
/** Headers a request may carry once at most (lower case). */
const SINGLE_VALUE_HEADERS = new Set(["host", "authorization", "mcp-session-id", "content-type"]);
const SINGLE_VALUE_HEADER_LENGTHS = new Set([...SINGLE_VALUE_HEADERS].map((name) => name.length));

/** What a browser page on an allowed origin may send, and may read of the answer (CORS). */
const CORS_ALLOWED_HEADERS = "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID";
const CORS_EXPOSED_HEADERS = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Retry-After";
/** How long a browser may reuse a preflight's answer, in seconds. */
const CORS_MAX_AGE_SECONDS = 600;

/** The facts of a request the guards read: an IncomingMessage has them all. */
export interface RequestFacts {
  readonly method?: string | undefined;
  readonly httpVersion?: string | undefined;
  /** The request target as sent. */
  readonly url?: string | undefined;
  readonly rawHeaders: readonly string[];
  readonly headers: { readonly host?: string | undefined; readonly origin?: string | undefined; readonly [name: string]: string | string[] | undefined };
}

/**
 * A request naming its Host, its credentials or its session twice is ambiguous: Node keeps the
 * first value, a proxy in front may have acted on the last (RFC 9112 section 3.2: a second Host is
 * a 400). So is an HTTP/1.1 request with no Host at all, which a server must answer with 400 (the
 * same section); Node's own answer to it has no body, so keywarden's server lets it through to here.
 * Refused before anything reads them.
 */
export function headerCountGuard(rawHeaders: readonly string[], httpVersion: string | undefined): Refusal | null {
  let seen: string[] | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i]!;
    // Every request runs this over all its headers: only a name of one of these lengths can be
    // one of them, so most are passed over without a lower-cased copy.
    if (!SINGLE_VALUE_HEADER_LENGTHS.has(raw.length)) continue;
    const name = raw.toLowerCase();
    if (!SINGLE_VALUE_HEADERS.has(name)) continue;
    if (seen?.includes(name)) return refusal(400, "bad_request", `Bad Request: the ${name} header appears more than once`);
    (seen ??= []).push(name);
  }
  if (httpVersion === "1.1" && !seen?.includes("host")) return refusal(400, "bad_request", "Bad Request: an HTTP/1.1 request must have a Host header");
  return null;
}

/** The Host names a bound address answers to by default: the loopback names, or the address itself. */
export function defaultAllowedHosts(host: string): string[] | null {
  if (isLoopbackHost(host)) return [...LOOPBACK_HOSTNAMES];
  if (isWildcardHost(host)) return null;
  return [host.includes(":") && !host.startsWith("[") ? `[${host}]` : host.toLowerCase()];
}

/**
 * The host named by a request target in absolute form (`http://host:port/path`); undefined for the
 * usual origin form (`/path`, the host is in Host); null for any other target (`*`, `host:port`).
 */
function targetAuthority(target: string): string | null | undefined {
  if (target.startsWith("/")) return undefined;
  try {
    const url = new URL(target);
    return url.protocol === "http:" || url.protocol === "https:" ? url.host : null;
  } catch {
    return null;
  }
}

/** A Host refusal, in the envelope of its path like every other (JSON-RPC on /mcp, keywarden's elsewhere). */
const hostRefusal = (message: string): Refusal => refusal(403, "forbidden", message);

/**
 * DNS rebinding: the Host header must name this server, with the same rule and messages as the
 * SDK's hostHeaderValidation middleware (port-agnostic hostname match). A request in absolute form
 * (`POST http://host/mcp`, as sent to a proxy) names its host in the target, which a server must
 * use in place of Host (RFC 9112 section 3.2.2), so that is the one checked then.
 * `allowedHosts` null or empty: Host is not checked.
 */
export function targetAndHostGuard(target: string, host: string | undefined, allowedHosts: readonly string[] | null): Refusal | null {
  const authority = targetAuthority(target);
  if (authority === null) return refusal(400, "bad_request", "Bad Request: the request target must be a path or an http(s) URL");
  if (allowedHosts === null || allowedHosts.length === 0) return null;
  const named = authority === undefined ? host : authority;
  if (!named) return hostRefusal("Missing Host header");
  let hostname: string;
  try {
    hostname = new URL(`http://${named}`).hostname;
  } catch {
    return hostRefusal(`Invalid Host header: ${named}`);
  }
  return allowedHosts.includes(hostname) ? null : hostRefusal(`Invalid Host: ${hostname}`);
}

/** `scheme://host[:port]` in the form browsers send, or null when it is not an origin. */
export function normalizeOrigin(value: string): string | null {
  try {
    const url = new URL(value);
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.origin === "null") return null;
    return url.origin;
  } catch {
    return null;
  }
}

const FOREIGN_ORIGIN = refusal(403, "forbidden", "Forbidden: this Origin is not allowed");

/**
 * Origin: a browser page from elsewhere gets 403 before any work. Requests without Origin (not a
 * browser) pass. `allowedOrigins` null: loopback origins only.
 */
export function originGuard(origin: string | undefined, allowedOrigins: ReadonlySet<string> | null): Refusal | null {
  if (origin === undefined) return null;
  const normalized = normalizeOrigin(origin);
  const allowed = allowedOrigins === null ? normalized !== null && LOOPBACK_HOSTNAMES.includes(new URL(normalized).hostname) : allowedOrigins.has(normalized ?? origin);
  return allowed ? null : FOREIGN_ORIGIN;
}

/** The methods each endpoint answers; an OAuth path answers GET and POST (oauth-discovery.ts). */
export function endpointMethods(stateless: boolean): ReadonlyMap<string, readonly string[]> {
  return new Map<string, readonly string[]>([
    [MCP_PATH, stateless ? ["POST"] : ["POST", "GET", "DELETE"]],
    [VERIFY_PATH, ["POST"]],
    [HEALTH_PATH, ["GET", "HEAD"]],
  ]);
}

/** 405 with Allow for a method the endpoint does not answer. */
export function methodGuard(method: string | undefined, allowed: readonly string[]): Refusal | null {
  return method !== undefined && allowed.includes(method) ? null : methodNotAllowed(allowed);
}

export interface CorsAnswer {
  headers: Record<string, string>;
  /** A preflight: answered 204 with these headers, before authentication (it carries no credentials). */
  preflight: boolean;
}

/**
 * CORS for a request from an origin the Origin guard let through (loopback, or --allowed-origins):
 * without it a page on such an origin could not send Authorization or read Mcp-Session-Id, and
 * allowing its origin would mean nothing. null: no CORS headers (no Origin, or not an endpoint).
 */
export function corsAnswer(
  method: string | undefined,
  path: string,
  origin: string | undefined,
  requestedMethod: string | undefined,
  methods: ReadonlyMap<string, readonly string[]>,
): CorsAnswer | null {
  if (origin === undefined) return null;
  // OAuth paths too, so that a browser-based client can read why there is no OAuth here.
  const allowed = methods.get(path) ?? (isOAuthPath(path) ? ["GET", "POST"] : undefined);
  if (allowed === undefined) return null;
  const headers: Record<string, string> = { Vary: "Origin", "Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": CORS_EXPOSED_HEADERS };
  if (method !== "OPTIONS" || requestedMethod === undefined) return { headers, preflight: false };
  headers["Access-Control-Allow-Methods"] = allowed.join(", ");
  headers["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS;
  headers["Access-Control-Max-Age"] = String(CORS_MAX_AGE_SECONDS);
  return { headers, preflight: true };
}

/** Scope: 403 for a key that holds none of the endpoint's scopes (the audit event is written by access.ts). */
export function scopeGuard(principal: Principal, scopes: readonly string[]): Refusal | null {
  return holdsAnyScope(principal, scopes) ? null : insufficientScopeRefusal(scopes);
}
