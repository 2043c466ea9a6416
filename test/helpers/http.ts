import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, type ElicitRequest, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { assertBuilt, cleanEnv, CLI, runCli } from "./spawn.js";

export interface HttpServerProcess {
  /** The MCP endpoint, http://127.0.0.1:PORT/mcp. */
  url: string;
  /** http://127.0.0.1:PORT */
  base: string;
  port: number;
  child: ChildProcess;
  stderr: () => string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** Sends the signal (SIGTERM by default) and waits for the exit. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Spawns `keywarden serve --port 0 …` and waits for its "listening" line to learn the port. */
export async function spawnHttpServer(args: string[], env: Record<string, string> = {}): Promise<HttpServerProcess> {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", ...args], {
    env: cleanEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    // A server that never says it listens is killed, not left running after the test gives up on it.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`keywarden serve did not start:\n${stderr}`));
    }, 20_000);
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      const match = /"url":"(http:[^"]+)".*"msg":"keywarden http server listening"/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`keywarden serve exited with ${code}:\n${stderr}`));
    });
  });
  const port = Number(new URL(url).port);
  return {
    url,
    base: `http://127.0.0.1:${port}`,
    port,
    child,
    stderr: () => stderr + (stdout ? `\n[stdout!] ${stdout}` : ""),
    exited,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface CreatedKey {
  id: string;
  key: string;
  key_prefix: string;
  user_id: string;
  scopes: string[];
  expires_at: string | null;
}

/** `keywarden admin create-key --json`: a real key in the database. */
export function mintKey(db: string, user: string, name: string, scopes: string, extra: string[] = []): CreatedKey {
  const { status, stdout, stderr } = runCli(["admin", "create-key", "--db", db, "--user", user, "--name", name, "--scopes", scopes, "--json", ...extra]);
  if (status !== 0) throw new Error(`create-key failed (${status}): ${stderr}`);
  return JSON.parse(stdout) as CreatedKey;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => unknown;
}

/** One HTTP request with full control of the headers (Host and Origin included) and the body. */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; target?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // `target` replaces the request target sent on the wire (an absolute URL, as to a proxy).
    const targetOption = options.target === undefined ? {} : { path: options.target };
    const req = request(url, { method: options.method ?? "GET", headers: options.headers, ...targetOption }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
      res.on("error", reject);
    });
    // The server may answer (413, 401) before it has read a large body: that is not a failure here.
    req.on("error", (error: NodeJS.ErrnoException) => (error.code === "EPIPE" || error.code === "ECONNRESET" ? undefined : reject(error)));
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export const MCP_HEADERS = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };

export const initializeBody = (id = 1) =>
  JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw-test", version: "0" } },
  });

export const rpcBody = (method: string, params: Record<string, unknown> = {}, id = 2) => JSON.stringify({ jsonrpc: "2.0", id, method, params });

/**
 * A real MCP client over Streamable HTTP with the key as bearer token (none: no header). With
 * `answerElicitation` it declares the elicitation capability and answers questions with it.
 */
export async function connectHttpClient(
  url: string,
  key: string | null,
  userAgent = "keywarden-http-test/1.0",
  answerElicitation?: (request: ElicitRequest) => ElicitResult,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const headers: Record<string, string> = { "User-Agent": userAgent };
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: "keywarden-http-test", version: "0" }, answerElicitation ? { capabilities: { elicitation: {} } } : {});
  if (answerElicitation) client.setRequestHandler(ElicitRequestSchema, (request) => answerElicitation(request));
  await client.connect(transport);
  return { client, transport };
}

/** The JSON body of a tool error result. */
export function toolError(callResult: object): { code: string; message: string; errors: unknown[] } {
  const result = callResult as { isError?: boolean; content?: unknown };
  if (result.isError !== true) throw new Error(`expected a tool error, got ${JSON.stringify(result).slice(0, 300)}`);
  return (JSON.parse((result.content as { text: string }[])[0]!.text) as { error: { code: string; message: string; errors: unknown[] } }).error;
}
