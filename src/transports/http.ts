import { randomBytes } from "node:crypto";
import { createServer as createNodeHttpServer, type IncomingMessage, type Server as NodeHttpServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Server as McpServer } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import express, { type NextFunction, type Request, type Response } from "express";
import { createServer, type ServerLogger } from "../server.js";
import { errorBody, ServiceError, type FieldError } from "../service/errors.js";
import type { Principal } from "../service/principal.js";
import type { KeyService } from "../service/service.js";
import type { RequestOrigin } from "../service/types.js";
import { holdsAnyScope, MCP_SCOPES, VERIFY_ENDPOINT_SCOPES } from "../tools/access.js";
import { fieldErrorsOf } from "../tools/call.js";
import type { ToolDefinition } from "../tools/tool.js";
import { verifyApiKeyInput } from "../tools/verify_api_key.js";
import { FailedAuthLimiter } from "./auth-limiter.js";
import { answerClientError } from "./client-error.js";
import { createCredentialCheck, presentedCredential, type CredentialRefusal } from "./bearer.js";
import { isLoopbackHost, isWildcardHost } from "./hosts.js";
import { isOAuthPath, oauthPathRefusal } from "./oauth-discovery.js";
import {
  applySessionProtocolVersion,
  BoundedEventStore,
  DEFAULT_KEY_WATCH_INTERVAL_MS,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_KEY,
  DEFAULT_SESSION_IDLE_TIMEOUT_MS,
  negotiatedProtocolVersion,
  SessionTable,
  SSE_RETRY_MS,
  type SessionCloseReason,
  type TableEntry,
} from "./sessions.js";

/** Request bodies above this get 413. */
export const MAX_BODY_BYTES = 1024 * 1024;
export const MCP_PATH = "/mcp";
export const VERIFY_PATH = "/v1/keys/verify";
export const HEALTH_PATH = "/healthz";
/** A request must be fully received within this time (headers within the shorter one), else 408. */
export const REQUEST_TIMEOUT_MS = 30_000;
export const HEADERS_TIMEOUT_MS = 20_000;

export { INVALID_TOKEN_DESCRIPTION } from "./bearer.js";

const LOOPBACK_HOSTNAMES = ["localhost", "127.0.0.1", "[::1]"];
/** Headers a request may carry once at most (lower case). */
const SINGLE_VALUE_HEADERS = new Set(["host", "authorization", "mcp-session-id", "content-type"]);

/** What a browser page on an allowed origin may send, and may read of the answer (CORS). */
const CORS_ALLOWED_HEADERS = "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID";
const CORS_EXPOSED_HEADERS = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Retry-After";
/** How long a browser may reuse a preflight's answer, in seconds. */
const CORS_MAX_AGE_SECONDS = 600;

const FAR_FUTURE_SECONDS = 253402300799; // 9999-12-31T23:59:59Z: a key without expiry

export interface HttpLogger extends ServerLogger {
  warn(object: Record<string, unknown>, message: string): void;
}

export interface HttpServerOptions {
  service: KeyService;
  version: string;
  logger: HttpLogger;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** A fresh server per POST, no sessions; GET and DELETE get 405. */
  stateless?: boolean;
  /** Exact origins (scheme://host[:port]) allowed to call; null allows loopback origins only. */
  allowedOrigins?: readonly string[] | null;
  /** Host header names allowed (DNS rebinding); null derives them from `host`; [] checks nothing. */
  allowedHosts?: readonly string[] | null;
  /** Accept the key as `?admin_key=` when no Authorization header is sent. */
  allowQueryKey?: boolean;
  /** The tools each session serves (default: all of keywarden's); the benchmarks add a no-op baseline. */
  tools?: readonly ToolDefinition[];
  /** --no-auth: every request acts as this principal, without a key. Loopback only (the CLI checks). */
  anonymousPrincipal?: Principal | null;
  /** A session with no request for this long is closed, even while it holds a GET stream. */
  sessionIdleTimeoutMs?: number;
  /** Failed authentications per address per window before the address gets 429. */
  authFailureLimit?: number;
  authFailureWindowMs?: number;
  /** Express "trust proxy": hops or addresses whose X-Forwarded-For names the client. */
  trustProxy?: boolean | number | readonly string[];
  /** Open sessions at most; one more initialize gets 503, unless its key has a session to evict. */
  maxSessions?: number;
  /** Open sessions per key (all of --no-auth is one); one more closes that key's least recently used. */
  maxSessionsPerKey?: number;
  /** How often the keys owning sessions are re-read, to close those revoked, expired or narrowed elsewhere. */
  keyWatchIntervalMs?: number;
}

