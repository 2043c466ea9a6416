import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { generateToken } from "../../../src/keys/token.js";
import type { CreatedApiKey } from "../../../src/service/types.js";
import { initializeBody, MCP_HEADERS, rawRequest, rpcBody, type RawResponse } from "../../helpers/http.js";
import { initialize, openGetStream, startInProcess, type InProcessServer } from "../../helpers/inprocess.js";

// /mcp, /healthz, the OAuth paths and any other path, per status, in process (README, "Serve over
// HTTP"): each answer's status, the headers that matter and the exact body. The verify endpoint
// has its own matrix (verify-endpoint.test.ts).

const INVALID = "The bearer token is malformed, unknown, revoked or expired";
const MISSING = "This endpoint needs a keywarden API key, sent as Authorization: Bearer kw_…; keywarden does not use OAuth";
const JSON_TYPE = "application/json; charset=utf-8";
const rpcError = (message: string, code = -32000) => ({ jsonrpc: "2.0", error: { code, message }, id: null });
const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

interface Row {
  name: string;
  method: string;
  path: string;
  headers?: () => Record<string, string>;
  body?: () => string | Buffer;
  status: number;
  expectHeaders?: Record<string, string | undefined>;
  /** The exact JSON body; undefined: no body. */
  expectBody?: () => unknown;
}

let server: InProcessServer;
let base: string;
let reader: CreatedApiKey;
let other: CreatedApiKey;
let gateway: CreatedApiKey;
let sessionId: string;

beforeAll(async () => {
  server = await startInProcess();
  base = `http://127.0.0.1:${server.server.port}`;
  reader = await server.mint("reader", ["tools:read"]);
  other = await server.mint("other", ["tools:read"], "bob");
  gateway = await server.mint("gateway", ["keys:verify"], "ops");
  const opened = await initialize(server.url, reader.key);
  expect(opened.status).toBe(200);
  sessionId = opened.sessionId!;
});
afterAll(() => server.close());

const inSession = (key: string) => ({ ...MCP_HEADERS, ...bearer(key), "Mcp-Session-Id": sessionId, "Mcp-Protocol-Version": "2025-11-25" });

