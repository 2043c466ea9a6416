// Shared pieces of the reliability suite: spawning the built binary with a handle on its process,
// calling tools without throwing, scanning bytes for any trace of a secret, and the database of
// either engine a test runs on, with each engine's own way to look into it.
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import Database from "better-sqlite3";
import postgres from "postgres";
import { createTokenHasher } from "../../src/keys/hash.js";
import { makeTempDir, secretOf } from "../helpers/harness.js";
import { spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";
import { CLI, assertBuilt, cleanEnv } from "../helpers/spawn.js";

export { CLI, assertBuilt, cleanEnv };

export interface StdioChild {
  client: Client;
  /** The server process id (for SIGKILL and /proc). */
  pid: number;
  /** Resolves once the server process has gone, however it went. */
  exited: Promise<void>;
  connected: Promise<void>;
  stderr: () => string;
  kill: (signal?: NodeJS.Signals) => void;
  close: () => Promise<void>;
}

/**
 * Spawns `node dist/cli.js <args>` over stdio and starts connecting a real MCP client to it. The
 * process exists (pid known) when this returns; `connected` says when the MCP handshake is done.
 */
export function spawnChild(args: string[], env: Record<string, string> = {}): StdioChild {
  assertBuilt();
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, ...args], env: cleanEnv(env), stderr: "pipe" });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const client = new Client({ name: "keywarden-reliability", version: "0" });
  let onExit!: () => void;
  const exited = new Promise<void>((resolve) => (onExit = resolve));
  // Protocol.connect runs synchronously up to transport.start(), which spawns the process.
  const connected = client.connect(transport);
  connected.catch(() => undefined);
  const previous = transport.onclose;
  transport.onclose = () => {
    previous?.();
    onExit();
  };
  const pid = transport.pid;
  if (pid === null) throw new Error("the server process did not start");
  return {
    client,
    pid,
    exited,
    connected,
    stderr: () => stderr,
    kill: (signal = "SIGKILL") => {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    },
    close: async () => {
      await client.close().catch(() => undefined);
    },
  };
}

export interface ToolOutcome {
  ok: boolean;
  /** structuredContent on success, the error body on failure. */
  body: Record<string, unknown>;
  /** The error code on failure. */
  code: string | null;
  /** The whole result as the client received it, serialized. */
  raw: string;
}

/** Calls a tool; a tool error is an outcome, not an exception (transport failures still throw). */
export async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<ToolOutcome> {
  const result = await client.callTool({ name, arguments: args }, undefined, { timeout: 60_000 });
  const raw = JSON.stringify(result);
  if (result.isError) {
    const text = (result.content as { type: string; text: string }[])[0]?.text ?? "";
    const body = JSON.parse(text) as { error: { code: string } };
    return { ok: false, body: body.error as unknown as Record<string, unknown>, code: body.error.code, raw };
  }
  return { ok: true, body: result.structuredContent as Record<string, unknown>, code: null, raw };
}

/** Calls a tool that must succeed. */
export async function callOk<T = Record<string, unknown>>(client: Client, name: string, args: Record<string, unknown> = {}): Promise<T> {
  const outcome = await call(client, name, args);
  if (!outcome.ok) throw new Error(`${name} failed: ${outcome.raw}`);
  return outcome.body as T;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `work` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]!, index);
      }
    }),
  );
  return results;
}

/**
 * Finds secrets in text or bytes. Every window of a needle (12 characters of a secret, 16 of a
 * base64 hash, 24 of a hex hash) is indexed, so a leak of any part that long is found, not only of
 * the whole secret, and a scan costs one pass over the haystack per window length, whatever the
 * number of needles. 12 base62 characters are about 71 bits: no false positive in practice.
 */
export class SecretScanner {
  static readonly SECRET_WINDOW = 12;
  private readonly byWindow = new Map<number, Map<string, string>>();
  private needles = 0;

  /** Adds a needle: its label says what it was (for the failure message). */
  add(needle: string, label: string, window = SecretScanner.SECRET_WINDOW): void {
    if (needle.length < window) throw new Error(`needle shorter than ${window}: ${label}`);
    let windows = this.byWindow.get(window);
    if (!windows) this.byWindow.set(window, (windows = new Map()));
    for (let i = 0; i + window <= needle.length; i++) windows.set(needle.slice(i, i + window), label);
    this.needles++;
  }