export interface RunningHttpServer {
  /** The MCP endpoint, e.g. http://127.0.0.1:3000/mcp. */
  url: string;
  port: number;
  /** Open sessions, for tests and the log. */
  sessionCount(): number;
  /**
   * Stops accepting connections, lets requests in progress finish (up to `graceMs`), closes every
   * session and its streams, then every connection.
   */
  close(graceMs?: number): Promise<void>;
}

/** An entry of the session table (sessions.ts), with what serves it. */
interface Session extends TableEntry {
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  /** The protocol version its initialize negotiated, which its streams follow. */
  protocolVersion: string;
  /** Its initialize was answered with its id (else it is dropped without a log line). */
  opened: boolean;
}

/** A JSON-RPC error with no id, as the SDK's transport answers HTTP-level failures on /mcp. */
function jsonRpcError(code: number, message: string) {
  return { jsonrpc: "2.0", error: { code, message }, id: null };
}

/** One JSON error answer, in the envelope the endpoint's clients expect. */
function sendError(req: Request, res: Response, status: number, code: string, message: string, errors: FieldError[] = []): void {
  if (res.headersSent) return;
  const body = req.path === MCP_PATH ? jsonRpcError(status === 400 && code === "parse_error" ? -32700 : -32000, message) : errorBody(code, message, errors);
  res.status(status).json(body);
}

/** The Host names a bound address answers to by default: the loopback names, or the address itself. */
export function defaultAllowedHosts(host: string): string[] | null {
  if (isLoopbackHost(host)) return [...LOOPBACK_HOSTNAMES];
  if (isWildcardHost(host)) return null;
  return [host.includes(":") && !host.startsWith("[") ? `[${host}]` : host.toLowerCase()];
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

function isLoopbackOrigin(origin: string): boolean {
  const normalized = normalizeOrigin(origin);
  return normalized !== null && LOOPBACK_HOSTNAMES.includes(new URL(normalized).hostname);
}

/** What the SDK's transport reads the caller from (StreamableHTTPServerTransport.handleRequest). */
type AuthenticatedRequest = Request & { auth?: AuthInfo };

function principalOfAuthInfo(authInfo: AuthInfo | undefined): Principal | undefined {
  return authInfo?.extra?.principal as Principal | undefined;
}

function authInfoOf(principal: Principal, expiresAt: string | null): AuthInfo {
  return {
    // Not the token: it has done its work, and nothing downstream needs it.
    token: principal.keyId ?? "anonymous",
    clientId: principal.keyId ?? "anonymous",
    scopes: principal.scopes ?? [],
    expiresAt: expiresAt === null ? FAR_FUTURE_SECONDS : Math.floor(Date.parse(expiresAt) / 1000),
    extra: { principal },
  };
}

/** A refusal of a request, whatever answers it: Express for /mcp, the fast path for the verify endpoint. */
interface Refusal {
  status: number;
  code: string;
  message: string;
  headers?: Record<string, string>;
  /** The exact body on every path (the 401 of bearer.ts); absent: the path's envelope below. */
  body?: unknown;
}

/** A request naming its Host, its credentials or its session twice is ambiguous (see SINGLE_VALUE_HEADERS). */
function duplicatedHeaderRefusal(rawHeaders: readonly string[]): Refusal | null {
  const seen = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (!SINGLE_VALUE_HEADERS.has(name)) continue;
    if (seen.has(name)) return { status: 400, code: "bad_request", message: `Bad Request: the ${name} header appears more than once` };
    seen.add(name);
  }
  return null;
}

