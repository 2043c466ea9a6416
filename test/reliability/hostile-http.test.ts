import { gzipSync } from "node:zlib";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";
import { forgeToken } from "./hygiene-workload.js";
import { call, callOk, connectHttp, mintKeys, pool, rawExchange, type MintedKey, type RawExchange } from "./support.js";

// Hostile HTTP: well over 1,000 malformed requests, written byte for byte on raw sockets (bad JSON,
// truncated bodies, oversize bodies, wrong content types, missing and duplicated headers, bad
// session ids, bad bearer tokens, bad methods, broken framing). Each must get a 4xx: never a 5xx,
// never silence or a hang, never a stack trace. Then the server must still be healthy and serve a
// good authenticated call.

const SEED = Number(process.env.KEYWARDEN_HOSTILE_SEED ?? Date.now() % 2 ** 31);
const temp = makeTempDir();
let server: HttpServerProcess;
let keys: Record<"good" | "gateway" | "other" | "revoked" | "expiredSoon", MintedKey>;
let goodSession: string;
let otherSession: string;
let closedSession: string;

const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "hostile", version: "0" } },
});
const TOOL_CALL = JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "whoami", arguments: {} } });
const VERIFY_BODY = (key: string) => JSON.stringify({ key, required_scopes: ["tools:read"] });

beforeAll(async () => {
  const dbPath = join(temp.dir, "hostile.db");
  const minted = await mintKeys(dbPath, [
    { user: "hostile", name: "good", scopes: ["tools:read", "tools:execute"] },
    { user: "gateway", name: "gateway", scopes: ["keys:verify"] },
    { user: "someone-else", name: "other", scopes: ["tools:read", "tools:execute"] },
    { user: "hostile", name: "to be revoked", scopes: ["tools:read", "tools:execute"] },
    { user: "hostile", name: "spare", scopes: ["tools:read"] },
  ]);
  keys = { good: minted[0]!, gateway: minted[1]!, other: minted[2]!, revoked: minted[3]!, expiredSoon: minted[4]! };
  // Every bad bearer token must get the 401: over the per-address limit they would get 429 (also a
  // 4xx) instead. Good keys are served either way.
  server = await spawnHttpServer(["--db", dbPath, "--auth-failure-limit", "1000000"]);
  const good = await connectHttp(server.url, keys.good.key);
  await callOk(good.client, "revoke_api_key", { id: keys.revoked.id, reason: "hostile test" });
  goodSession = good.transport.sessionId!;
  const other = await connectHttp(server.url, keys.other.key);
  otherSession = other.transport.sessionId!;
  const closed = await connectHttp(server.url, keys.good.key);
  closedSession = closed.transport.sessionId!;
  await closed.transport.terminateSession();
  await closed.client.close();
  expect([goodSession, otherSession, closedSession].every((id) => typeof id === "string" && id.length > 20)).toBe(true);
});

afterAll(async () => {
  await server?.stop("SIGKILL");
  temp.cleanup();
});

interface HostileCase {
  kind: string;
  payload: string | Buffer;
  halfClose?: boolean;
  /** Statuses this case may get; any 4xx when absent. */
  statuses?: number[];
}

type Headers = [string, string][];

/** An HTTP/1.1 request as bytes. `contentLength`: a number, "auto" (the body's length) or null (none). */
function request(
  method: string,
  path: string,
  headers: Headers,
  body: string | Buffer = "",
  options: { contentLength?: number | "auto" | null; host?: string | null } = {},
): Buffer {
  const bodyBytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const lines = [`${method} ${path} HTTP/1.1`];
  const host = options.host === undefined ? `127.0.0.1:${server.port}` : options.host;
  if (host !== null) lines.push(`Host: ${host}`);
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  lines.push("Connection: close");
  const contentLength = options.contentLength === undefined ? "auto" : options.contentLength;
  if (contentLength !== null) lines.push(`Content-Length: ${contentLength === "auto" ? bodyBytes.length : contentLength}`);
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), bodyBytes]);
}

const auth = (key: string): [string, string] => ["Authorization", `Bearer ${key}`];
const JSON_TYPE: [string, string] = ["Content-Type", "application/json"];
const ACCEPT: [string, string] = ["Accept", "application/json, text/event-stream"];
const mcpHeaders = (key: string, extra: Headers = []): Headers => [auth(key), JSON_TYPE, ACCEPT, ...extra];
const session = (id: string): [string, string] => ["Mcp-Session-Id", id];
const PROTOCOL: [string, string] = ["Mcp-Protocol-Version", "2025-11-25"];

