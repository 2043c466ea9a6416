import * as z from "zod";
import { afterEach, describe, expect, it } from "vitest";
import { allTools } from "../../../src/tools/index.js";
import { defineTool } from "../../../src/tools/tool.js";
import { initializeBody, MCP_HEADERS, rawRequest } from "../../helpers/http.js";
import { initialize, inSession, openGetStream, openSse, startInProcess, type InProcessServer } from "../../helpers/inprocess.js";
import { runCli } from "../../helpers/spawn.js";

// Sessions over real HTTP, in process (README, "Sessions"): no key can take the service from
// another, and a key that stops being good loses its sessions and streams, whichever process
// changed it. Where the old code failed, it did so by never ending a stream: those tests then
// run into their timeout.

const servers: InProcessServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});
async function start(options: Parameters<typeof startInProcess>[0] = {}): Promise<InProcessServer> {
  const server = await startInProcess(options);
  servers.push(server);
  return server;
}

const READ_EXECUTE = ["tools:read", "tools:execute"];

describe("session limits", () => {
  it("a key at --max-sessions-per-key gives up its least recently used session; another key is untouched", async () => {
    const kw = await start({ maxSessionsPerKey: 3 });
    const a = await kw.mint("a", READ_EXECUTE, "alice");
    const b = await kw.mint("b", READ_EXECUTE, "bob");
    const opened = [];
    for (let i = 0; i < 3; i++) opened.push((await initialize(kw.url, a.key)).sessionId!);
    const other = (await initialize(kw.url, b.key)).sessionId!;
    expect(await inSession(kw.url, a.key, opened[0]!)).toBe(200); // the first is used: the second is now the LRU

    const fourth = await initialize(kw.url, a.key);
    expect(fourth.status).toBe(200);
    expect(await inSession(kw.url, a.key, opened[1]!)).toBe(404);
    expect(await inSession(kw.url, a.key, opened[0]!)).toBe(200);
    expect(await inSession(kw.url, a.key, opened[2]!)).toBe(200);
    expect(await inSession(kw.url, a.key, fourth.sessionId!)).toBe(200);
    expect(await inSession(kw.url, b.key, other)).toBe(200);
    expect(kw.server.sessionCount()).toBe(4);
    expect(kw.closedSessions().get(opened[1]!.slice(0, 8))).toBe("evicted");
  });

  it("a full table (--max-sessions) answers 503 with Retry-After to a key with nothing to give up, and makes a key with sessions give up its own", async () => {
    const kw = await start({ maxSessions: 3, maxSessionsPerKey: 10 });
    const a = await kw.mint("a", READ_EXECUTE, "alice");
    const b = await kw.mint("b", READ_EXECUTE, "bob");
    const opened = [];
    for (let i = 0; i < 3; i++) opened.push((await initialize(kw.url, a.key)).sessionId!);

    const refused = await rawRequest(kw.url, { method: "POST", headers: { ...MCP_HEADERS, Authorization: `Bearer ${b.key}` }, body: initializeBody() });
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("60");
    expect(refused.json()).toStrictEqual({ jsonrpc: "2.0", error: { code: -32000, message: "too many open sessions; retry later" }, id: null });

    const own = await initialize(kw.url, a.key);
    expect(own.status).toBe(200);
    expect(await inSession(kw.url, a.key, opened[0]!)).toBe(404);
    expect(kw.server.sessionCount()).toBe(3);
  });

  it("a session idle for --session-idle-timeout is closed even while it holds a GET stream; its id then gets 404", async () => {
    const kw = await start({ sessionIdleTimeoutMs: 300 });
    const a = await kw.mint("a", READ_EXECUTE);
    const { sessionId } = await initialize(kw.url, a.key);
    const stream = openGetStream(kw.url, a.key, sessionId!);
    expect(await stream.status).toBe(200);
    await stream.ended;
    expect(await inSession(kw.url, a.key, sessionId!)).toBe(404);
    expect(kw.closedSessions().get(sessionId!.slice(0, 8))).toBe("idle");
    expect(kw.server.sessionCount()).toBe(0);
  }, 15_000);
});