/**
 * DNS rebinding: the Host header must name this server. The same rule and messages as the SDK's
 * hostHeaderValidation middleware (port-agnostic hostname match), as a plain function.
 */
function hostRefusal(host: string | undefined, allowedHosts: readonly string[] | null): Refusal | null {
  if (allowedHosts === null || allowedHosts.length === 0) return null;
  if (!host) return { status: 403, code: "forbidden", message: "Missing Host header" };
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname;
  } catch {
    return { status: 403, code: "forbidden", message: `Invalid Host header: ${host}` };
  }
  return allowedHosts.includes(hostname) ? null : { status: 403, code: "forbidden", message: `Invalid Host: ${hostname}` };
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

/** The body of a refusal: JSON-RPC on /mcp (as the SDK's transport answers), keywarden's error body elsewhere. */
function refusalBody(path: string, refusal: Refusal, errors: FieldError[] = []): unknown {
  if (refusal.body !== undefined) return refusal.body;
  if (path === MCP_PATH) return jsonRpcError(refusal.status === 400 && refusal.code === "parse_error" ? -32700 : -32000, refusal.message);
  // Host refusals keep the SDK middleware's JSON-RPC shape on every path, as before.
  if (refusal.code === "forbidden" && /Host/.test(refusal.message)) return jsonRpcError(-32000, refusal.message);
  return errorBody(refusal.code, refusal.message, errors);
}

/** Writes a JSON answer on a bare Node response, as Express's res.json would. */
function writeJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "Content-Type": "application/json; charset=utf-8", "Content-Length": String(Buffer.byteLength(text)) });
  res.end(text);
}

