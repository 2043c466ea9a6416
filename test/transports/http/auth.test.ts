import { connect } from "node:net";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { generateToken } from "../../../src/keys/token.js";
import { BufferedFailureRecorder } from "../../../src/service/failure-recorder.js";
import { DEFAULT_SERVICE_CONFIG } from "../../../src/service/policy.js";
import type { Principal } from "../../../src/service/principal.js";
import { KeyService } from "../../../src/service/service.js";
import { SqliteKeyStore } from "../../../src/store/sqlite.js";
import { startHttpServer, type RunningHttpServer } from "../../../src/transports/http.js";
import { makeTempDir, secretOf, TestClock } from "../../helpers/harness.js";
import { initializeBody, MCP_HEADERS, rawRequest, type RawResponse } from "../../helpers/http.js";

// The authentication parts of the HTTP transport, in process, per status: one real server
// (startHttpServer on port 0) over a real SQLite store, with a test clock for the service.

const INVALID = "The bearer token is malformed, unknown, revoked or expired";
const INVALID_HEADER = `Bearer realm="keywarden", error="invalid_token", error_description="${INVALID}"`;
const INVALID_BODY = JSON.stringify({ error: "invalid_token", error_description: INVALID });

interface Setup {
  server: RunningHttpServer;
  base: string;
  store: SqliteKeyStore;
  service: KeyService;
  clock: TestClock;
  recorder: BufferedFailureRecorder;
  admin: Principal;
  logs: string[];
  /** A fresh key with these scopes (admin-minted), and optionally an expiry. */
  mint(scopes: string[], expiresAt?: string): Promise<{ id: string; key: string; key_prefix: string }>;
  /** Every auth.failed row, oldest first. */
  failedEvents(): { key_id: string | null; client_address: string | null; detail: Record<string, unknown> }[];
}

const teardown: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of teardown.splice(0).reverse()) await step();
});

async function setUp(options: { limit?: number; maxPending?: number } = {}): Promise<Setup> {
  const temp = makeTempDir();
  const store = SqliteKeyStore.open({ path: join(temp.dir, "keywarden.db") });
  // A long interval: the tests decide when the batch is written (flush), not a timer.
  const recorder = new BufferedFailureRecorder(store, { intervalMs: 60_000, maxPending: options.maxPending });
  const clock = new TestClock();
  const service = new KeyService({ store, clock: clock.now, config: DEFAULT_SERVICE_CONFIG, failureRecorder: recorder });
  const admin = await service.localPrincipal({ userName: "ops", transport: "cli", isAdmin: true });
  const logs: string[] = [];
  const line = (level: string) => (object: Record<string, unknown>, message: string) => logs.push(`${level} ${message} ${JSON.stringify(object)}`);
  const server = await startHttpServer({
    service,
    version: "test",
    logger: { debug: () => undefined, info: line("info"), warn: line("warn"), error: line("error") },
    host: "127.0.0.1",
    port: 0,
    authFailureLimit: options.limit ?? 30,
    authFailureWindowMs: 300_000,
  });
  teardown.push(() => temp.cleanup());
  teardown.push(() => store.close());
  teardown.push(() => recorder.close());
  teardown.push(() => server.close(100));
  return {
    server,
    base: `http://127.0.0.1:${server.port}`,
    store,
    service,
    clock,
    recorder,
    admin,
    logs,
    mint: async (scopes, expiresAt) => service.createApiKey(admin, { name: `k${Math.random()}`, scopes, expires_at: expiresAt }),
    failedEvents: () =>
      (store.db.prepare("SELECT key_id, client_address, detail FROM key_events WHERE event_type = 'auth.failed' ORDER BY rowid").all() as {
        key_id: string | null;
        client_address: string | null;
        detail: string;
      }[]).map((row) => ({ ...row, detail: JSON.parse(row.detail) as Record<string, unknown> })),
  };
}

const bearer = (key: string | null): Record<string, string> => (key === null ? {} : { Authorization: `Bearer ${key}` });
const initialize = (setup: Setup, key: string | null) =>
  rawRequest(`${setup.base}/mcp`, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key) }, body: initializeBody() });