  /**
   * Adds a token's secret part (secret + checksum), and, when `withHashes`, its stored hash in hex,
   * base64 and base64url (plain SHA-256 and, with a pepper, the HMAC): a hash belongs in the
   * database's hash column and nowhere else.
   */
  addToken(token: string, options: { pepper?: string; withHashes?: boolean } = {}): void {
    this.add(secretOf(token), `secret of ${token.slice(0, 15)}…`);
    if (!options.withHashes) return;
    const hashers = [createTokenHasher(), ...(options.pepper ? [createTokenHasher(options.pepper)] : [])];
    for (const hasher of hashers) {
      const hash = Buffer.from(hasher.hash(token));
      this.add(hash.toString("hex"), `hex hash of ${token.slice(0, 15)}…`, 24);
      this.add(hash.toString("base64"), `base64 hash of ${token.slice(0, 15)}…`, 16);
      this.add(hash.toString("base64url"), `base64url hash of ${token.slice(0, 15)}…`, 16);
    }
  }

  get size(): number {
    return this.needles;
  }

  /** Every distinct needle label found in the haystack (an empty array: nothing leaked). */
  scan(haystack: string | Buffer): string[] {
    const text = typeof haystack === "string" ? haystack : haystack.toString("latin1");
    const found = new Set<string>();
    const shortest = Math.min(...this.byWindow.keys());
    // Runs of characters a secret, a hex or a base64 hash can be made of; windows inside each run.
    const run = new RegExp(`[A-Za-z0-9+/=_-]{${shortest},}`, "g");
    for (let match = run.exec(text); match !== null; match = run.exec(text)) {
      const s = match[0];
      for (const [window, windows] of this.byWindow) {
        for (let i = 0; i + window <= s.length; i++) {
          const label = windows.get(s.slice(i, i + window));
          if (label !== undefined) found.add(label);
        }
      }
    }
    return [...found];
  }
}

/** Every regular file under `dir`, depth first (a directory that cannot be read is skipped). */
function filesUnder(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const path = join(dir, name);
    const stat = lstatSync(path, { throwIfNoEntry: false });
    return stat?.isDirectory() ? filesUnder(path) : stat?.isFile() ? [path] : [];
  });
}

export type Engine = "sqlite" | "postgres";

/** The engines the parametrised reliability tests run on. */
export const ENGINES: readonly Engine[] = ["sqlite", "postgres"];

/**
 * Whether a test on `engine` is skipped: PostgreSQL's without a server (the global setup says so
 * loudly, and fails the run under KEYWARDEN_REQUIRE_PG=1: test/helpers/pg-global-setup.ts).
 */
export const engineSkipped = (engine: Engine): boolean => engine === "postgres" && PG_URL === null;

/**
 * A fresh database of one engine for a test, and a view into it that is not keywarden's: the tests
 * judge keywarden's writes by reading the rows themselves.
 */
export interface TestDatabase {
  engine: Engine;
  /** What `--db` takes: the SQLite file's path, or the PostgreSQL database's URL. */
  db: string;
  /** Rows of one query, with `?` placeholders on either engine; counts cast to INTEGER come back as numbers. */
  all<T = Record<string, unknown>>(sql: string, ...params: unknown[]): Promise<T[]>;
  /**
   * Every row of every table as JSON text, each column as the engine gives it as text, except
   * api_keys.key_hash: a hash belongs there and nowhere else, so the rest is scanned for hashes too.
   */
  rowsAsText(): Promise<Record<string, string>>;
  /** The stored hashes as lowercase hex, one per key (where the hashes must be). */
  keyHashesHex(): Promise<string[]>;
  /**
   * The files holding the database's bytes as they are on disk now: SQLite's file, WAL and
   * shared-memory index; for PostgreSQL the whole data directory of the cluster the global setup
   * started (WAL segments under pg_wal, relation files, everything), or none when the server was
   * given by URL and its files are out of reach.
   */
  files(): string[];
  /** PostgreSQL's server log (the cluster's stderr), or null: SQLite has none, a server given by URL is out of reach. */
  serverLogFile: string | null;
  /** Closes the view and removes the database. */
  close(): Promise<void>;
}

/** A new empty database of `engine`: a file in a temporary directory, or a database on the test server. */
export async function openTestDatabase(engine: Engine): Promise<TestDatabase> {
  return engine === "sqlite" ? openSqliteTestDatabase() : openPostgresTestDatabase();
}

