import { createServer as createNodeHttpServer, type Server as NodeHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { ServerLogger } from "../../server.js";
import type { Principal } from "../../service/principal.js";
import type { KeyService } from "../../service/service.js";
import type { ToolDefinition } from "../../tools/tool.js";
import { MCP_PATH, VERIFY_PATH } from "./answers.js";
import { answerClientError, answerConnect } from "./client-error.js";
import { createExpressApp } from "./express-app.js";
import { createVerifyFastPath } from "./fast-path.js";
import { defaultAllowedHosts, endpointMethods, normalizeOrigin } from "./guards.js";
import { createMcpHandler } from "./mcp.js";
import { createPipeline } from "./pipeline.js";
import { RequestLog } from "./request-log.js";
import {
  DEFAULT_AUTH_FAILURE_LIMIT,
  DEFAULT_AUTH_FAILURE_WINDOW_MS,
  DEFAULT_KEY_WATCH_INTERVAL_MS,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_KEY,
  DEFAULT_SESSION_IDLE_TIMEOUT_MS,
} from "./defaults.js";
import { createVerifyHandler } from "./verify.js";

// startHttpServer: builds the guards, the handlers and the two adapters once, and listens.

/** A request must be fully received within this time (headers within the shorter one), else 408. */
export const REQUEST_TIMEOUT_MS = 30_000;
export const HEADERS_TIMEOUT_MS = 20_000;

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
  /**
   * How often the keys owning sessions are re-read, to close those revoked, expired or narrowed
   * elsewhere: the bound on their staleness when no change notification arrives.
   */
  keyWatchIntervalMs?: number;
  /**
   * Listen for the store's key-change notifications (KeyService.watchKeyChanges), when it has them,
   * and re-check at once the sessions of a changed key (default true; unused under --stateless).
   */
  keyChangeNotifications?: boolean;
}

export interface RunningHttpServer {
  /** The MCP endpoint, e.g. http://127.0.0.1:3000/mcp. */
  url: string;
  port: number;
  /** Open sessions, for tests and the log. */
  sessionCount(): number;
  /** Whether sessions hear of key changes from the store at once; false: only by the periodic watch. */
  keyChangeNotifications: boolean;
  /**
   * Stops accepting connections, lets requests in progress finish (up to `graceMs`), closes every
   * session and its streams, then every connection.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Streamable HTTP for keywarden: MCP at /mcp, the verify endpoint for gateways, and a health
 * check, behind Host and Origin checks, bearer authentication with keys from the store, per-address
 * limits on failed attempts, and a 1 MiB body limit.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { service, logger, host, stateless = false } = options;
  const allowedHosts = options.allowedHosts === undefined || options.allowedHosts === null ? defaultAllowedHosts(host) : [...options.allowedHosts];
  const anonymousPrincipal = options.anonymousPrincipal ?? null;
  const trustsProxy = options.trustProxy !== undefined && options.trustProxy !== false;
  let closing = false;

  const pipeline = createPipeline({
    service,
    logger,
    allowedHosts,
    allowedOrigins: options.allowedOrigins ? new Set(options.allowedOrigins.map((origin) => normalizeOrigin(origin) ?? origin)) : null,
    anonymousPrincipal,
    allowQueryKey: options.allowQueryKey ?? false,
    authFailureLimit: options.authFailureLimit ?? DEFAULT_AUTH_FAILURE_LIMIT,
    authFailureWindowMs: options.authFailureWindowMs ?? DEFAULT_AUTH_FAILURE_WINDOW_MS,
  });
  const requestLog = new RequestLog(logger);
  const verify = createVerifyHandler(service);
  const mcp = createMcpHandler({
    service,
    version: options.version,
    logger,
    tools: options.tools,
    stateless,
    maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS,
    maxSessionsPerKey: options.maxSessionsPerKey ?? DEFAULT_MAX_SESSIONS_PER_KEY,
    sessionIdleTimeoutMs: options.sessionIdleTimeoutMs ?? DEFAULT_SESSION_IDLE_TIMEOUT_MS,
    keyWatchIntervalMs: options.keyWatchIntervalMs ?? DEFAULT_KEY_WATCH_INTERVAL_MS,
  });
  const app = createExpressApp({
    service,
    pipeline,
    requestLog,
    verify,
    mcp,
    methods: endpointMethods(stateless),
    trustProxy: options.trustProxy,
    isClosing: () => closing,
    logger,
  });
  const fastPath = createVerifyFastPath({
    pipeline,
    verify,
    requestLog,
    disabled: anonymousPrincipal !== null || trustsProxy,
    onError: (error) => requestLog.unexpected(error, VERIFY_PATH),
  });

  // Key changes committed by any process re-check their sessions at once (README, "Running several
  // instances"); listening before the socket opens, so that no session predates it. The periodic
  // watch (sessions.start) stays: it bounds staleness while notifications are lost.
  let stopWatching: (() => Promise<void>) | null = null;
  if (!stateless && options.keyChangeNotifications !== false) {
    try {
      stopWatching = await service.watchKeyChanges((changed) => {
        if (changed === "all") logger.warn({}, "key-change notifications: listening again after a lost connection; re-checking every session's key");
        void mcp.sessions.recheckKeys(changed);
      });
    } catch (error) {
      logger.warn(
        { reason: (error as Error).message },
        "key-change notifications unavailable: sessions follow changes made elsewhere by the periodic key watch only",
      );
    }
  }

  const httpServer = await new Promise<NodeHttpServer>((resolve, reject) => {
    const server = createNodeHttpServer(
      // A client that sends half a request and goes quiet holds a connection only this long, not
      // Node's default of 300 s (a cheap way to tie up every socket).
      // A missing Host is refused by headerCountGuard with a JSON body, not by Node with none.
      { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS, requireHostHeader: false },
      (req, res) => (fastPath.takes(req, closing) ? fastPath.serve(req, res) : void app(req, res)),
    );
    // Requests Node's parser refuses get a JSON error body too, not Node's empty one.
    server.on("clientError", answerClientError);
    // CONNECT (a proxy's tunnel) never reaches a handler: without a listener Node drops the socket unanswered.
    server.on("connect", (_req, socket) => answerConnect(socket));
    server.listen(options.port, host, () => resolve(server));
    server.once("error", reject);
  }).catch(async (error: unknown) => {
    await stopWatching?.();
    throw error;
  });
  const { port } = httpServer.address() as AddressInfo;
  const urlHost = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;

  // Idle sessions (a held GET stream is not use), and the keys that own sessions.
  if (!stateless) mcp.sessions.start();

  if (allowedHosts === null) {
    logger.warn({ host }, "bound to every interface: the Host header is not checked; set --allowed-hosts to the names clients use");
  }

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}${MCP_PATH}`,
    port,
    sessionCount: () => mcp.sessions.size,
    keyChangeNotifications: stopWatching !== null,
    close: (graceMs = 5000) => {
      closed ??= (async () => {
        closing = true;
        mcp.sessions.stop();
        const unwatched = stopWatching?.().catch((error: unknown) => logger.warn({ reason: (error as Error).message }, "key-change notifications: could not stop listening"));
        const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        // Let requests in progress finish: a tool call that wrote a key must get its answer out.
        const deadline = Date.now() + graceMs;
        while (requestLog.inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
        await mcp.sessions.closeAll("shutdown");
        httpServer.closeAllConnections();
        await Promise.all([stopped, unwatched]);
      })();
      return closed;
    },
  };
}
