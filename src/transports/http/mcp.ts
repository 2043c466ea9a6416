import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Server as McpServer } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { createServer, type ServerLogger } from "../../server.js";
import type { Principal } from "../../service/principal.js";
import type { KeyService } from "../../service/service.js";
import type { ToolDefinition } from "../../tools/tool.js";
import { MAX_BODY_BYTES, MCP_PATH, refusal, writeRefusal, type Refusal } from "./answers.js";
import { BoundedEventStore, SSE_RETRY_MS } from "./event-store.js";
import { applySessionProtocolVersion, negotiatedProtocolVersion, SessionTable, type SessionCloseReason, type TableEntry } from "./sessions.js";

// The /mcp handler behind the guards: Streamable HTTP through the SDK's transport, one session per
// initialize (sessions.ts keeps the table and its limits), or a fresh server per POST (--stateless).

/** An entry of the session table, with what serves it. */
interface Session extends TableEntry {
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  /** The protocol version its initialize negotiated, which its streams follow. */
  protocolVersion: string;
  /** Its initialize was answered with its id (else it is dropped without a log line). */
  opened: boolean;
}

/** What the guards established about the request: who acts, and until when its key is good. */
export interface Caller {
  principal: Principal;
  /** The key's exact expiry (ISO 8601), or null for none: its sessions end then. */
  expiresAt: string | null;
}

/**
 * The SDK's transport hands each request's `req.auth` to the handlers as `extra.authInfo`, the one
 * way a per-request principal (its current scopes, its client address) reaches createServer's
 * principalOf; the token itself is never put there.
 */
type WithAuth = IncomingMessage & { auth?: AuthInfo };
function carryPrincipal(req: IncomingMessage, principal: Principal): void {
  (req as WithAuth).auth = { token: "", clientId: principal.keyId ?? "anonymous", scopes: principal.scopes ?? [], extra: { principal } };
}
const principalOf = (authInfo: AuthInfo | undefined): Principal | undefined => authInfo?.extra?.principal as Principal | undefined;

const SESSION_NOT_FOUND = refusal(404, "not_found", "Session not found");
const SESSION_ID_REQUIRED = refusal(400, "bad_request", "Bad Request: Mcp-Session-Id header is required");
const NOT_JSON = refusal(415, "unsupported_media_type", "Unsupported Media Type: Content-Type must be application/json");
const NO_SESSION = refusal(400, "bad_request", "Bad Request: no session: send initialize first, or the Mcp-Session-Id header");
const TOO_MANY_SESSIONS = refusal(503, "unavailable", "too many open sessions; retry later", { "Retry-After": "60" });

export interface McpHandlerOptions {
  service: KeyService;
  version: string;
  logger: ServerLogger;
  tools: readonly ToolDefinition[] | undefined;
  stateless: boolean;
  maxSessions: number;
  maxSessionsPerKey: number;
  sessionIdleTimeoutMs: number;
  keyWatchIntervalMs: number;
}

export interface McpHandler {
  /** Answers one /mcp request whose guards passed; `body` is the parsed JSON of a POST. */
  handle(req: IncomingMessage, res: ServerResponse, body: unknown, caller: Caller): Promise<void>;
  readonly sessions: {
    readonly size: number;
    start(): void;
    stop(): void;
    closeAll(why: SessionCloseReason): Promise<void>;
    /** Re-checks the sessions of keys reported changed ("all": every session's key). */
    recheckKeys(changed: readonly string[] | "all"): Promise<void>;
  };
}

export function createMcpHandler(options: McpHandlerOptions): McpHandler {
  const { service, version, logger, tools, stateless } = options;
  const sessions: SessionTable<Session> = new SessionTable<Session>({
    maxSessions: options.maxSessions,
    maxSessionsPerKey: options.maxSessionsPerKey,
    idleTimeoutMs: options.sessionIdleTimeoutMs,
    keyWatchIntervalMs: options.keyWatchIntervalMs,
    keyStandings: (keyIds) => service.keyStandings(keyIds),
    // A session ends when its key expires by the clock that judges keys, not by another one.
    now: () => service.now().getTime(),
    onClose: (session, why) => endSession(session, why),
    onWatchError: (error) => logger.error({ err: error }, "sessions: could not re-read the keys that own them"),
  });
  const refuse = (res: ServerResponse, answer: Refusal) => writeRefusal(res, MCP_PATH, answer);
  const newServer = (principal: Principal): McpServer =>
    createServer({ service, version, logger, tools, principalOf: ({ authInfo }) => principalOf(authInfo) ?? principal });

  /** Once a session has left the table: ends its streams (the transport's), its transport and its server. */
  async function endSession(session: Session, why: SessionCloseReason): Promise<void> {
    if (session.opened) logger.info({ session: session.id.slice(0, 8), key: session.keyId, why }, "session closed");
    await session.transport.close().catch(() => undefined);
    await session.server.close().catch(() => undefined);
  }

  // --stateless (README, Stateless): nothing outlives the request, so any instance behind a balancer
  // can take the next one. The fresh server never saw the client's initialize: it cannot ask for a
  // confirmation, and createServer refuses the stops that need one (src/server.ts).
  const handleStateless = async (req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal): Promise<void> => {
    const server = newServer(principal);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, maxRequestBodySize: MAX_BODY_BYTES });
    res.once("close", () => {
      void transport.close().catch(() => undefined);
      void server.close().catch(() => undefined);
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const handleStateful = async (req: IncomingMessage, res: ServerResponse, body: unknown, { principal, expiresAt }: Caller): Promise<void> => {
    const sessionId = req.headers["mcp-session-id"];
    if (typeof sessionId === "string") {
      const session = sessions.get(sessionId);
      // Another key presenting a session's id learns nothing, not even that it exists; the key
      // that opened it loses it when its scopes changed since (README, "Sessions").
      if (!session || session.keyId !== principal.keyId || !sessions.admits(session, principal.scopes)) return refuse(res, SESSION_NOT_FOUND);
      res.once("close", sessions.use(session, req.method === "GET"));
      applySessionProtocolVersion(req, session.protocolVersion);
      await session.transport.handleRequest(req, res, body);
      return;
    }
    if (req.method !== "POST") return refuse(res, SESSION_ID_REQUIRED);
    if (body === undefined) return refuse(res, NOT_JSON);
    if (!isInitializeRequest(body)) return refuse(res, NO_SESSION);
    // A key at its limit gives up its least recently used session; only a table full of other
    // keys' sessions refuses (--max-sessions, --max-sessions-per-key).
    if (!sessions.admit(principal.keyId)) return refuse(res, TOO_MANY_SESSIONS);
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
    // In the table from now on, before any await, so that parallel initializes count against the limits.
    const session: Session = {
      id,
      transport,
      server,
      keyId: principal.keyId,
      scopes: principal.scopes,
      expiresAtMs: principal.keyId === null || expiresAt === null ? null : Date.parse(expiresAt),
      lastUsed: Date.now(),
      busy: 0,
      protocolVersion: negotiatedProtocolVersion((body as { params?: { protocolVersion?: unknown } }).params?.protocolVersion),
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
    await transport.handleRequest(req, res, body);
  };

  return {
    handle: async (req, res, body, caller) => {
      carryPrincipal(req, caller.principal);
      await (stateless ? handleStateless(req, res, body, caller.principal) : handleStateful(req, res, body, caller));
    },
    sessions,
  };
}
