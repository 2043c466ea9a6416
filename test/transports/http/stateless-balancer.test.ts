import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { generateToken } from "../../../src/keys/token.js";
import { startBalancer, type Balancer } from "../../helpers/balancer.js";
import { ALL_TOOL_NAMES, callEveryTool } from "../../helpers/every-tool.js";
import { makeTempDir } from "../../helpers/harness.js";
import { connectHttpClient, initializeBody, MCP_HEADERS, rawRequest, rpcBody } from "../../helpers/http.js";
import { startInProcess, type InProcessServer } from "../../helpers/inprocess.js";
import { callError, callOk } from "../../helpers/lifecycle.js";

// `serve --stateless` as the README says to run it for a balancer: two instances, each with its own
// store connection and its own batching recorders (as `keywarden serve` has them), on one SQLite
// file, behind a round-robin balancer that knows nothing of MCP.

interface Pair {
  instances: [InProcessServer, InProcessServer];
  balancer: Balancer;
  dbPath: string;
  close(): Promise<void>;
}

async function startPair(options: { authFailureLimit?: number } = {}): Promise<Pair> {
  const { dir, cleanup } = makeTempDir();
  const dbPath = join(dir, "keywarden.db");
  const start = () => startInProcess({ stateless: true, dbPath, batchedWrites: true, debugLog: true, authFailureWindowMs: 60_000, ...options });
  const first = await start();
  const second = await start();
  const balancer = await startBalancer([first, second].map((instance) => new URL(instance.url).origin));
  return {
    instances: [first, second],
    balancer,
    dbPath,
    close: async () => {
      await balancer.close();
      await first.close();
      await second.close();
      cleanup();
    },
  };
}

const bearer = (key: string): Record<string, string> => ({ Authorization: `Bearer ${key}` });
/** Every audit event of the database, oldest first (read through one instance's store). */
async function allEvents(instance: InProcessServer, keyId: string | null = null) {
  const organizationId = (await instance.store.ensureDefaultOrganization(new Date().toISOString())).id;
  const entries = await instance.store.listKeyEvents({ organizationId, keyId, ownerUserId: null, after: null, limit: 1000 });
  return entries.map((entry) => entry.event);
}
const debugLines = (instance: InProcessServer, message: string) => instance.log.filter((line) => line.level === "debug" && line.message === message);

describe("two --stateless instances on one SQLite file behind a round-robin balancer", () => {
  let pair: Pair;
  const clients: Client[] = [];
  beforeAll(async () => {
    pair = await startPair();
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
  });
  afterAll(() => pair.close());

  it("serves initialize, tools/list and every tool to a real MCP client, its requests alternating between the instances", async () => {
    const [a, b] = pair.instances;
    const admin = await a.mint("bootstrap", ["admin"], "ops");
    const { client } = await connectHttpClient(pair.balancer.url, admin.key);
    clients.push(client);
    const called = await callEveryTool(client, admin.id);
    expect(new Set(called)).toEqual(new Set(ALL_TOOL_NAMES));

    const forwarded = pair.balancer.forwarded;
    expect(forwarded.map((request) => request.upstream)).toEqual(forwarded.map((_request, i) => i % 2));
    // No session: nothing names one, and every POST was answered by the instance it reached.
    expect(forwarded.filter((request) => request.headers["mcp-session-id"] !== undefined)).toEqual([]);
    expect(forwarded.filter((request) => request.method === "POST" && request.status >= 300)).toEqual([]);
    expect(forwarded.filter((request) => request.rpc[0] === "initialize")).toHaveLength(1);

    // Each instance saw its share, by its own request log, and ran tool calls of its own.
    await vi.waitFor(() => {
      for (const upstream of [0, 1]) {
        expect(debugLines(pair.instances[upstream]!, "http request")).toHaveLength(forwarded.filter((request) => request.upstream === upstream).length);
      }
    });
    const toolsOf = (instance: InProcessServer) => debugLines(instance, "tool call").map((line) => String(line.object.tool));
    expect(toolsOf(a).length).toBeGreaterThan(3);
    expect(toolsOf(b).length).toBeGreaterThan(3);
    expect([...toolsOf(a), ...toolsOf(b)].sort()).toEqual([...called].sort());
    expect(debugLines(a, "tool call").concat(debugLines(b, "tool call")).every((line) => line.object.outcome === "ok")).toBe(true);
  });

  it("answers GET and DELETE with 405 and the JSON-RPC envelope on each instance, and opens no session on initialize", async () => {
    const key = await pair.instances[0].mint("reader", ["tools:read"], "bob");
    const from = pair.balancer.forwarded.length;
    for (const method of ["GET", "GET", "DELETE", "DELETE"]) {
      const response = await rawRequest(pair.balancer.url, { method, headers: { Accept: "text/event-stream", ...bearer(key.key) } });
      expect([response.status, response.headers.allow, response.json()], method).toStrictEqual([
        405,
        "POST",
        { jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed: use POST" }, id: null },
      ]);
    }
    expect(new Set(pair.balancer.forwarded.slice(from).map((request) => request.upstream))).toEqual(new Set([0, 1]));
    const opened = await rawRequest(pair.balancer.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key.key) }, body: initializeBody() });
    expect(opened.status).toBe(200);
    expect(opened.headers["mcp-session-id"]).toBeUndefined();
    // One that is sent anyway (a client that once had a stateful server) is ignored, not a 404.
    const withId = { ...MCP_HEADERS, ...bearer(key.key), "Mcp-Session-Id": "from-another-server", "Mcp-Protocol-Version": "2025-11-25" };
    for (let i = 0; i < 2; i++) expect((await rawRequest(pair.balancer.url, { method: "POST", headers: withId, body: rpcBody("tools/list") })).status).toBe(200);
    // Each request authenticates on its own: no key, no answer, whichever instance it reaches.
    for (let i = 0; i < 2; i++) expect((await rawRequest(pair.balancer.url, { method: "POST", headers: MCP_HEADERS, body: rpcBody("tools/list") })).status).toBe(401);
  });

  it("refuses to stop a working key, without asking, even a client that could answer: it cannot be asked here", async () => {
    const [a] = pair.instances;
    const acting = await a.mint("agent", ["tools:read", "tools:execute"], "carol");
    const target = await a.mint("deploy", ["tools:read"], "carol");
    const questions: string[] = [];
    const { client } = await connectHttpClient(pair.balancer.url, acting.key, "willing/1.0", (request) => {
      questions.push(request.params.message);
      return { action: "accept", content: {} };
    });
    clients.push(client);
    const eventsBefore = await allEvents(a, target.id);
    // Twice each, so that both instances refuse.
    for (const [tool, args] of [["revoke_api_key", { id: target.id }], ["revoke_api_key", { id: target.id }], ["rotate_api_key", { id: target.id }], ["rotate_api_key", { id: target.id, grace_period_seconds: 0 }]] as const) {
      const error = await callError(client, tool, args);
      expect(error, tool).toEqual({
        code: "confirmation_declined",
        message: expect.stringMatching(/^the user could not be asked to confirm: .*\(keywarden serve --stateless\); nothing was changed\. /),
        errors: [{ key: "id", message: "cannot_ask", value: target.id }],
      });
    }
    expect(questions).toEqual([]);
    expect(await callOk(client, "verify_api_key", { key: target.key })).toMatchObject({ valid: true, code: "valid" });
    expect(await callOk(client, "get_api_key", { id: target.id })).toMatchObject({ status: "active", revoked_at: null, replaced_by: null });
    expect(await allEvents(a, target.id)).toEqual(eventsBefore);
  });
});