/** Header values that survive being written (no CR/LF), random otherwise. */
const headerValue = fc.string({ unit: "binary-ascii", minLength: 0, maxLength: 120 }).map((s) => s.replace(/[\r\n]/g, ""));
const garbageBytes = fc.uint8Array({ minLength: 1, maxLength: 400 }).map((bytes) => Buffer.from(bytes));
const notJson = fc.oneof(
  garbageBytes,
  fc.string({ maxLength: 200 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }),
);
/** A prefix of a valid body, never the whole of it (and never a prefix that parses). */
const truncationOf = (body: string) =>
  fc.integer({ min: 1, max: body.length - 1 }).map((n) => body.slice(0, n)).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  });
/** JSON that is not a JSON-RPC message keywarden could act on. */
const notJsonRpc = fc.jsonValue({ maxDepth: 3 }).filter((value) => {
  if (value === null || typeof value !== "object") return true;
  if (Array.isArray(value)) return value.length > 0 && value.every((item) => item === null || typeof item !== "object" || !("jsonrpc" in item));
  return !("jsonrpc" in value) || (value as Record<string, unknown>).jsonrpc !== "2.0";
});

function sample<T>(arbitrary: fc.Arbitrary<T>, n: number, salt: number): T[] {
  return fc.sample(arbitrary, { numRuns: n, seed: SEED + salt });
}