function openSqliteTestDatabase(): TestDatabase {
  const temp = makeTempDir();
  const db = join(temp.dir, "keywarden.db");
  // A connection per read, closed at once: the file exists only once keywarden has created it, and
  // a connection left open would keep the last server to close from folding the WAL into the file.
  const all = async <T>(sql: string, ...params: unknown[]) => {
    const reader = new Database(db, { readonly: true });
    try {
      return reader.prepare(sql).all(...params) as T[];
    } finally {
      reader.close();
    }
  };
  return {
    engine: "sqlite",
    db,
    all,
    async rowsAsText() {
      const tables = await all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
      const text: Record<string, string> = {};
      for (const { name } of tables) {
        const rows = await all<Record<string, unknown>>(`SELECT * FROM "${name}"`);
        text[name] = JSON.stringify(rows.map((row) => ({ ...row, key_hash: undefined })));
      }
      return text;
    },
    async keyHashesHex() {
      return (await all<{ h: string }>("SELECT lower(hex(key_hash)) AS h FROM api_keys")).map((row) => row.h);
    },
    files: () => [db, `${db}-wal`, `${db}-shm`].filter(existsSync),
    serverLogFile: null,
    async close() {
      temp.cleanup();
    },
  };
}

async function openPostgresTestDatabase(): Promise<TestDatabase> {
  const database = await createTestDatabase();
  const reader = postgres(database.url, { max: 1, onnotice: () => undefined });
  // `?` to `$n`: the SQL of these tests has no `?` of its own.
  const all = async <T>(sql: string, ...params: unknown[]) => {
    let n = 0;
    const text = sql.replace(/\?/g, () => `$${++n}`);
    return [...(await reader.unsafe(text, params as postgres.ParameterOrJSON<never>[]))] as T[];
  };
  const dataDir = process.env.KEYWARDEN_TEST_PG_DATA ?? null;
  const logFile = process.env.KEYWARDEN_TEST_PG_LOG ?? null;
  return {
    engine: "postgres",
    db: database.url,
    all,
    async rowsAsText() {
      const columns = await all<{ table_name: string; column_name: string }>(
        `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()
         ORDER BY table_name, ordinal_position`,
      );
      const byTable = new Map<string, string[]>();
      for (const { table_name, column_name } of columns) {
        if (table_name === "api_keys" && column_name === "key_hash") continue;
        byTable.set(table_name, [...(byTable.get(table_name) ?? []), column_name]);
      }
      const text: Record<string, string> = {};
      for (const [table, names] of byTable) {
        const rows = await all(`SELECT ${names.map((name) => `"${name}"::text AS "${name}"`).join(", ")} FROM "${table}"`);
        text[table] = JSON.stringify(rows);
      }
      return text;
    },
    async keyHashesHex() {
      return (await all<{ h: string }>("SELECT encode(key_hash, 'hex') AS h FROM api_keys")).map((row) => row.h);
    },
    files: () => (dataDir ? filesUnder(dataDir) : []),
    serverLogFile: logFile,
    async close() {
      await reader.end({ timeout: 1 });
      await database.drop();
    },
  };
}

/** Resident memory of a process in kB, from /proc. */
export function residentKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}

export interface MintedKey {
  id: string;
  key: string;
  key_prefix: string;
  user_id: string;
  scopes: string[];
}

/**
 * The built library's store on `db`, as `--db` reads it: a postgres:// URL is PostgreSQL
 * (`keywarden/postgres`), anything else a SQLite path (`keywarden`).
 */
export async function openBuiltStore(db: string): Promise<import("../../dist/index.js").KeyStore> {
  if (/^postgres(ql)?:\/\//.test(db)) {
    const { PostgresKeyStore } = await import("../../dist/postgres.js");
    return PostgresKeyStore.open({ url: db });
  }
  const { SqliteKeyStore } = await import("../../dist/index.js");
  return SqliteKeyStore.open({ path: db });
}

/**
 * Mints keys straight into a database with the built library (what `keywarden admin create-key`
 * does, without a process per key): `user` gets a key with exactly `scopes`. Pass the pepper the
 * servers will run with.
 */