const rows: Row[] = [
  // /mcp
  {
    name: "/mcp 202 a notification in the session",
    method: "POST",
    path: "/mcp",
    headers: () => inSession(reader.key),
    body: () => JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
    status: 202,
  },
  {
    name: "/mcp 204 a preflight",
    method: "OPTIONS",
    path: "/mcp",
    headers: () => ({ Origin: "http://localhost:5173", "Access-Control-Request-Method": "POST" }),
    status: 204,
    expectHeaders: { "access-control-allow-methods": "POST, GET, DELETE", "access-control-allow-origin": "http://localhost:5173", vary: "Origin" },
  },
  {
    name: "/mcp 400 GET without a session id",
    method: "GET",
    path: "/mcp",
    headers: () => ({ Accept: "text/event-stream", ...bearer(reader.key) }),
    status: 400,
    expectBody: () => rpcError("Bad Request: Mcp-Session-Id header is required"),
  },
  {
    name: "/mcp 400 a request before initialize",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...MCP_HEADERS, ...bearer(reader.key) }),
    body: () => rpcBody("tools/list"),
    status: 400,
    expectBody: () => rpcError("Bad Request: no session: send initialize first, or the Mcp-Session-Id header"),
  },
  {
    name: "/mcp 400 bad JSON (-32700)",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...MCP_HEADERS, ...bearer(reader.key) }),
    body: () => '{"jsonrpc":',
    status: 400,
    expectBody: () => rpcError("Parse error: the body is not valid JSON", -32700),
  },
  {
    name: "/mcp 400 two session ids",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...MCP_HEADERS, ...bearer(reader.key), "Mcp-Session-Id": [sessionId, "x"] as unknown as string }),
    body: () => rpcBody("tools/list"),
    status: 400,
    expectBody: () => rpcError("Bad Request: the mcp-session-id header appears more than once"),
  },
  {
    name: "/mcp 401 no key",
    method: "POST",
    path: "/mcp",
    headers: () => MCP_HEADERS,
    body: () => initializeBody(),
    status: 401,
    expectHeaders: { "www-authenticate": 'Bearer realm="keywarden"' },
    expectBody: () => ({ error: "unauthorized", error_description: MISSING }),
  },
  {
    name: "/mcp 401 a bad key",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...MCP_HEADERS, ...bearer(generateToken().token) }),
    body: () => initializeBody(),
    status: 401,
    expectHeaders: { "www-authenticate": `Bearer realm="keywarden", error="invalid_token", error_description="${INVALID}"` },
    expectBody: () => ({ error: "invalid_token", error_description: INVALID }),
  },
  {
    name: "/mcp 403 a key without tools:read, tools:execute or admin",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...MCP_HEADERS, ...bearer(gateway.key) }),
    body: () => initializeBody(),
    status: 403,
    expectHeaders: { "www-authenticate": 'Bearer error="insufficient_scope", error_description="This key holds none of the scopes this endpoint needs", scope="tools:read tools:execute admin"' },
    expectBody: () => ({ error: "insufficient_scope", error_description: "This endpoint needs a key with one of: tools:read, tools:execute, admin" }),
  },
  {
    name: "/mcp 403 a foreign Origin",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...MCP_HEADERS, ...bearer(reader.key), Origin: "https://evil.example" }),
    body: () => initializeBody(),
    status: 403,
    expectHeaders: { "access-control-allow-origin": undefined },
    expectBody: () => rpcError("Forbidden: this Origin is not allowed"),
  },
  {
    name: "/mcp 403 a foreign Host",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...MCP_HEADERS, ...bearer(reader.key), Host: "evil.example:80" }),
    body: () => initializeBody(),
    status: 403,
    expectBody: () => rpcError("Invalid Host: evil.example"),
  },
  {
    name: "/mcp 404 an unknown session",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...inSession(reader.key), "Mcp-Session-Id": "nope" }),
    body: () => rpcBody("tools/list"),
    status: 404,
    expectBody: () => rpcError("Session not found"),
  },
  {
    name: "/mcp 404 another key's session",
    method: "POST",
    path: "/mcp",
    headers: () => inSession(other.key),
    body: () => rpcBody("tools/list"),
    status: 404,
    expectBody: () => rpcError("Session not found"),
  },
  {
    name: "/mcp 405 PUT",
    method: "PUT",
    path: "/mcp",
    headers: () => bearer(reader.key),
    status: 405,
    expectHeaders: { allow: "POST, GET, DELETE" },
    expectBody: () => rpcError("Method not allowed: use POST or GET or DELETE"),
  },
  {
    name: "/mcp 413 a body over 1 MiB",
    method: "POST",
    path: "/mcp",
    headers: () => ({ ...MCP_HEADERS, ...bearer(reader.key) }),
    body: () => Buffer.alloc(1024 * 1024 + 10, 0x20),
    status: 413,
    expectHeaders: { connection: "close" },
    expectBody: () => rpcError("Payload too large: the limit is 1048576 bytes"),
  },
  {
    name: "/mcp 415 a body that is not JSON",
    method: "POST",
    path: "/mcp",
    headers: () => ({ "Content-Type": "text/plain", Accept: MCP_HEADERS.Accept, ...bearer(reader.key) }),
    body: () => initializeBody(),
    status: 415,
    expectBody: () => rpcError("Unsupported Media Type: Content-Type must be application/json"),
  },
  // /healthz
  { name: "/healthz 200", method: "GET", path: "/healthz", status: 200, expectBody: () => ({ status: "ok", database: "ok" }) },
  { name: "/healthz 200 HEAD, without a body", method: "HEAD", path: "/healthz", status: 200 },
  {
    name: "/healthz 405 POST",
    method: "POST",
    path: "/healthz",
    status: 405,
    expectHeaders: { allow: "GET, HEAD" },
    expectBody: () => ({ error: { code: "method_not_allowed", message: "Method not allowed: use GET or HEAD", errors: [] } }),
  },
  // OAuth paths and the rest
  {
    name: "OAuth metadata 404, RFC 6749-shaped",
    method: "GET",
    path: "/.well-known/oauth-protected-resource/mcp",
    status: 404,
    expectHeaders: { "cache-control": "no-store" },
    expectBody: () => ({ error: "invalid_request", error_description: expect.stringMatching(/^keywarden does not use OAuth: it takes API keys/) }),
  },
  {
    name: "any other path 404",
    method: "GET",
    path: "/nothing-here?secret=kw_x",
    status: 404,
    expectBody: () => ({ error: { code: "not_found", message: "Not found: GET /nothing-here", errors: [] } }),
  },
  {
    name: "OPTIONS * 400 (a target that is not a path)",
    method: "OPTIONS",
    path: "/healthz",
    headers: () => ({}),
    status: 400,
    expectBody: () => ({ error: { code: "bad_request", message: "Bad Request: the request target must be a path or an http(s) URL", errors: [] } }),
  },
];

async function send(row: Row): Promise<RawResponse> {
  const target = row.name.startsWith("OPTIONS *") ? "*" : undefined;
  return rawRequest(`${base}${row.path}`, { method: row.method, headers: row.headers?.(), body: row.body?.(), target });
}