describe("writes from two --stateless instances", () => {
  let pair: Pair;
  afterEach(() => pair.close());

  it("last use never goes backwards: an instance's older batch written after another's newer one changes nothing", async () => {
    pair = await startPair();
    const [a, b] = pair.instances;
    const key = await a.mint("probe", ["tools:read"], "dave");
    const lastUse = async () => {
      const record = (await a.store.getKeyById(key.id))!;
      return { at: record.last_used_at, userAgent: record.last_used_user_agent };
    };
    // Request i reaches instance i % 2 (the balancer's turn starts at a for this pair).
    const use = async (i: number) => {
      await new Promise((resolve) => setTimeout(resolve, 5)); // distinct milliseconds: "newer" is strict
      const response = await rawRequest(pair.balancer.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key.key), "User-Agent": `probe-${i}` }, body: initializeBody() });
      expect(response.status).toBe(200);
      expect(pair.balancer.forwarded.at(-1)!.upstream).toBe(i % 2);
    };
    const seen: (string | null)[] = [];
    for (const round of [0, 2]) {
      await use(round); // a holds the older use
      await use(round + 1); // b the newer
      await b.flush();
      seen.push((await lastUse()).userAgent);
      const newest = await lastUse();
      await a.flush(); // the older batch arrives last
      expect(await lastUse()).toEqual(newest);
      seen.push((await lastUse()).userAgent);
    }
    expect(seen).toEqual(["probe-1", "probe-1", "probe-3", "probe-3"]);
    // And a newer use through a, after b's: it wins.
    await use(4);
    await a.flush();
    await b.flush();
    expect((await lastUse()).userAgent).toBe("probe-4");
  });

  it("auth.failed batches of both instances land; the 429 limit counts per instance, so a client gets limit × instances failures", async () => {
    pair = await startPair({ authFailureLimit: 3 });
    const [a, b] = pair.instances;
    const good = await a.mint("good", ["tools:read"], "erin");
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const bad = generateToken("kw").token;
      statuses.push((await rawRequest(pair.balancer.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(bad) }, body: initializeBody() })).status);
    }
    // 3 per instance answered 401, then each instance's own window is full (README, --stateless).
    expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 429, 429]);
    // A valid key is still served by both.
    for (let i = 0; i < 2; i++) {
      expect((await rawRequest(pair.balancer.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(good.key) }, body: initializeBody() })).status).toBe(200);
    }
    await a.flush();
    await b.flush();
    const failed = (await allEvents(a)).filter((event) => event.event_type === "auth.failed");
    const details = failed.map((event) => event.detail as Record<string, unknown>);
    // Each instance counted its own failures 1, 2, 3, and each wrote its own summary of the one over its limit.
    expect(details.filter((detail) => detail.reason === "not_found").map((detail) => detail.failures_in_window).sort()).toEqual([1, 1, 2, 2, 3, 3]);
    expect(details.filter((detail) => detail.reason === "not_recorded")).toEqual([
      { reason: "not_recorded", count: 1, buffer_full: 0, over_limit: 1 },
      { reason: "not_recorded", count: 1, buffer_full: 0, over_limit: 1 },
    ]);
    expect(failed.every((event) => event.client_address === "127.0.0.1" || event.client_address === null)).toBe(true);
  });
});