/** `application/json`, optionally with charset=utf-8: the only bodies the fast path reads itself. */
const PLAIN_JSON = /^application\/json\s*(?:;\s*charset=("?)utf-8\1\s*)?$/i;

/**
 * Streamable HTTP for keywarden: MCP at /mcp, the verify endpoint for gateways, and a health
 * check, behind Host and Origin checks, bearer authentication with keys from the store, per-address
 * limits on failed attempts, and a 1 MiB body limit.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const {
    service,
    version,
    logger,
    host,
    stateless = false,
    allowQueryKey = false,
    anonymousPrincipal = null,
    sessionIdleTimeoutMs = DEFAULT_SESSION_IDLE_TIMEOUT_MS,
    maxSessions = DEFAULT_MAX_SESSIONS,
    maxSessionsPerKey = DEFAULT_MAX_SESSIONS_PER_KEY,
    keyWatchIntervalMs = DEFAULT_KEY_WATCH_INTERVAL_MS,
  } = options;
  const allowedHosts = options.allowedHosts === undefined || options.allowedHosts === null ? defaultAllowedHosts(host) : [...options.allowedHosts];
  const allowedOrigins = options.allowedOrigins ? new Set(options.allowedOrigins.map((origin) => normalizeOrigin(origin) ?? origin)) : null;
  const limiter = new FailedAuthLimiter({ limit: options.authFailureLimit ?? 30, windowMs: options.authFailureWindowMs ?? 300_000 });
  const sessions = new SessionTable<Session>({
    maxSessions,
    maxSessionsPerKey,
    idleTimeoutMs: sessionIdleTimeoutMs,
    keyWatchIntervalMs,
    keyStandings: (keyIds) => service.keyStandings(keyIds),
    onClose: (session, why) => endSession(session, why),
    onWatchError: (error) => logger.error({ err: error }, "sessions: could not re-read the keys that own them"),
  });
  let inFlight = 0;
  let closing = false;

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("trust proxy", options.trustProxy === undefined ? false : Array.isArray(options.trustProxy) ? [...options.trustProxy] : options.trustProxy);

  const clientAddress = (req: Request): string => req.ip ?? req.socket.remoteAddress ?? "unknown";
  const originOf = (req: Request): RequestOrigin => ({
    transport: "http",
    clientAddress: clientAddress(req),
    userAgent: req.get("user-agent") ?? null,
  });

  // Shutting down: nothing new starts.
  app.use((req, res, next) => {
    if (!closing) return next();
    res.set("Connection", "close");
    sendError(req, res, 503, "unavailable", "the server is shutting down");
  });

  // Requests in progress, so that shutdown can let them finish (a GET is a stream or a health
  // check: nothing to wait for); and a debug line per request (never the query string).
  app.use((req, res, next) => {
    const started = performance.now();
    const counted = req.method !== "GET";
    if (counted) inFlight += 1;
    res.once("close", () => {
      if (counted) inFlight -= 1;
      logger.debug(
        { method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - started), ip: clientAddress(req) },
        "http request",
      );
    });
    next();
  });

  // A request naming its Host, its credentials or its session twice is ambiguous: Node keeps the
  // first value, a proxy in front may have acted on the last (RFC 9112 section 3.2: a second Host is
  // a 400). Refused before anything reads them.
  app.use((req, res, next) => {
    const refusal = duplicatedHeaderRefusal(req.rawHeaders);
    if (refusal) return sendError(req, res, refusal.status, refusal.code, refusal.message);
    next();
  });

  // DNS rebinding: the Host header must name this server. A request in absolute form (`POST
  // http://host/mcp`, as sent to a proxy) names its host in the target, which a server must use in
  // place of Host (RFC 9112 section 3.2.2), so that is the one checked then.
  app.use((req, res, next) => {
    const target = targetAuthority(req.url);
    if (target === null) return sendError(req, res, 400, "bad_request", "Bad Request: the request target must be a path or an http(s) URL");
    const refusal = hostRefusal(target === undefined ? req.headers.host : target, allowedHosts);
    if (!refusal) return next();
    res.status(refusal.status).json(refusalBody(req.path, refusal));
  });

  // Origin: a browser page from elsewhere gets 403 before any work. Requests without Origin (not a browser) pass.
  const originRefusal = (origin: string | undefined, path: string): Refusal | null => {
    if (origin === undefined) return null;
    const allowed = allowedOrigins === null ? isLoopbackOrigin(origin) : allowedOrigins.has(normalizeOrigin(origin) ?? origin);
    if (allowed) return null;
    logger.info({ origin: origin.slice(0, 200), path }, "request from a foreign origin refused");
    return { status: 403, code: "forbidden", message: "Forbidden: this Origin is not allowed" };
  };
  app.use((req, res, next) => {
    const refusal = originRefusal(req.get("origin"), req.path);
    if (refusal) return sendError(req, res, refusal.status, refusal.code, refusal.message);
    next();
  });

  // CORS for the origins let through above (loopback, or --allowed-origins): without it a page on
  // such an origin could not send Authorization or read Mcp-Session-Id, and allowing its origin
  // would mean nothing. A request without Origin (not a browser) gets no CORS headers.
  const corsMethods = new Map<string, readonly string[]>([
    [MCP_PATH, stateless ? ["POST"] : ["POST", "GET", "DELETE"]],
    [VERIFY_PATH, ["POST"]],
    [HEALTH_PATH, ["GET", "HEAD"]],
  ]);
  app.use((req, res, next) => {
    const origin = req.get("origin");
    // OAuth paths too, so that a browser-based client can read why there is no OAuth here.
    const methods = corsMethods.get(req.path) ?? (isOAuthPath(req.path) ? ["GET", "POST"] : undefined);
    if (origin === undefined || methods === undefined) return next();
    res.vary("Origin");
    res.set("Access-Control-Allow-Origin", origin);
    res.set("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS);
    if (req.method !== "OPTIONS" || req.get("access-control-request-method") === undefined) return next();
    // A preflight carries no credentials, so it is answered before authentication.
    res.set("Access-Control-Allow-Methods", methods.join(", "));
    res.set("Access-Control-Allow-Headers", CORS_ALLOWED_HEADERS);
    res.set("Access-Control-Max-Age", String(CORS_MAX_AGE_SECONDS));
    res.status(204).end();
  });

  // One credential check for every path (bearer.ts): the Express routes below and the fast path.
  const checkCredential = createCredentialCheck({ service, limiter, logger });

  /** Writes a refusal on an Express response: its headers, and its body in the path's envelope. */
  const sendRefusal = (req: Request, res: Response, refusal: Refusal | CredentialRefusal): void => {
    if (res.headersSent) return;
    if (refusal.headers) res.set(refusal.headers);
    res.status(refusal.status).json(refusalBody(req.path, refusal));
  };

  /** Authenticates the request (or applies --no-auth) and leaves the principal in res.locals.principal. */
  const authenticate = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const origin = originOf(req);
    if (anonymousPrincipal !== null) {
      const principal: Principal = { ...anonymousPrincipal, clientAddress: origin.clientAddress };
      res.locals.principal = principal;
      (req as AuthenticatedRequest).auth = authInfoOf(principal, null);
      return next();
    }
    const credential = presentedCredential(req.headers.authorization, allowQueryKey ? req.query.admin_key : undefined, allowQueryKey);
    const outcome = await checkCredential(credential, origin, req.path);
    if (!outcome.ok) return sendRefusal(req, res, outcome.refusal);
    res.locals.principal = outcome.principal;
    // The key's exact expiry (ISO 8601, or null for none): its sessions end then (sessions.ts).
    res.locals.keyExpiresAt = outcome.expiresAt;
    // What the SDK's transport hands to tool handlers (principalOfAuthInfo); never the token.
    (req as AuthenticatedRequest).auth = authInfoOf(outcome.principal, outcome.expiresAt);
    next();
  };

  /** 403 for a key that holds none of `scopes`, with the audit event; null when it holds one. */
  const scopeRefusal = async (principal: Principal, scopes: readonly string[], path: string) => {
    if (holdsAnyScope(principal, scopes)) return null;
    await service
      .recordDeniedCall(principal, { endpoint: path, needed_scopes: scopes })
      .catch((error: unknown) => logger.error({ err: error }, "could not write call.denied to the audit log"));
    return {
      headers: {
        "WWW-Authenticate": `Bearer error="insufficient_scope", error_description="This key holds none of the scopes this endpoint needs", scope="${scopes.join(" ")}"`,
      },
      body: { error: "insufficient_scope", error_description: `This endpoint needs a key with one of: ${scopes.join(", ")}` },
    };
  };
  const requireAnyScope = (scopes: readonly string[]) => async (req: Request, res: Response, next: NextFunction) => {
    const denial = await scopeRefusal(res.locals.principal as Principal, scopes, req.path);
    if (!denial) return next();
    res.set(denial.headers);
    res.status(403).json(denial.body);
  };

  const methods = (allowed: readonly string[]) => (req: Request, res: Response, next: NextFunction) => {
    if (allowed.includes(req.method)) return next();
    res.set("Allow", allowed.join(", "));
    sendError(req, res, 405, "method_not_allowed", `Method not allowed: use ${allowed.join(" or ")}`);
  };

  const jsonBody = express.json({ limit: MAX_BODY_BYTES, strict: true });

  // --- /healthz: the database answers ---------------------------------------------------------
  app.all(HEALTH_PATH, methods(["GET", "HEAD"]), async (_req, res) => {
    try {
      await service.checkHealth();
      res.status(200).json({ status: "ok", database: "ok" });
    } catch (error) {
      logger.error({ err: error }, "health check: the database does not answer");
      res.status(503).json({ status: "error", database: "unreachable" });
    }
  });

  // --- POST /v1/keys/verify: for gateways -------------------------------------------------------
  /** The verify endpoint's answer to a parsed body: 200 with the verify result, or 400. */
  const answerVerify = async (body: unknown, origin: RequestOrigin): Promise<{ status: number; body: unknown }> => {
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      return {
        status: 400,
        body: errorBody("validation_error", 'the body must be a JSON object: {"key": "…", "required_scopes": ["…"]}', [
          { key: "body", message: "expected a JSON object (Content-Type: application/json)" },
        ]),
      };
    }
    const parsed = verifyApiKeyInput.safeParse(body);
    if (!parsed.success) {
      const errors = fieldErrorsOf(parsed.error, body as Record<string, unknown>)
        // A value sent as `key` is never echoed back.
        .map((field) => (field.key === "key" ? { key: field.key, message: field.message } : field));
      const message = errors.length === 1 ? `invalid ${errors[0]!.key}: ${errors[0]!.message}` : `${errors.length} fields are invalid`;
      return { status: 400, body: errorBody("validation_error", message, errors) };
    }
    try {
      const result = await service.verifyApiKey(parsed.data.key, {
        requiredScopes: parsed.data.required_scopes,
        ip: origin.clientAddress,
        userAgent: origin.userAgent,
      });
      return { status: 200, body: result };
    } catch (error) {
      if (error instanceof ServiceError) {
        const { code, message, errors } = error.toBody().error;
        return { status: 400, body: errorBody(code, message, errors) };
      }
      throw error;
    }
  };

  app.all(VERIFY_PATH, methods(["POST"]), authenticate, requireAnyScope(VERIFY_ENDPOINT_SCOPES), jsonBody, async (req, res) => {
    const answer = await answerVerify(req.body, originOf(req));
    res.status(answer.status).json(answer.body);
  });

  // --- The gateway fast path --------------------------------------------------------------------
  // POST /v1/keys/verify is what gateways call on every request they serve, so it is answered
  // here on bare node:http, with the same checks in the same order as the Express route below
  // (duplicate headers, Host, the credential check of bearer.ts, scope, 1 MiB body, JSON,
  // fields) and the same answers; Express costs more CPU per request than the verification does.
  // Anything unusual — a query string, --no-auth, a proxy to trust, another content type or an
  // encoded body, a browser's request (Origin: checked, and CORS headers added), shutdown — takes
  // the Express route.
  const trustsProxy = options.trustProxy !== undefined && options.trustProxy !== false;
  const takesFastPath = (req: IncomingMessage): boolean =>
    !closing &&
    req.method === "POST" &&
    req.url === VERIFY_PATH &&
    req.headers.origin === undefined &&
    anonymousPrincipal === null &&
    !trustsProxy &&
    PLAIN_JSON.test(req.headers["content-type"] ?? "") &&
    (req.headers["content-encoding"] === undefined || req.headers["content-encoding"].toLowerCase() === "identity");

  /** The body as text, or null once a 413 has been sent. */
  const readBody = (req: IncomingMessage, res: ServerResponse): Promise<string | null> =>
    new Promise((resolve, reject) => {
      const refuse = () => {
        res.setHeader("Connection", "close");
        writeJson(res, 413, errorBody("payload_too_large", `Payload too large: the limit is ${MAX_BODY_BYTES} bytes`));
        req.removeAllListeners("data");
        req.resume();
        resolve(null);
      };
      const declared = Number(req.headers["content-length"]);
      if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return refuse();
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) return refuse();
        chunks.push(chunk);
      });
      req.once("end", () => resolve(size > MAX_BODY_BYTES ? null : Buffer.concat(chunks).toString("utf8")));
      req.once("error", reject);
    });

  const answerVerifyFast = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const refuse = (refusal: Refusal) => writeJson(res, refusal.status, refusalBody(VERIFY_PATH, refusal), refusal.headers);
    const early = duplicatedHeaderRefusal(req.rawHeaders) ?? hostRefusal(req.headers.host, allowedHosts);
    if (early) return refuse(early);
    const origin: RequestOrigin = { transport: "http", clientAddress: req.socket.remoteAddress ?? "unknown", userAgent: req.headers["user-agent"] ?? null };
    const authentication = await checkCredential(presentedCredential(req.headers.authorization, undefined, false), origin, VERIFY_PATH);
    if (!authentication.ok) return refuse(authentication.refusal);
    const denial = await scopeRefusal(authentication.principal, VERIFY_ENDPOINT_SCOPES, VERIFY_PATH);
    if (denial) return writeJson(res, 403, denial.body, denial.headers);
    const text = await readBody(req, res);
    if (text === null) return;
    let body: unknown = {};
    // As body-parser in strict mode: an empty body is {}, anything but an object or array is a parse error.
    if (text.trim().length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (body === undefined || body === null || typeof body !== "object") {
        return refuse({ status: 400, code: "parse_error", message: "Parse error: the body is not valid JSON" });
      }
    }
    const answer = await answerVerify(body, origin);
    writeJson(res, answer.status, answer.body);
  };

  const serveFastPath = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    inFlight += 1;
    res.once("close", () => {
      inFlight -= 1;
      logger.debug({ method: req.method, path: VERIFY_PATH, status: res.statusCode, ms: Math.round(performance.now() - started), ip: req.socket.remoteAddress }, "http request");
    });
    answerVerifyFast(req, res).catch((error: unknown) => {
      logger.error({ err: error, path: VERIFY_PATH }, "request failed unexpectedly");
      writeJson(res, 500, errorBody("internal_error", "internal error; the operation was not completed"));
    });
  };

  // --- /mcp: Streamable HTTP ----------------------------------------------------------------------
  const newServer = (principal: Principal): McpServer =>
    createServer({ service, version, logger, principalOf: ({ authInfo }) => principalOfAuthInfo(authInfo) ?? principal, tools: options.tools });

  /** Once a session has left the table: ends its streams (the transport's), its transport and its server. */
  async function endSession(session: Session, why: SessionCloseReason): Promise<void> {
    if (session.opened) logger.info({ session: session.id.slice(0, 8), key: session.keyId, why }, "session closed");
    await session.transport.close().catch(() => undefined);
    await session.server.close().catch(() => undefined);
  }

  const useSession = async (req: Request, res: Response, session: Session): Promise<void> => {
    res.once("close", sessions.use(session, req.method === "GET"));
    applySessionProtocolVersion(req, session.protocolVersion);
    await session.transport.handleRequest(req, res, req.body);
  };

  const handleStateless = async (req: Request, res: Response, principal: Principal): Promise<void> => {
    const server = newServer(principal);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, maxRequestBodySize: MAX_BODY_BYTES });
    res.once("close", () => {
      void transport.close().catch(() => undefined);
      void server.close().catch(() => undefined);
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  };

  const handleStateful = async (req: Request, res: Response, principal: Principal): Promise<void> => {
    const sessionId = req.get("mcp-session-id");
    if (sessionId !== undefined) {
      const session = sessions.get(sessionId);
      // Another key presenting a session's id learns nothing, not even that it exists; the key
      // that opened it loses it when its scopes changed since (README, "Sessions").
      if (!session || session.keyId !== principal.keyId || !sessions.admits(session, principal.scopes)) {
        return sendError(req, res, 404, "not_found", "Session not found");
      }
      return useSession(req, res, session);
    }
    if (req.method !== "POST") return sendError(req, res, 400, "bad_request", "Bad Request: Mcp-Session-Id header is required");
    if (req.body === undefined) {
      return sendError(req, res, 415, "unsupported_media_type", "Unsupported Media Type: Content-Type must be application/json");
    }
    if (!isInitializeRequest(req.body)) {
      return sendError(req, res, 400, "bad_request", "Bad Request: no session: send initialize first, or the Mcp-Session-Id header");
    }
    // A key at its limit gives up its least recently used session; only a table full of other
    // keys' sessions refuses (--max-sessions, --max-sessions-per-key).
    if (!sessions.admit(principal.keyId)) {
      res.set("Retry-After", "60");
      return sendError(req, res, 503, "unavailable", "too many open sessions; retry later");
    }
    const server = newServer(principal);
    const id = randomBytes(32).toString("base64url");
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => id,
      maxRequestBodySize: MAX_BODY_BYTES,
      // Resumability: every SSE stream starts with an event id and a retry delay, and a client that
      // lost one resumes it with Last-Event-ID from this session's bounded store.
      eventStore: new BoundedEventStore(),
      retryInterval: SSE_RETRY_MS,
      onsessioninitialized: () => {
        session.opened = true;
        logger.info({ session: id.slice(0, 8), key: principal.keyId, user: principal.userName }, "session opened");
      },
    });
    const expiresAt = res.locals.keyExpiresAt as string | null | undefined;
    // In the table from now on, before any await, so that parallel initializes count against the limits.
    const session: Session = {
      id,
      transport,
      server,
      keyId: principal.keyId,
      scopes: principal.scopes,
      expiresAtMs: principal.keyId === null || expiresAt === undefined || expiresAt === null ? null : Date.parse(expiresAt),
      lastUsed: Date.now(),
      busy: 0,
      protocolVersion: negotiatedProtocolVersion((req.body as { params?: { protocolVersion?: unknown } }).params?.protocolVersion),
      opened: false,
    };
    sessions.add(session);
    // Closed by DELETE, by the idle sweep or by shutdown: forget it either way.
    transport.onclose = () => void sessions.close(session, "closed");
    // An initialize that did not open the session (refused by the transport) leaves no entry.
    res.once("close", () => {
      if (!session.opened) void sessions.close(session, "closed");
    });
    res.once("close", sessions.use(session, false));
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  };

  app.all(
    MCP_PATH,
    methods(stateless ? ["POST"] : ["POST", "GET", "DELETE"]),
    authenticate,
    requireAnyScope(MCP_SCOPES),
    (req, res, next) => (req.method === "POST" ? jsonBody(req, res, next) : next()),
    async (req, res) => {
      const principal = res.locals.principal as Principal;
      await (stateless ? handleStateless(req, res, principal) : handleStateful(req, res, principal));
    },
  );

  // OAuth discovery, registration and token paths: an RFC 6749-shaped error saying keywarden takes
  // API keys (oauth-discovery.ts), instead of the 404 below that OAuth clients cannot read.
  app.use((req, res, next) => {
    const refusal = oauthPathRefusal(req.path);
    if (!refusal) return next();
    res.set(refusal.headers);
    res.status(refusal.status).json(refusal.body);
  });

  app.use((req, res) => sendError(req, res, 404, "not_found", `Not found: ${req.method} ${req.path}`));

  // Every error answer is JSON without a stack trace; the log gets the detail of a real fault.
  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const type = (error as { type?: unknown })?.type;
    if (type === "entity.too.large") return sendError(req, res, 413, "payload_too_large", `Payload too large: the limit is ${MAX_BODY_BYTES} bytes`);
    if (type === "entity.parse.failed") return sendError(req, res, 400, "parse_error", "Parse error: the body is not valid JSON");
    const status = (error as { status?: unknown })?.status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return sendError(req, res, status, "bad_request", "Bad request");
    }
    logger.error({ err: error, path: req.path }, "request failed unexpectedly");
    sendError(req, res, 500, "internal_error", "internal error; the operation was not completed");
  });

  const httpServer: NodeHttpServer = await new Promise((resolve, reject) => {
    const server = createNodeHttpServer(
      // A client that sends half a request and goes quiet holds a connection only this long, not
      // Node's default of 300 s (a cheap way to tie up every socket).
      { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS },
      (req, res) => (takesFastPath(req) ? serveFastPath(req, res) : void app(req, res)),
    );
    // Requests Node's parser refuses get a JSON error body too, not Node's empty one.
    server.on("clientError", answerClientError);
    server.listen(options.port, host, () => resolve(server));
    server.once("error", reject);
  });
  const { port } = httpServer.address() as AddressInfo;
  const urlHost = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;

  // Idle sessions (a held GET stream is not use), and the keys that own sessions.
  if (!stateless) sessions.start();

  if (allowedHosts === null) {
    logger.warn({ host }, "bound to every interface: the Host header is not checked; set --allowed-hosts to the names clients use");
  }

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}${MCP_PATH}`,
    port,
    sessionCount: () => sessions.size,
    close: (graceMs = 5000) => {
      closed ??= (async () => {
        closing = true;
        sessions.stop();
        const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        // Let requests in progress finish: a tool call that wrote a key must get its answer out.
        const deadline = Date.now() + graceMs;
        while (inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
        await sessions.closeAll("shutdown");
        httpServer.closeAllConnections();
        await stopped;
      })();
      return closed;
    },
  };
}