export async function mintKeys(
  db: string,
  specs: { user: string; name: string; scopes: string[] }[],
  options: { pepper?: string } = {},
): Promise<MintedKey[]> {
  const store = await openBuiltStore(db);
  const { KeyService } = await import("../../dist/index.js");
  try {
    const service = new KeyService({ store, pepper: options.pepper });
    const minted: MintedKey[] = [];
    for (const spec of specs) {
      const principal = await service.localPrincipal({ userName: spec.user, transport: "cli", isAdmin: true });
      const created = await service.createApiKey(principal, { name: spec.name, scopes: spec.scopes });
      minted.push({ id: created.id, key: created.key, key_prefix: created.key_prefix, user_id: created.user_id, scopes: created.scopes });
    }
    return minted;
  } finally {
    await store.close();
  }
}

/**
 * fetch for long-lived test clients. The SDK's client transport hands every request the one
 * AbortSignal of the transport, and fetch adds a listener to it per request that stays until the
 * response is garbage-collected: thousands of calls on one session trip MaxListenersExceeded in the
 * test process. Here each request gets its own signal, linked to the transport's until its body ends.
 */
export const linkedSignalFetch: typeof fetch = async (input, init) => {
  const parent = init?.signal;
  if (!parent) return fetch(input, init);
  const controller = new AbortController();
  const forward = () => controller.abort(parent.reason);
  const unlink = () => parent.removeEventListener("abort", forward);
  if (parent.aborted) controller.abort(parent.reason);
  else parent.addEventListener("abort", forward, { once: true });
  let response: Response;
  try {
    response = await fetch(input, { ...init, signal: controller.signal });
  } catch (error) {
    unlink();
    throw error;
  }
  if (!response.body) {
    unlink();
    return response;
  }
  const body = response.body.pipeThrough(new TransformStream({ flush: unlink }));
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
};

/** A real MCP client over Streamable HTTP with `key` as the bearer token. */
export async function connectHttp(url: string, key: string, userAgent = "keywarden-reliability/1.0") {
  const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}`, "User-Agent": userAgent } },
    fetch: linkedSignalFetch,
  });
  const client = new Client({ name: "keywarden-reliability", version: "0" });
  await client.connect(transport);
  return { client, transport };
}

/** A spawned `keywarden serve` with a real MCP client of its own over Streamable HTTP. */
export interface ServeInstance {
  server: HttpServerProcess;
  client: Client;
  /** The server's stderr (its log). */
  stderr: () => string;
  /** Ends the client's session and the server (SIGTERM). */
  close: () => Promise<void>;
}

/** Spawns `keywarden serve --db <db> <args>` and connects a client to it with `key` as the bearer. */
export async function spawnServeInstance(db: string, key: string, args: string[] = [], env: Record<string, string> = {}): Promise<ServeInstance> {
  const server = await spawnHttpServer(["--db", db, ...args], env);
  try {
    const { client, transport } = await connectHttp(server.url, key);
    return {
      server,
      client,
      stderr: server.stderr,
      close: async () => {
        await transport.terminateSession().catch(() => undefined);
        await client.close().catch(() => undefined);
        await server.stop();
      },
    };
  } catch (error) {
    await server.stop("SIGKILL");
    throw error;
  }
}

/** Lines of a keywarden log at level error (50) or fatal (60): faults no test expects. */
export const faultLines = (log: string): string[] => log.split("\n").filter((line) => /"level":(50|60)/.test(line));

export interface RawExchange {
  /** The status of the first response, or null when the server closed without one. */
  status: number | null;
  /** Everything the server sent, as latin1 text. */
  text: string;
  /** True when nothing came back within the timeout: a hang. */
  timedOut: boolean;
  ms: number;
}

/**
 * Sends bytes exactly as given over a fresh TCP connection (headers, framing and all) and reads
 * until the server closes the connection or `timeoutMs` passes. `halfClose` ends the sending side
 * after the payload, as a client that died mid-request would.
 */
export async function rawExchange(
  port: number,
  payload: string | Buffer,
  options: { halfClose?: boolean; timeoutMs?: number } = {},
): Promise<RawExchange> {
  const { createConnection } = await import("node:net");
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (timedOut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: match ? Number(match[1]) : null, text, timedOut, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(true), options.timeoutMs ?? 10_000);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("end", () => finish(false));
    socket.on("close", () => finish(false));
    socket.on("error", () => finish(false));
    socket.on("connect", () => {
      socket.write(payload, () => {
        if (options.halfClose) socket.end();
      });
    });
  });
}