/** The verify endpoint, on the fast path or (with a query string) through Express. */
const verify = (setup: Setup, key: string | null, checked: string, via: "fast" | "express" = "fast") =>
  rawRequest(`${setup.base}/v1/keys/verify${via === "express" ? "?via=express" : ""}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...bearer(key) },
    body: JSON.stringify({ key: checked }),
  });
const answerOf = (response: RawResponse) => ({ status: response.status, challenge: response.headers["www-authenticate"], body: response.text });

describe("a valid key is never refused for other requests' failures", () => {
  it("lets a good key through from an address over its limit, on /mcp and on both verify paths; failures there get 429", async () => {
    const setup = await setUp({ limit: 3 });
    const agent = await setup.mint(["tools:read"]);
    const gateway = await setup.mint(["keys:verify"]);

    // A client with a bad key (mcp-remote makes 4 failing requests per launch) on the shared 127.0.0.1.
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 5; attempt++) statuses.push((await initialize(setup, generateToken("kw").token)).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    const limited = await initialize(setup, "kw_nope");
    expect(limited.status).toBe(429);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(limited.json()).toStrictEqual({ jsonrpc: "2.0", error: { code: -32000, message: expect.stringMatching(/^too many failed authentication attempts/) }, id: null });
    const limitedVerify = await verify(setup, null, agent.key);
    expect(limitedVerify.status).toBe(429);
    expect(limitedVerify.json()).toMatchObject({ error: { code: "rate_limited" } });

    // Good keys from the same address work.
    expect((await initialize(setup, agent.key)).status).toBe(200);
    for (const via of ["fast", "express"] as const) {
      const answer = await verify(setup, gateway.key, agent.key, via);
      expect(answer.status, via).toBe(200);
      expect(answer.json(), via).toMatchObject({ valid: true, key_id: agent.id });
    }
  });

  it("records the failures under the limit one by one and only counts those over it", async () => {
    const setup = await setUp({ limit: 2 });
    for (let attempt = 0; attempt < 6; attempt++) await initialize(setup, "kw_nope");
    await setup.recorder.flush();
    expect(setup.failedEvents().map((event) => event.detail)).toEqual([
      { reason: "malformed", key_prefix: null, user_agent: null, path: "/mcp", failures_in_window: 1 },
      { reason: "malformed", key_prefix: null, user_agent: null, path: "/mcp", failures_in_window: 2 },
      { reason: "not_recorded", count: 4, buffer_full: 0, over_limit: 4 },
    ]);
    expect(setup.logs.filter((line) => line.startsWith("info authentication failed"))).toHaveLength(2);
  });
});

describe("failures are recorded in batches, bounded in memory", () => {
  it("writes nothing per failed request: one transaction per flush, with what the buffer held and a count of the rest", async () => {
    const setup = await setUp({ limit: 1000, maxPending: 5 });
    const unknown = generateToken("kw");
    for (let attempt = 0; attempt < 8; attempt++) expect((await initialize(setup, unknown.token)).status).toBe(401);
    expect(setup.failedEvents()).toEqual([]); // nothing written yet
    const appendEvent = vi.spyOn(setup.store, "appendEvent");
    const appendEvents = vi.spyOn(setup.store, "appendEvents");
    expect(setup.recorder.pendingCount).toBe(5);
    expect(setup.recorder.unrecordedCount).toBe(3);

    await setup.recorder.flush();
    expect(appendEvent).not.toHaveBeenCalled();
    expect(appendEvents).toHaveBeenCalledTimes(1);
    const events = setup.failedEvents();
    expect(events.map((event) => event.detail.reason)).toEqual(["not_found", "not_found", "not_found", "not_found", "not_found", "not_recorded"]);
    expect(events[0]).toMatchObject({ key_id: null, client_address: "127.0.0.1", detail: { key_prefix: unknown.keyPrefix, path: "/mcp" } });
    expect(events[5]!.detail).toEqual({ reason: "not_recorded", count: 3, buffer_full: 3, over_limit: 0 });
    expect(JSON.stringify(events)).not.toContain(secretOf(unknown.token));
    expect(setup.logs.join("\n")).not.toContain(secretOf(unknown.token));
  });
});

describe("the one 401", () => {
  it("is the same for every presented credential that fails, a key in its last second included, and each gets auth.failed", async () => {
    const setup = await setUp({ limit: 1000 });
    const { clock } = setup;
    const expiresAt = new Date(clock.current.getTime() + 3_600_000).toISOString();
    const expiring = await setup.mint(["tools:read"], expiresAt);
    const revoked = await setup.mint(["tools:read"]);
    await setup.service.revokeApiKey(setup.admin, { id: revoked.id });

    // Half a second before expiry by the service's clock, the one that decides (src/store/instants.ts, "active at t"):
    // the key works. The SDK's requireBearerAuth, with its own clock in whole seconds, said "Token has expired".
    clock.current = new Date(Date.parse(expiresAt) - 500);
    const lastSecond = await initialize(setup, expiring.key);
    expect(answerOf(lastSecond)).toMatchObject({ status: 200, challenge: undefined });

    clock.current = new Date(Date.parse(expiresAt));
    const answers = [];
    for (const token of ["not-a-key", "kw_nope", generateToken("kw").token, revoked.key, expiring.key]) {
      answers.push(answerOf(await initialize(setup, token)));
      answers.push(answerOf(await verify(setup, token, revoked.key)));
      answers.push(answerOf(await verify(setup, token, revoked.key, "express")));
    }
    expect(new Set(answers.map((answer) => JSON.stringify(answer)))).toStrictEqual(new Set([JSON.stringify({ status: 401, challenge: INVALID_HEADER, body: INVALID_BODY })]));

    await setup.recorder.flush();
    const reasons = setup.failedEvents().map((event) => event.detail.reason);
    expect(reasons).toEqual([...Array(6).fill("malformed"), ...Array(3).fill("not_found"), ...Array(3).fill("revoked"), ...Array(3).fill("expired")]);
  });

  it("to a request without credentials is a bare Bearer challenge with no error code (RFC 6750 section 3.1)", async () => {
    const setup = await setUp();
    for (const response of [await initialize(setup, null), await verify(setup, null, "kw_x"), await verify(setup, null, "kw_x", "express")]) {
      expect(response.status).toBe(401);
      expect(response.headers["www-authenticate"]).toBe('Bearer realm="keywarden"');
      expect(response.json()).toStrictEqual({ error: "unauthorized", error_description: expect.stringContaining("Authorization: Bearer kw_") });
    }
    await setup.recorder.flush();
    expect(setup.failedEvents().map((event) => event.detail.reason)).toEqual(["missing", "missing", "missing"]);
  });
});

describe("OAuth-capable clients", () => {
  const probes: [string, string][] = [
    ["GET", "/.well-known/oauth-protected-resource"],
    ["GET", "/.well-known/oauth-protected-resource/mcp"],
    ["GET", "/.well-known/oauth-authorization-server"],
    ["GET", "/.well-known/oauth-authorization-server/mcp"],
    ["GET", "/.well-known/openid-configuration"],
    ["GET", "/.well-known/openid-configuration/mcp"],
    ["GET", "/mcp/.well-known/openid-configuration"],
    ["POST", "/register"],
    ["GET", "/authorize"],
    ["POST", "/token"],
  ];

  it("get an RFC 6749-shaped error on every discovery, registration and token path, saying keywarden takes API keys", async () => {
    const setup = await setUp();
    for (const [method, path] of probes) {
      const response = await rawRequest(`${setup.base}${path}`, { method, headers: { "Content-Type": "application/json" }, body: method === "POST" ? "{}" : undefined });
      expect(response.status, path).toBe(404);
      expect(response.headers["content-type"], path).toMatch(/^application\/json/);
      const body = response.json() as { error: unknown; error_description: unknown };
      expect(typeof body.error, path).toBe("string");
      expect(body.error_description, path).toMatch(/does not use OAuth: it takes API keys, sent as Authorization: Bearer kw_/);
    }
    // A browser-based client (say the MCP Inspector on a loopback origin) may read the answer too.
    const fromBrowser = await rawRequest(`${setup.base}/.well-known/oauth-protected-resource/mcp`, { headers: { Origin: "http://localhost:6274" } });
    expect([fromBrowser.status, fromBrowser.headers["access-control-allow-origin"]]).toEqual([404, "http://localhost:6274"]);
    const preflight = await rawRequest(`${setup.base}/register`, {
      method: "OPTIONS",
      headers: { Origin: "http://localhost:6274", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" },
    });
    expect([preflight.status, preflight.headers["access-control-allow-methods"]]).toEqual([204, "GET, POST"]);
    // Any other unknown path keeps keywarden's own 404.
    expect((await rawRequest(`${setup.base}/.well-known/security.txt`)).json()).toMatchObject({ error: { code: "not_found" } });
  });

  it("make the SDK's OAuth client report what to do, not 'Invalid OAuth error response'", async () => {
    const setup = await setUp();
    const provider: OAuthClientProvider = {
      redirectUrl: "http://127.0.0.1:1/callback",
      clientMetadata: { redirect_uris: ["http://127.0.0.1:1/callback"], client_name: "oauth-probe" },
      clientInformation: () => undefined,
      saveClientInformation: () => undefined,
      tokens: () => undefined,
      saveTokens: () => undefined,
      redirectToAuthorization: () => undefined,
      saveCodeVerifier: () => undefined,
      codeVerifier: () => "verifier",
    };
    const client = new Client({ name: "oauth-probe", version: "0" });
    const transport = new StreamableHTTPClientTransport(new URL(`${setup.base}/mcp`), { authProvider: provider });
    const failure = await client.connect(transport).then(
      () => null,
      (error: unknown) => error as Error,
    );
    await client.close().catch(() => undefined);
    expect(failure?.message).toMatch(/keywarden does not use OAuth: it takes API keys, sent as Authorization: Bearer kw_/);
    expect(failure?.message).not.toMatch(/Invalid OAuth error response/);
  });
});

describe("requests Node's HTTP parser refuses", () => {
  /** Sends raw bytes, returns everything the server wrote before closing. */
  const exchange = (port: number, text: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => socket.write(text));
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("close", () => resolve(Buffer.concat(chunks).toString("utf8")));
      socket.on("error", reject);
    });

  it("get a JSON error body like every other error, not an empty one", async () => {
    const setup = await setUp();
    const host = `Host: 127.0.0.1:${setup.server.port}\r\n`;
    const cases: [string, string, number, string][] = [
      ["obs-fold", `POST /mcp HTTP/1.1\r\n${host}X-Long: a\r\n folded\r\nContent-Length: 0\r\n\r\n`, 400, "bad_request"],
      ["Transfer-Encoding with Content-Length", `POST /mcp HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, 400, "bad_request"],
      ["a broken request line", "GARBAGE\r\n\r\n", 400, "bad_request"],
      ["headers too large", `GET /healthz HTTP/1.1\r\n${host}X-Big: ${"x".repeat(20_000)}\r\n\r\n`, 431, "headers_too_large"],
    ];
    for (const [name, text, status, code] of cases) {
      const raw = await exchange(setup.server.port, text);
      const [head, body] = raw.split("\r\n\r\n") as [string, string];
      expect(head.split("\r\n")[0], name).toBe(`HTTP/1.1 ${status} ${status === 400 ? "Bad Request" : "Request Header Fields Too Large"}`);
      expect(head, name).toMatch(/\r\nContent-Type: application\/json; charset=utf-8\r\n/);
      expect(JSON.parse(body), name).toStrictEqual({ error: { code, message: expect.any(String), errors: [] } });
    }
    // The server is unharmed.
    expect((await rawRequest(`${setup.base}/healthz`)).status).toBe(200);
  });
});