describe("per status", () => {
  for (const row of rows) {
    it(row.name, async () => {
      const response = await send(row);
      expect(response.status).toBe(row.status);
      for (const [name, value] of Object.entries(row.expectHeaders ?? {})) expect(response.headers[name], name).toBe(value);
      if (row.expectBody === undefined) return expect(response.text).toBe("");
      expect(response.headers["content-type"]).toBe(JSON_TYPE);
      expect(response.json()).toStrictEqual(row.expectBody());
    });
  }

  it("/mcp 200 initialize: a session id from the CSPRNG, the answer on an SSE stream", async () => {
    const response = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(reader.key) }, body: initializeBody() });
    expect(response.status).toBe(200);
    expect(response.headers["content-type"]).toBe("text/event-stream");
    expect(response.headers["mcp-session-id"]).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(response.text).toMatch(/"result":\{"protocolVersion":"2025-11-25"/);
  });

  it("/mcp 200 GET: the session's stream; 200 DELETE ends the session, whose id then gets 404", async () => {
    const opened = await initialize(server.url, reader.key);
    const stream = openGetStream(server.url, reader.key, opened.sessionId!);
    expect(await stream.status).toBe(200);
    const deleted = await rawRequest(server.url, { method: "DELETE", headers: { ...bearer(reader.key), "Mcp-Session-Id": opened.sessionId!, "Mcp-Protocol-Version": "2025-11-25" } });
    expect(deleted.status).toBe(200);
    await stream.ended;
    const after = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(reader.key), "Mcp-Session-Id": opened.sessionId! }, body: rpcBody("tools/list") });
    expect([after.status, after.json()]).toStrictEqual([404, rpcError("Session not found")]);
  });

  it("/mcp 406 without an Accept that takes both JSON and SSE (the SDK's answer)", async () => {
    const response = await rawRequest(server.url, { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json", ...bearer(reader.key) }, body: initializeBody() });
    expect(response.status).toBe(406);
    expect(response.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32000, message: expect.stringMatching(/Not Acceptable/) }, id: null });
  });
});

describe("per status, on a server set up for it", () => {
  it("/mcp 405 GET and DELETE when stateless", async () => {
    const stateless = await startInProcess({ stateless: true });
    try {
      const key = await stateless.mint("k", ["tools:read"]);
      for (const method of ["GET", "DELETE"]) {
        const response = await rawRequest(stateless.url, { method, headers: bearer(key.key) });
        expect([response.status, response.headers.allow, response.json()], method).toStrictEqual([405, "POST", rpcError("Method not allowed: use POST")]);
      }
    } finally {
      await stateless.close();
    }
  });

  it("/mcp 429 once the address is over its failure limit; a good key still gets 200", async () => {
    const limited = await startInProcess({ authFailureLimit: 1 });
    try {
      const key = await limited.mint("k", ["tools:read"]);
      const bad = () => rawRequest(limited.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(generateToken().token) }, body: initializeBody() });
      expect((await bad()).status).toBe(401);
      const refused = await bad();
      expect(refused.status).toBe(429);
      expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(refused.json()).toStrictEqual(rpcError(`too many failed authentication attempts from this address; retry in ${refused.headers["retry-after"]} s`));
      expect((await initialize(limited.url, key.key)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });

  it("/mcp 503 when the store cannot judge the key; /healthz 503 when the database does not answer", async () => {
    const failing = await startInProcess();
    try {
      const key = await failing.mint("k", ["tools:read"]);
      vi.spyOn(failing.service, "authenticateKey").mockRejectedValue(new Error("database is locked"));
      const refused = await rawRequest(failing.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key.key) }, body: initializeBody() });
      expect([refused.status, refused.headers["retry-after"], refused.json()]).toStrictEqual([
        503,
        "1",
        { error: "temporarily_unavailable", error_description: "The key store did not answer; retry later" },
      ]);
      vi.spyOn(failing.service, "checkHealth").mockRejectedValue(new Error("database is locked"));
      const health = await rawRequest(`http://127.0.0.1:${failing.server.port}/healthz`);
      expect([health.status, health.json()]).toStrictEqual([503, { status: "error", database: "unreachable" }]);
      expect(failing.log.map((line) => line.message)).toEqual(expect.arrayContaining(["authentication could not be completed", "health check: the database does not answer"]));
    } finally {
      vi.restoreAllMocks();
      await failing.close();
    }
  });

  it("/mcp 503 with Retry-After when the table is full of other keys' sessions", async () => {
    const full = await startInProcess({ maxSessions: 1 });
    try {
      const first = await full.mint("first", ["tools:read"]);
      const second = await full.mint("second", ["tools:read"]);
      expect((await initialize(full.url, first.key)).status).toBe(200);
      const refused = await rawRequest(full.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(second.key) }, body: initializeBody() });
      expect([refused.status, refused.headers["retry-after"], refused.json()]).toStrictEqual([503, "60", rpcError("too many open sessions; retry later")]);
    } finally {
      await full.close();
    }
  });
});
