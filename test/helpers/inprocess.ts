import { request, type ClientRequest } from "node:http";
import { join } from "node:path";
import { BufferedFailureRecorder } from "../../src/service/failure-recorder.js";
import type { Principal } from "../../src/service/principal.js";
import { KeyService } from "../../src/service/service.js";
import type { CreatedApiKey } from "../../src/service/types.js";
import { CoalescingUseRecorder } from "../../src/service/use-recorder.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import { startHttpServer, type HttpServerOptions, type RunningHttpServer } from "../../src/transports/http.js";
import { makeTempDir } from "./harness.js";
import { initializeBody, MCP_HEADERS, rawRequest } from "./http.js";

// startHttpServer in process on a real SQLite file, with the log kept for assertions, and raw
// Streamable HTTP steps (initialize, a request in a session, a GET stream) over real sockets.

export interface LogLine {
  level: string;
  object: Record<string, unknown>;
  message: string;
}

export interface InProcessServer {
  server: RunningHttpServer;
  url: string;
  dbPath: string;
  service: KeyService;
  store: SqliteKeyStore;
  log: LogLine[];
  /** An admin principal acting for `user` (created on first use), as `keywarden admin` does. */
  operator(user?: string): Promise<Principal>;
  /** A real key of `user`. */
  mint(name: string, scopes: string[], user?: string, expiresAt?: string): Promise<CreatedApiKey>;
  /** The `why` of each "session closed" line so far, by the session id's first 8 characters. */
  closedSessions(): Map<string, string>;
  /** With `batchedWrites`: writes the pending last uses and auth.failed events now. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface InProcessOptions extends Partial<HttpServerOptions> {
  /** As `keywarden serve --no-auth`: every request acts as the user "operator" with tools:read and tools:execute. */
  noAuth?: boolean;
  /** An existing database file, shared with other instances (the caller removes it); default: a new one. */
  dbPath?: string;
  /**
   * Last use and auth.failed written in batches a second apart by this instance's own recorders, as
   * `keywarden serve` writes them (src/cli/app.ts); default: each written at once.
   */
  batchedWrites?: boolean;
  /** Keep the debug lines too (a line per request, per tool call); default: dropped. */
  debugLog?: boolean;
}

export async function startInProcess(options: InProcessOptions = {}): Promise<InProcessServer> {
  const { noAuth = false, dbPath: sharedPath, batchedWrites = false, debugLog = false, ...serverOptions } = options;
  const temp = sharedPath === undefined ? makeTempDir() : null;
  const dbPath = sharedPath ?? join(temp!.dir, "keywarden.db");
  const store = SqliteKeyStore.open({ path: dbPath });
  const recorders = batchedWrites ? { useRecorder: new CoalescingUseRecorder(store), failureRecorder: new BufferedFailureRecorder(store) } : null;
  const service = new KeyService({ store, ...recorders });
  const log: LogLine[] = [];
  const anonymous = noAuth ? await service.localPrincipal({ userName: "operator", transport: "http", isAdmin: false }) : null;
  const line = (level: string) => (object: Record<string, unknown>, message: string) => void log.push({ level, object, message });
  const server = await startHttpServer({
    service,
    version: "test",
    logger: { debug: debugLog ? line("debug") : () => undefined, info: line("info"), warn: line("warn"), error: line("error") },
    host: "127.0.0.1",
    port: 0,
    anonymousPrincipal: anonymous === null ? null : { ...anonymous, scopes: ["tools:read", "tools:execute"] },
    ...serverOptions,
  });
  const operator = (user = "ops") => service.localPrincipal({ userName: user, transport: "cli", isAdmin: true });
  return {
    server,
    url: server.url,
    dbPath,
    service,
    store,
    log,
    operator,
    mint: async (name, scopes, user = "alice", expiresAt) => service.createApiKey(await operator(user), { name, scopes, expires_at: expiresAt }),
    closedSessions: () =>
      new Map(log.filter((entry) => entry.message === "session closed").map((entry) => [String(entry.object.session), String(entry.object.why)])),
    flush: async () => {
      await recorders?.useRecorder.flush();
      await recorders?.failureRecorder.flush();
    },
    close: async () => {
      await server.close(100);
      await recorders?.useRecorder.close();
      await recorders?.failureRecorder.close();
      await store.close();
      temp?.cleanup();
    },
  };
}