describe("a key that stops being good loses its sessions and streams", () => {
  it("revoked (through the service, as revoke_api_key does): its streams end and its next request gets 401", async () => {
    const kw = await start({ keyWatchIntervalMs: 100 });
    const a = await kw.mint("a", READ_EXECUTE);
    const keep = await kw.mint("keep", READ_EXECUTE, "bob");
    const { sessionId } = await initialize(kw.url, a.key);
    const kept = (await initialize(kw.url, keep.key)).sessionId!;
    const stream = openGetStream(kw.url, a.key, sessionId!);
    expect(await stream.status).toBe(200);

    await kw.service.revokeApiKey(await kw.operator(), { id: a.id });
    await stream.ended;
    expect(kw.closedSessions().get(sessionId!.slice(0, 8))).toBe("revoked");
    expect(await inSession(kw.url, a.key, sessionId!)).toBe(401);
    expect(await inSession(kw.url, keep.key, kept)).toBe(200);
    expect(kw.server.sessionCount()).toBe(1);
  }, 15_000);

  it("revoked by another process on the same database (keywarden admin revoke-key): its streams end", async () => {
    const kw = await start({ keyWatchIntervalMs: 200 });
    const a = await kw.mint("a", READ_EXECUTE);
    const sessions = [(await initialize(kw.url, a.key)).sessionId!, (await initialize(kw.url, a.key)).sessionId!];
    const streams = sessions.map((id) => openGetStream(kw.url, a.key, id));
    for (const stream of streams) expect(await stream.status).toBe(200);

    const revoked = runCli(["admin", "revoke-key", a.id, "--db", kw.dbPath, "--reason", "leaked"]);
    expect(revoked.status, revoked.stderr).toBe(0);
    await Promise.all(streams.map((stream) => stream.ended));
    for (const id of sessions) expect(kw.closedSessions().get(id.slice(0, 8))).toBe("revoked");
    expect(kw.server.sessionCount()).toBe(0);
    expect(await inSession(kw.url, a.key, sessions[0]!)).toBe(401);
  }, 30_000);

  it("narrowed: the next request on its session gets 404 at once, and its stream ends", async () => {
    const kw = await start({ keyWatchIntervalMs: 100 });
    const a = await kw.mint("a", READ_EXECUTE);
    const { sessionId } = await initialize(kw.url, a.key);
    const stream = openGetStream(kw.url, a.key, sessionId!);
    expect(await stream.status).toBe(200);

    await kw.service.updateApiKey(await kw.operator(), { id: a.id, scopes: ["tools:read"] });
    expect(await inSession(kw.url, a.key, sessionId!)).toBe(404);
    await stream.ended;
    expect(kw.closedSessions().get(sessionId!.slice(0, 8))).toBe("scopes_changed");
    // The key itself still works: a new session opens with its new scopes.
    expect((await initialize(kw.url, a.key)).status).toBe(200);
  }, 15_000);

  it("expired: its sessions and streams end when it expires", async () => {
    const kw = await start({ keyWatchIntervalMs: 100 });
    const a = await kw.mint("a", READ_EXECUTE, "alice", new Date(Date.now() + 3000).toISOString());
    const { sessionId } = await initialize(kw.url, a.key);
    const stream = openGetStream(kw.url, a.key, sessionId!);
    expect(await stream.status).toBe(200);
    await stream.ended;
    expect(kw.closedSessions().get(sessionId!.slice(0, 8))).toBe("expired");
    expect(await inSession(kw.url, a.key, sessionId!)).toBe(401);
  }, 15_000);
});

describe("SSE resumability (Last-Event-ID)", () => {
  it("a POST stream starts with a priming event (an id, retry, empty data); a stream lost before its result resumes from the session's event store", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    const waitForGate = defineTool({
      name: "wait_for_gate",
      title: "Wait for the test's gate",
      description: "Answers once the test opens its gate.",
      group: "Audit",
      inputSchema: z.object({}).strict(),
      outputSchema: z.object({ opened: z.boolean() }).strict(),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
      scope: "tools:read",
      handler: async () => {
        await gate;
        setImmediate(finished);
        return { opened: true };
      },
    });
    const kw = await start({ tools: [...allTools, waitForGate] });
    const a = await kw.mint("a", READ_EXECUTE);
    const { sessionId } = await initialize(kw.url, a.key);
    const headers = { ...MCP_HEADERS, Authorization: `Bearer ${a.key}`, "Mcp-Session-Id": sessionId!, "Mcp-Protocol-Version": "2025-11-25" };

    const call = openSse(kw.url, {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id: 41, method: "tools/call", params: { name: "wait_for_gate", arguments: {} } }),
    });
    expect(await call.status).toBe(200);
    const priming = await call.waitFor(() => true);
    expect(priming).toStrictEqual({ id: expect.stringMatching(/^\S+$/), retry: "1000", data: "" });
    call.abort(); // the connection is lost before the result
    await call.ended;
    release();
    await done;
    expect(await inSession(kw.url, a.key, sessionId!, "ping")).toBe(200);

    const resumed = openGetStream(kw.url, a.key, sessionId!, { "Last-Event-ID": priming.id! });
    expect(await resumed.status).toBe(200);
    const result = await resumed.waitFor((event) => event.data !== undefined && event.data.includes('"id":41'));
    expect(JSON.parse(result.data!)).toMatchObject({ jsonrpc: "2.0", id: 41, result: { structuredContent: { opened: true } } });
    expect(result.id).toMatch(/^\S+$/);
    resumed.abort();

    // An event id this session never gave out resumes nothing.
    const unknown = await rawRequest(kw.url, {
      headers: { Accept: "text/event-stream", Authorization: `Bearer ${a.key}`, "Mcp-Session-Id": sessionId!, "Last-Event-ID": "no-such-event" },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32000 } });
  }, 15_000);
});
