// Shared pieces of the reliability suite: spawning the built binary with a handle on its process,
// calling tools without throwing, and scanning bytes for any trace of a secret.
import { existsSync, readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { createTokenHasher } from "../../src/keys/hash.js";
import { secretOf } from "../helpers/harness.js";
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
 * Finds secrets in text or bytes. Every window of WINDOW characters of every needle is indexed, so
 * a leak of any 16 consecutive characters of a secret (not only the whole secret) is found, and a
 * scan costs one pass over the haystack whatever the number of needles.
 */
export class SecretScanner {
  static readonly WINDOW = 16;
  private readonly windows = new Map<string, string>();
  private readonly needleCount = { value: 0 };

  /** Adds a needle: its label says what it was (for the failure message). */
  add(needle: string, label: string): void {
    if (needle.length < SecretScanner.WINDOW) throw new Error(`needle shorter than ${SecretScanner.WINDOW}: ${label}`);
    for (let i = 0; i + SecretScanner.WINDOW <= needle.length; i++) {
      this.windows.set(needle.slice(i, i + SecretScanner.WINDOW), label);
    }
    this.needleCount.value++;
  }

  /**
   * Adds a token's secret part (secret + checksum), and, when `withHashes`, its stored hash in hex,
   * base64 and base64url (plain SHA-256 and, with a pepper, the HMAC): a hash belongs in the
   * database and nowhere else.
   */
  addToken(token: string, options: { pepper?: string; withHashes?: boolean } = {}): void {
    this.add(secretOf(token), `secret of ${token.slice(0, 15)}…`);
    if (!options.withHashes) return;
    const hashers = [createTokenHasher(), ...(options.pepper ? [createTokenHasher(options.pepper)] : [])];
    for (const hasher of hashers) {
      const hash = Buffer.from(hasher.hash(token));
      for (const encoding of ["hex", "base64", "base64url"] as const) {
        this.add(hash.toString(encoding), `${encoding} hash of ${token.slice(0, 15)}…`);
      }
    }
  }

  get size(): number {
    return this.needleCount.value;
  }

  /** Every distinct needle label found in the haystack (an empty array: nothing leaked). */
  scan(haystack: string | Buffer): string[] {
    const text = typeof haystack === "string" ? haystack : haystack.toString("latin1");
    const found = new Set<string>();
    const W = SecretScanner.WINDOW;
    // Runs of characters a secret, a hex or a base64 hash can be made of; windows inside each run.
    const run = /[A-Za-z0-9+/=_-]{16,}/g;
    for (let match = run.exec(text); match !== null; match = run.exec(text)) {
      const s = match[0];
      for (let i = 0; i + W <= s.length; i++) {
        const label = this.windows.get(s.slice(i, i + W));
        if (label !== undefined) found.add(label);
      }
    }
    return [...found];
  }
}

/** The database file and its WAL and shared-memory index, as they are on disk right now. */
export function databaseFiles(dbPath: string): { file: string; bytes: Buffer }[] {
  return [dbPath, `${dbPath}-wal`, `${dbPath}-shm`].filter(existsSync).map((file) => ({ file, bytes: readFileSync(file) }));
}

/** Resident memory of a process in kB, from /proc. */
export function residentKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}
