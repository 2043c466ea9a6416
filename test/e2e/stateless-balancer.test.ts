import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/keys/token.js";
import { startBalancer } from "../helpers/balancer.js";
import { ALL_TOOL_NAMES, callEveryTool } from "../helpers/every-tool.js";
import { makeTempDir } from "../helpers/harness.js";
import { connectHttpClient, initializeBody, MCP_HEADERS, mintKey, rawRequest, spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";

// Two `keywarden serve --stateless` processes on one SQLite file behind a round-robin balancer:
// the built binary, its own batching of last use and auth.failed, and its shutdown.

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The JSON log lines of a process with `msg` equal to `message`. */
const logLines = (server: HttpServerProcess, message: string): Record<string, unknown>[] =>
  server
    .stderr()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === message);

describe("keywarden serve --stateless: two processes behind a round-robin balancer", () => {
  it("serves every tool to one client, counts failures per process, and keeps the newest last use whichever process writes last", async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const db = join(dir, "keywarden.db");
    const admin = mintKey(db, "ops", "bootstrap", "admin");
    // One by the flag, one by its environment variable (README, Configuration).
    const servers = [
      await spawnHttpServer(["--db", db, "--stateless", "--log-level", "debug", "--auth-failure-limit", "2"]),
      await spawnHttpServer(["--db", db, "--log-level", "debug", "--auth-failure-limit", "2"], { KEYWARDEN_STATELESS: "1" }),
    ] as const;
    for (const server of servers) cleanups.push(() => server.stop());
    for (const server of servers) expect(logLines(server, "keywarden http server listening")[0]).toMatchObject({ stateless: true });
    const balancer = await startBalancer(servers.map((server) => server.base));
    cleanups.push(() => balancer.close());

    const { client } = await connectHttpClient(balancer.url, admin.key, "balanced-agent/1.0");
    cleanups.push(() => client.close());
    const called = await callEveryTool(client, admin.id);
    expect(new Set(called)).toEqual(new Set(ALL_TOOL_NAMES));
    const toolsOf = (server: HttpServerProcess) => logLines(server, "tool call").map((line) => String(line.tool));
    expect(toolsOf(servers[0]).length).toBeGreaterThan(3);
    expect(toolsOf(servers[1]).length).toBeGreaterThan(3);
    expect([...toolsOf(servers[0]), ...toolsOf(servers[1])].sort()).toEqual([...called].sort());
    expect(balancer.forwarded.filter((request) => request.method === "POST" && request.status >= 300)).toEqual([]);

    // Failed authentications: each process counts its own (2 each before 429).
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const bad = generateToken("kw").token;
      statuses.push((await rawRequest(balancer.url, { method: "POST", headers: { ...MCP_HEADERS, Authorization: `Bearer ${bad}` }, body: initializeBody() })).status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);

    // Two uses of the admin key, one per process, the newer one last; then the process holding the
    // newer use stops first, so the older batch is written after it.
    const probe = async (userAgent: string): Promise<number> => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      const headers = { ...MCP_HEADERS, Authorization: `Bearer ${admin.key}`, "User-Agent": userAgent };
      expect((await rawRequest(balancer.url, { method: "POST", headers, body: initializeBody() })).status).toBe(200);
      return balancer.forwarded.at(-1)!.upstream;
    };
    const older = (await probe("older-probe")) as 0 | 1;
    const newer = (await probe("newer-probe")) as 0 | 1;
    expect(newer).toBe(1 - older);
    expect(await servers[newer].stop()).toBe(0);
    expect(await servers[older].stop()).toBe(0);

    const check = new Database(db, { readonly: true });
    try {
      const use = check.prepare("SELECT last_used_user_agent AS agent, last_used_ip AS ip FROM key_usage WHERE key_id = ?").get(admin.id);
      expect(use).toStrictEqual({ agent: "newer-probe", ip: "127.0.0.1" });
      const failed = check
        .prepare("SELECT detail FROM key_events WHERE event_type = 'auth.failed' ORDER BY rowid")
        .all()
        .map((row) => JSON.parse((row as { detail: string }).detail) as Record<string, unknown>);
      expect(failed.filter((detail) => detail.reason === "not_found").map((detail) => detail.failures_in_window).sort()).toEqual([1, 1, 2, 2]);
      expect(failed.filter((detail) => detail.reason === "not_recorded")).toStrictEqual([
        { reason: "not_recorded", count: 1, buffer_full: 0, over_limit: 1 },
        { reason: "not_recorded", count: 1, buffer_full: 0, over_limit: 1 },
      ]);
    } finally {
      check.close();
    }
  });
});