function buildCases(): HostileCase[] {
  const cases: HostileCase[] = [];
  const add = (kind: string, payload: string | Buffer, extra: Partial<HostileCase> = {}) => cases.push({ kind, payload, ...extra });
  const { good, gateway, other, revoked } = keys;

  // Bad JSON: no session (initialize expected), inside a session, and to the verify endpoint.
  for (const body of sample(notJson, 100, 1)) add("bad json, no session", request("POST", "/mcp", mcpHeaders(good.key), body));
  for (const body of sample(notJson, 80, 2)) add("bad json, in a session", request("POST", "/mcp", mcpHeaders(good.key, [session(goodSession), PROTOCOL]), body));
  for (const body of sample(notJson, 60, 3)) add("bad json, verify endpoint", request("POST", "/v1/keys/verify", [auth(gateway.key), JSON_TYPE], body));
  for (const value of sample(notJsonRpc, 60, 4)) {
    add("json, not JSON-RPC, no session", request("POST", "/mcp", mcpHeaders(good.key), JSON.stringify(value)));
  }
  for (const value of sample(notJsonRpc, 60, 5)) {
    add("json, not JSON-RPC, in a session", request("POST", "/mcp", mcpHeaders(good.key, [session(goodSession), PROTOCOL]), JSON.stringify(value)));
  }
  for (const value of sample(fc.jsonValue({ maxDepth: 3 }).filter((v) => typeof v !== "object" || v === null || Array.isArray(v) || !("key" in v)), 60, 6)) {
    add("verify body without a key", request("POST", "/v1/keys/verify", [auth(gateway.key), JSON_TYPE], JSON.stringify(value)));
  }
  for (const value of sample(fc.record({ key: fc.jsonValue(), required_scopes: fc.jsonValue() }, { requiredKeys: ["key"] }).filter((v) => typeof v.key !== "string" || (v.required_scopes !== undefined && !Array.isArray(v.required_scopes))), 40, 7)) {
    add("verify body of wrong types", request("POST", "/v1/keys/verify", [auth(gateway.key), JSON_TYPE], JSON.stringify(value)));
  }

  // Truncated bodies: cut short with a matching Content-Length, or cut short by a client that gave up.
  for (const body of sample(truncationOf(INITIALIZE), 50, 8)) add("truncated initialize", request("POST", "/mcp", mcpHeaders(good.key), body));
  for (const body of sample(truncationOf(TOOL_CALL), 50, 9)) add("truncated tool call", request("POST", "/mcp", mcpHeaders(good.key, [session(goodSession), PROTOCOL]), body));
  for (const body of sample(truncationOf(VERIFY_BODY(good.key)), 30, 10)) add("truncated verify body", request("POST", "/v1/keys/verify", [auth(gateway.key), JSON_TYPE], body));
  for (const n of sample(fc.integer({ min: 0, max: INITIALIZE.length - 1 }), 40, 11)) {
    add("body shorter than Content-Length, then EOF", request("POST", "/mcp", mcpHeaders(good.key), INITIALIZE.slice(0, n), { contentLength: INITIALIZE.length }), { halfClose: true });
  }
  for (const n of sample(fc.integer({ min: 1, max: 40 }), 20, 12)) {
    const chunked = `${(INITIALIZE.length).toString(16)}\r\n${INITIALIZE.slice(0, n)}`;
    add("chunked body cut short, then EOF", request("POST", "/mcp", mcpHeaders(good.key, [["Transfer-Encoding", "chunked"]]), chunked, { contentLength: null }), { halfClose: true });
  }

  // Oversize bodies: over the 1 MiB limit as sent, and as inflated from a small gzip (a "bomb").
  for (const size of sample(fc.integer({ min: 1024 * 1024 + 1, max: 3 * 1024 * 1024 }), 12, 13)) {
    const body = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"pad":"${"x".repeat(size)}"}}`;
    add("oversize body", request("POST", "/mcp", mcpHeaders(good.key), body), { statuses: [413] });
  }
  for (const size of [1024 * 1024 + 1, 2 * 1024 * 1024]) {
    add("oversize verify body", request("POST", "/v1/keys/verify", [auth(gateway.key), JSON_TYPE], JSON.stringify({ key: "x".repeat(size) })), { statuses: [413] });
  }
  for (const size of [2, 8, 32]) {
    const bomb = gzipSync(Buffer.from(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"pad":"${"0".repeat(size * 1024 * 1024)}"}}`));
    add("gzip bomb", request("POST", "/mcp", mcpHeaders(good.key, [["Content-Encoding", "gzip"]]), bomb), { statuses: [413] });
  }
  add("declared oversize, small body, EOF", request("POST", "/mcp", mcpHeaders(good.key), INITIALIZE, { contentLength: 50 * 1024 * 1024 }), { halfClose: true });

  // Wrong content types (a well-formed initialize body each time).
  const contentTypes = fc.oneof(
    fc.constantFrom(
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=xyz",
      "application/xml",
      "text/json",
      "application/jsonx",
      "application/octet-stream",
      "application/json; charset=utf-16",
      "application/json; charset=latin-9",
      "*/*",
      "",
      "json",
    ),
    headerValue.filter((v) => !/^\s*application\/([a-z.+-]*\+)?json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i.test(v)),
  );
  for (const type of sample(contentTypes, 100, 14)) {
    add("wrong content type, /mcp", request("POST", "/mcp", [auth(good.key), ["Content-Type", type], ACCEPT], INITIALIZE));
  }
  for (const type of sample(contentTypes, 30, 15)) {
    add("wrong content type, verify", request("POST", "/v1/keys/verify", [auth(gateway.key), ["Content-Type", type]], VERIFY_BODY(good.key)));
  }
  for (const encoding of ["gzip", "deflate", "br", "identity, gzip", "compress", "x-unknown"]) {
    add("content encoding that does not match the body", request("POST", "/mcp", mcpHeaders(good.key, [["Content-Encoding", encoding]]), INITIALIZE));
  }

  // Accept headers that rule out both JSON and an event stream.
  const accepts = fc.oneof(fc.constantFrom("text/html", "application/xml", "image/png", "text/event-stream", "application/json"), headerValue.filter((v) => !/json|event-stream|\*\/\*/.test(v)));
  for (const accept of sample(accepts, 40, 16)) add("unacceptable Accept", request("POST", "/mcp", [auth(good.key), JSON_TYPE, ["Accept", accept]], INITIALIZE));

  // Missing headers.
  for (let i = 0; i < 20; i++) {
    add("no Authorization", request("POST", "/mcp", [JSON_TYPE, ACCEPT], INITIALIZE), { statuses: [401] });
    add("no Authorization, verify", request("POST", "/v1/keys/verify", [JSON_TYPE], VERIFY_BODY(good.key)), { statuses: [401] });
    add("no Content-Type", request("POST", "/mcp", [auth(good.key), ACCEPT], INITIALIZE));
    add("no Host", request("POST", "/mcp", mcpHeaders(good.key), INITIALIZE, { host: null }));
    add("no Accept", request("POST", "/mcp", [auth(good.key), JSON_TYPE], INITIALIZE));
    add("no session id, tool call", request("POST", "/mcp", mcpHeaders(good.key), TOOL_CALL));
    add("no session id, GET", request("GET", "/mcp", [auth(good.key), ["Accept", "text/event-stream"]], "", { contentLength: null }));
    add("no session id, DELETE", request("DELETE", "/mcp", [auth(good.key)], "", { contentLength: null }));
  }

  // Duplicated headers.
  const duplicates: [string, Headers][] = [
    ["Authorization good, then bad", [auth(good.key), JSON_TYPE, ACCEPT, auth("kw_nope")]],
    ["Authorization bad, then good", [auth("kw_nope"), JSON_TYPE, ACCEPT, auth(good.key)]],
    ["Authorization twice the same", [auth(good.key), JSON_TYPE, ACCEPT, auth(good.key)]],
    ["Authorization of two users", [auth(other.key), JSON_TYPE, ACCEPT, auth(good.key)]],
    ["Host twice", [["Host", "evil.example"], ...mcpHeaders(good.key)]],
    ["Host twice the same", [["Host", `127.0.0.1:${server.port}`], ...mcpHeaders(good.key)]],
    ["Content-Type twice", [...mcpHeaders(good.key), ["Content-Type", "text/plain"]]],
    ["Content-Type twice the same", [...mcpHeaders(good.key), JSON_TYPE]],
    ["Content-Length twice, different", [...mcpHeaders(good.key), ["Content-Length", "3"]]],
    ["Mcp-Session-Id twice", [...mcpHeaders(good.key), session(goodSession), session(otherSession)]],
    ["Mcp-Session-Id twice the same", [...mcpHeaders(good.key), session(goodSession), session(goodSession)]],
    ["Transfer-Encoding and Content-Length", [...mcpHeaders(good.key), ["Transfer-Encoding", "chunked"]]],
    ["Transfer-Encoding twice", [...mcpHeaders(good.key), ["Transfer-Encoding", "chunked"], ["Transfer-Encoding", "chunked"]]],
  ];
  for (let i = 0; i < 8; i++) {
    for (const [kind, headers] of duplicates) add(`duplicated: ${kind}`, request("POST", "/mcp", headers, kind.includes("Session") ? TOOL_CALL : INITIALIZE));
  }
  for (let i = 0; i < 5; i++) {
    add("duplicated: Authorization, verify", request("POST", "/v1/keys/verify", [auth(gateway.key), JSON_TYPE, auth("kw_nope")], VERIFY_BODY(good.key)));
  }

  // Bad session ids: random, empty, long, another key's, a closed one; on POST, GET and DELETE.
  const sessionIds = fc.oneof(
    headerValue,
    fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), minLength: 43, maxLength: 43 }),
    fc.constantFrom("", " ", "null", "undefined", "0", "../../etc/passwd", "%00", "x".repeat(4000), goodSession.slice(0, -1), goodSession.toUpperCase()),
    fc.constantFrom(otherSession, closedSession),
  );
  // (Not the good id with spaces around it: HTTP strips them, and that is the good id.)
  for (const [i, id] of sample(sessionIds, 150, 17).entries()) {
    if (id.trim() === goodSession) continue;
    const method = ["POST", "GET", "DELETE"][i % 3]!;
    const headers = mcpHeaders(good.key, [session(id), PROTOCOL]);
    add(`bad session id, ${method}`, method === "POST" ? request("POST", "/mcp", headers, TOOL_CALL) : request(method, "/mcp", headers, "", { contentLength: null }));
  }

  // Bad bearer tokens.
  const forged = forgeToken(good.key);
  const badTokens = fc.oneof(
    headerValue.map((v) => `Bearer ${v}`),
    headerValue,
    fc.constantFrom(
      "",
      "Bearer",
      "Bearer ",
      "Basic dXNlcjpwYXNz",
      `Basic ${Buffer.from(`x:${good.key}`).toString("base64")}`,
      `Token ${good.key}`,
      `Bearer ${good.key} extra`,
      `Bearer ${good.key.slice(0, -1)}`,
      `Bearer ${good.key}x`,
      `Bearer ${good.key.toUpperCase()}`,
      `Bearer ${forged}`,
      `Bearer ${revoked.key}`,
      `Bearer ${gateway.key}`, // a platform key is not a key to keywarden: 403
      `Bearer ${"A".repeat(8000)}`,
      `Bearer kw_${"A".repeat(12)}_${"A".repeat(38)}`,
      `Bearer ${good.key_prefix}`,
      `Bearer ${keys.good.id}`,
    ),
    fc.string({ unit: fc.constantFrom(..."0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), minLength: 38, maxLength: 38 }).map((s) => `Bearer ${good.key_prefix}_${s}`),
  );
  for (const [i, value] of sample(badTokens, 200, 18).entries()) {
    // The gateway key is good at the verify endpoint (and only there): send it to /mcp.
    const path = i % 4 === 3 && !value.includes(gateway.key) ? "/v1/keys/verify" : "/mcp";
    const headers: Headers = [["Authorization", value], JSON_TYPE, ACCEPT];
    add(`bad bearer token, ${path}`, request("POST", path, headers, path === "/mcp" ? INITIALIZE : VERIFY_BODY(good.key)));
  }
  add("header block too large", request("POST", "/mcp", [auth(good.key), ["X-Pad", "p".repeat(70_000)], JSON_TYPE, ACCEPT], INITIALIZE), { statuses: [431] });
  add(
    "bearer token with raw non-ASCII bytes",
    Buffer.from(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: Bearer kw_\u00e9\u00ff\u0080\r\nContent-Type: application/json\r\n` +
        `Accept: application/json, text/event-stream\r\nConnection: close\r\nContent-Length: ${INITIALIZE.length}\r\n\r\n${INITIALIZE}`,
      "latin1",
    ),
  );

  // Methods and paths.
  for (const method of ["PUT", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "CONNECT_NOT", "FOO"]) {
    add(`method ${method} on /mcp`, request(method, "/mcp", mcpHeaders(good.key), INITIALIZE));
  }
  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) add(`method ${method} on verify`, request(method, "/v1/keys/verify", [auth(gateway.key)], "", { contentLength: null }));
  for (const method of ["POST", "PUT", "DELETE"]) add(`method ${method} on /healthz`, request(method, "/healthz", [], "", { contentLength: 0 }));
  const paths = fc.oneof(
    fc.constantFrom("/", "/mcp/../admin", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/v1/keys", "/v1/keys/verify/", "/healthz/x", "/%ff", "/mcp%00", "//mcp", "/?admin_key=x"),
    // Express routes "/mcp/" and "/MCP" as "/mcp": neither is a bad path.
    fc.webPath().filter((p) => !["/mcp", "/healthz", "/v1/keys/verify"].includes(p.toLowerCase().replace(/\/+$/, "").replace(/^(?!\/)/, "/"))),
  );
  for (const path of sample(paths, 40, 19)) add("unknown path", request("POST", path.startsWith("/") ? path : `/${path}`, mcpHeaders(good.key), INITIALIZE));

  // Origin and Host that do not name this server.
  const origins = fc.oneof(fc.constantFrom("https://evil.example", "http://127.0.0.1.evil.example", "null", "file://", "http://localhost.evil:3000"), fc.webUrl().filter((u) => !/^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(\/|$)/.test(u)));
  for (const origin of sample(origins, 30, 20)) add("foreign Origin", request("POST", "/mcp", mcpHeaders(good.key, [["Origin", origin]]), INITIALIZE), { statuses: [403] });
  const hosts = fc.oneof(fc.constantFrom("evil.example", "127.0.0.1.nip.io", "localhost.evil", "", "[::2]:80"), fc.domain());
  for (const host of sample(hosts, 30, 21)) add("foreign Host", request("POST", "/mcp", mcpHeaders(good.key), INITIALIZE, { host }));

  // Broken framing: request lines and header lines the HTTP parser must refuse.
  const framing = [
    "GARBAGE\r\n\r\n",
    "POST /mcp\r\n\r\n",
    "POST /mcp HTTP/9.9\r\nHost: x\r\n\r\n",
    "POST  /mcp  HTTP/1.1\r\nHost: x\r\n\r\n",
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nno colon here\r\n\r\n`,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nX-Nul: a\u0000b\r\n\r\n`,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n Folded: header\r\n\r\n`,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Length: -5\r\n\r\n`,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Length: 1e3\r\n\r\n`,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n`,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nBad Name: x\r\n\r\n`,
    "\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003", // a TLS ClientHello on the plain port
  ];
  for (let i = 0; i < 4; i++) for (const text of framing) add("broken framing", Buffer.from(text, "latin1"), { halfClose: true });
  for (const bytes of sample(garbageBytes, 30, 22)) add("random bytes instead of a request", Buffer.concat([bytes, Buffer.from("\r\n\r\n")]), { halfClose: true });

  return cases;
}

/** The body of a response: what follows the head. */
const bodyOf = (exchange: RawExchange) => exchange.text.split("\r\n\r\n").slice(1).join("\r\n\r\n");
const STACK_TRACE = /\n\s+at [^\n]*[:(]\d+|\bat (?:async )?[\w.<>]+ \(|node_modules|node:internal|\/work\/|\bdist\/|SqliteError|TypeError|ReferenceError/;

describe("hostile HTTP requests", () => {
  it("at least 1,000 malformed requests each get a 4xx without a stack trace, and the server stays healthy", async () => {
    const cases = buildCases();
    expect(cases.length).toBeGreaterThanOrEqual(1000);
    const results = await pool(cases, 8, async (c) => ({ c, exchange: await rawExchange(server.port, c.payload, { halfClose: c.halfClose, timeoutMs: 10_000 }) }));

    const failures: string[] = [];
    const byStatus: Record<string, number> = {};
    const byKind: Record<string, Set<number | null>> = {};
    for (const { c, exchange } of results) {
      byStatus[String(exchange.status)] = (byStatus[String(exchange.status)] ?? 0) + 1;
      (byKind[c.kind] ??= new Set()).add(exchange.status);
      const payload = (typeof c.payload === "string" ? c.payload : c.payload.toString("latin1")).slice(0, 160);
      const status = exchange.status;
      if (exchange.timedOut) failures.push(`${c.kind}: no answer within 10 s (${JSON.stringify(payload)})`);
      else if (status === null) failures.push(`${c.kind}: connection closed without a response (${JSON.stringify(payload)})`);
      else if (status < 400 || status > 499) failures.push(`${c.kind}: ${status} (${JSON.stringify(payload)}) → ${JSON.stringify(bodyOf(exchange).slice(0, 200))}`);
      else if (c.statuses && !c.statuses.includes(status)) failures.push(`${c.kind}: ${status}, expected ${c.statuses.join("/")}`);
      if (STACK_TRACE.test(bodyOf(exchange))) failures.push(`${c.kind}: stack trace or internals in the body: ${bodyOf(exchange).slice(0, 300)}`);
    }
    console.log(
      `seed ${SEED}: ${cases.length} hostile requests; statuses ${JSON.stringify(byStatus)}\n` +
        Object.entries(byKind)
          .map(([kind, statuses]) => `  ${kind}: ${[...statuses].join(",")}`)
          .join("\n"),
    );
    expect(failures.slice(0, 10), `${failures.length} of ${cases.length} requests were not answered with a proper 4xx`).toEqual([]);

    // Still alive and well: the health check, then a good authenticated session with real work.
    expect(server.child.exitCode).toBeNull();
    const health = await fetch(`${server.base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok", database: "ok" });
    const { client, transport } = await connectHttp(server.url, keys.good.key);
    expect((await callOk<{ user_name: string; transport: string }>(client, "whoami")).user_name).toBe("hostile");
    const created = await callOk<{ id: string; key: string }>(client, "create_api_key", { name: "after the storm" });
    expect((await callOk<{ valid: boolean }>(client, "verify_api_key", { key: created.key })).valid).toBe(true);
    expect((await call(client, "revoke_api_key", { id: created.id })).ok).toBe(true);
    const verify = await fetch(`${server.base}/v1/keys/verify`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${keys.gateway.key}` },
      body: VERIFY_BODY(keys.good.key),
    });
    expect(verify.status).toBe(200);
    expect(((await verify.json()) as { valid: boolean }).valid).toBe(true);
    await transport.terminateSession();
    await client.close();

    // Nothing the hostile requests did was an unexpected fault on the server's side.
    const serious = server.stderr().split("\n").filter((line) => /"level":(50|60)|Unhandled|uncaught|MaxListeners/i.test(line));
    expect(serious.slice(0, 3)).toEqual([]);
  });
});