const bearer = (key: string | null): Record<string, string> => (key === null ? {} : { Authorization: `Bearer ${key}` });

/** initialize over raw HTTP: the status and the session id. */
export async function initialize(url: string, key: string | null): Promise<{ status: number; sessionId: string | undefined; body: string }> {
  const response = await rawRequest(url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key) }, body: initializeBody() });
  const id = response.headers["mcp-session-id"];
  return { status: response.status, sessionId: typeof id === "string" ? id : undefined, body: response.text };
}

/** One JSON-RPC request in a session: its status. */
export async function inSession(url: string, key: string | null, sessionId: string, method = "tools/list"): Promise<number> {
  const response = await rawRequest(url, {
    method: "POST",
    headers: { ...MCP_HEADERS, ...bearer(key), "Mcp-Session-Id": sessionId, "Mcp-Protocol-Version": "2025-11-25" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 7, method, params: {} }),
  });
  return response.status;
}

export interface SseStream {
  /** The status once the answer's head arrived. */
  status: Promise<number>;
  /** Resolves when the server ends the stream (or the connection closes). */
  ended: Promise<void>;
  /** Everything received so far. */
  text(): string;
  /** Events received so far: id, retry and data of each. */
  events(): { id?: string; retry?: string; data?: string }[];
  /** Resolves with the first event that satisfies `test`. */
  waitFor(test: (event: { id?: string; retry?: string; data?: string }) => boolean): Promise<{ id?: string; retry?: string; data?: string }>;
  abort(): void;
}

/** An SSE answer over raw HTTP: a GET stream, or a POST whose answer is a stream. */
export function openSse(url: string, options: { method?: string; headers: Record<string, string>; body?: string }): SseStream {
  let text = "";
  let request_: ClientRequest;
  const waiters: (() => void)[] = [];
  let resolveEnded!: () => void;
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  const parse = () =>
    text
      .split("\n\n")
      .slice(0, -1)
      .map((block) => {
        const event: { id?: string; retry?: string; data?: string } = {};
        for (const lineText of block.split("\n")) {
          const match = /^(id|retry|data): ?(.*)$/.exec(lineText);
          if (match) event[match[1] as "id" | "retry" | "data"] = match[2];
        }
        return event;
      });
  const status = new Promise<number>((resolve, reject) => {
    request_ = request(url, { method: options.method ?? "GET", headers: options.headers }, (res) => {
      resolve(res.statusCode ?? 0);
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
        for (const waiter of waiters.splice(0)) waiter();
      });
      res.on("end", resolveEnded);
      res.on("close", resolveEnded);
      res.on("error", resolveEnded);
    });
    request_.on("error", (error) => {
      resolveEnded();
      reject(error);
    });
    if (options.body !== undefined) request_.write(options.body);
    request_.end();
  });
  status.catch(() => undefined);
  return {
    status,
    ended,
    text: () => text,
    events: parse,
    waitFor: async (test) => {
      for (;;) {
        const found = parse().find(test);
        if (found) return found;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    abort: () => request_.destroy(),
  };
}

/** The session's GET stream. */
export function openGetStream(url: string, key: string | null, sessionId: string, extra: Record<string, string> = {}): SseStream {
  return openSse(url, {
    headers: { Accept: "text/event-stream", ...bearer(key), "Mcp-Session-Id": sessionId, "Mcp-Protocol-Version": "2025-11-25", ...extra },
  });
}
