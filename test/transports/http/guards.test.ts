import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import type { Principal } from "../../../src/service/principal.js";
import { bodyOf, INVALID_TOKEN, MISSING_TOKEN, refusal, unauthorizedRefusal } from "../../../src/transports/http/answers.js";
import { presentedCredential } from "../../../src/transports/http/credentials.js";
import { createVerifyFastPath } from "../../../src/transports/http/fast-path.js";
import {
  corsAnswer,
  defaultAllowedHosts,
  headerCountGuard,
  endpointMethods,
  methodGuard,
  normalizeOrigin,
  originGuard,
  scopeGuard,
  targetAndHostGuard,
} from "../../../src/transports/http/guards.js";
import type { Pipeline } from "../../../src/transports/http/pipeline.js";
import { RequestLog } from "../../../src/transports/http/request-log.js";
import { parseJsonBody } from "../../../src/transports/http/verify.js";

// The pure guards of the HTTP transport, called directly: request facts in, refusal or null out.

const LOOPBACK = defaultAllowedHosts("127.0.0.1");

describe("headerCountGuard", () => {
  it("refuses a second Host, Authorization, Mcp-Session-Id or Content-Type, whatever the case", () => {
    for (const name of ["Host", "authorization", "MCP-Session-Id", "content-type"]) {
      expect(headerCountGuard(["Host", "h", name, "a", "Accept", "*/*", name.toUpperCase(), "b"].slice(name === "Host" ? 2 : 0), "1.1")).toStrictEqual({
        status: 400,
        code: "bad_request",
        message: `Bad Request: the ${name.toLowerCase()} header appears more than once`,
      });
    }
  });
  it("lets other repeated headers and single ones through", () => {
    expect(headerCountGuard(["Accept", "a", "Accept", "b", "Host", "x", "Authorization", "Bearer y"], "1.1")).toBeNull();
  });
  it("refuses an HTTP/1.1 request without Host (RFC 9112 section 3.2), not an HTTP/1.0 one", () => {
    const missing = { status: 400, code: "bad_request", message: "Bad Request: an HTTP/1.1 request must have a Host header" };
    expect(headerCountGuard([], "1.1")).toStrictEqual(missing);
    expect(headerCountGuard(["Accept", "*/*"], "1.1")).toStrictEqual(missing);
    expect(headerCountGuard([], "1.0")).toBeNull();
    expect(headerCountGuard(["host", ""], "1.1")).toBeNull(); // present but empty: targetAndHostGuard's to judge
  });
});

describe("targetAndHostGuard", () => {
  const hostRefusal = (message: string) => ({ status: 403, code: "forbidden", message });

  it("takes the loopback names, port-agnostic, by default on loopback", () => {
    expect(LOOPBACK).toStrictEqual(["localhost", "127.0.0.1", "[::1]"]);
    for (const host of ["127.0.0.1:3000", "localhost", "[::1]:8080", "LOCALHOST:1"]) expect(targetAndHostGuard("/mcp", host, LOOPBACK), host).toBeNull();
  });
  it("refuses another Host, a missing one and one that is not a host", () => {
    expect(targetAndHostGuard("/mcp", "evil.example:3000", LOOPBACK)).toStrictEqual(hostRefusal("Invalid Host: evil.example"));
    expect(targetAndHostGuard("/mcp", undefined, LOOPBACK)).toStrictEqual(hostRefusal("Missing Host header"));
    expect(targetAndHostGuard("/mcp", "a b", LOOPBACK)).toStrictEqual(hostRefusal("Invalid Host header: a b"));
  });
  it("checks the target's authority, not Host, for a request in absolute form (RFC 9112 section 3.2.2)", () => {
    expect(targetAndHostGuard("http://evil.example/mcp", "127.0.0.1", LOOPBACK)).toStrictEqual(hostRefusal("Invalid Host: evil.example"));
    expect(targetAndHostGuard("http://127.0.0.1:9/mcp", "evil.example", LOOPBACK)).toBeNull();
  });
  it("refuses a target that is neither a path nor an http(s) URL, even when Host is not checked", () => {
    const bad = { status: 400, code: "bad_request", message: "Bad Request: the request target must be a path or an http(s) URL" };
    for (const target of ["*", "127.0.0.1:80", "ftp://127.0.0.1/mcp"]) {
      expect(targetAndHostGuard(target, "127.0.0.1", LOOPBACK), target).toStrictEqual(bad);
      expect(targetAndHostGuard(target, "127.0.0.1", null), target).toStrictEqual(bad);
    }
  });
  it("checks nothing more when bound to every interface without --allowed-hosts, or with []", () => {
    expect(defaultAllowedHosts("0.0.0.0")).toBeNull();
    expect(targetAndHostGuard("/mcp", "anything.example", null)).toBeNull();
    expect(targetAndHostGuard("/mcp", "anything.example", [])).toBeNull();
  });
  it("answers to the bound address itself otherwise", () => {
    expect(defaultAllowedHosts("10.0.0.5")).toStrictEqual(["10.0.0.5"]);
    expect(defaultAllowedHosts("fd00::5")).toStrictEqual(["[fd00::5]"]);
    expect(targetAndHostGuard("/mcp", "[fd00::5]:3000", ["[fd00::5]"])).toBeNull();
  });
});

describe("originGuard", () => {
  const foreign = { status: 403, code: "forbidden", message: "Forbidden: this Origin is not allowed" };
  it("lets a request without Origin through (not a browser)", () => {
    expect(originGuard(undefined, null)).toBeNull();
    expect(originGuard(undefined, new Set(["https://app.example.com"]))).toBeNull();
  });
  it("allows loopback origins by default, and nothing else", () => {
    for (const origin of ["http://localhost:5173", "http://127.0.0.1", "http://[::1]:8080"]) expect(originGuard(origin, null), origin).toBeNull();
    for (const origin of ["https://evil.example", "null", "file://", "http://localhost.evil.example"]) expect(originGuard(origin, null), origin).toStrictEqual(foreign);
  });
  it("allows exactly the configured origins when given, normalized", () => {
    const allowed = new Set([normalizeOrigin("https://App.Example.com:443/")!]);
    expect(originGuard("https://app.example.com", allowed)).toBeNull();
    expect(originGuard("http://localhost:5173", allowed)).toStrictEqual(foreign);
    expect(originGuard("https://app.example.com:8443", allowed)).toStrictEqual(foreign);
  });
});

describe("corsAnswer", () => {
  const methods = endpointMethods(false);
  it("gives no CORS headers without Origin, or off the endpoints", () => {
    expect(corsAnswer("POST", "/mcp", undefined, undefined, methods)).toBeNull();
    expect(corsAnswer("POST", "/elsewhere", "http://localhost", undefined, methods)).toBeNull();
  });
  it("lets an allowed page read the session id and the challenge", () => {
    expect(corsAnswer("POST", "/mcp", "http://localhost:5173", undefined, methods)).toStrictEqual({
      preflight: false,
      headers: {
        Vary: "Origin",
        "Access-Control-Allow-Origin": "http://localhost:5173",
        "Access-Control-Expose-Headers": "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Retry-After",
      },
    });
  });
  it("answers a preflight with the endpoint's methods; OAuth paths get GET and POST", () => {
    const preflight = (path: string, stateless = false) => corsAnswer("OPTIONS", path, "http://localhost", "POST", endpointMethods(stateless));
    expect(preflight("/mcp")).toMatchObject({ preflight: true, headers: { "Access-Control-Allow-Methods": "POST, GET, DELETE", "Access-Control-Max-Age": "600" } });
    expect(preflight("/mcp", true)?.headers["Access-Control-Allow-Methods"]).toBe("POST");
    expect(preflight("/v1/keys/verify")?.headers["Access-Control-Allow-Methods"]).toBe("POST");
    expect(preflight("/healthz")?.headers["Access-Control-Allow-Methods"]).toBe("GET, HEAD");
    expect(preflight("/.well-known/oauth-protected-resource/mcp")?.headers["Access-Control-Allow-Methods"]).toBe("GET, POST");
    expect(preflight("/mcp")?.headers["Access-Control-Allow-Headers"]).toBe("Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID");
  });
  it("is no preflight without Access-Control-Request-Method", () => {
    expect(corsAnswer("OPTIONS", "/mcp", "http://localhost", undefined, methods)?.preflight).toBe(false);
  });
});

describe("methodGuard", () => {
  it("answers another method 405 with Allow", () => {
    expect(methodGuard("POST", ["POST"])).toBeNull();
    expect(methodGuard("PUT", ["POST", "GET", "DELETE"])).toStrictEqual({
      status: 405,
      code: "method_not_allowed",
      message: "Method not allowed: use POST or GET or DELETE",
      headers: { Allow: "POST, GET, DELETE" },
    });
  });
});

describe("scopeGuard", () => {
  const principal = (scopes: string[] | null): Principal => ({
    userId: "usr_1",
    userName: "u",
    organizationId: "org_1",
    transport: "http",
    keyId: "key_1",
    scopes,
    isAdmin: scopes?.includes("admin") ?? false,
    clientAddress: "127.0.0.1",
  });
  it("lets a key with one of the scopes through, admin included", () => {
    expect(scopeGuard(principal(["keys:verify"]), ["keys:verify", "admin"])).toBeNull();
    expect(scopeGuard(principal(["admin"]), ["keys:verify", "admin"])).toBeNull();
  });
  it("refuses one without any with RFC 6750's insufficient_scope, naming the scopes", () => {
    expect(scopeGuard(principal(["orders:read"]), ["tools:read", "tools:execute", "admin"])).toStrictEqual({
      status: 403,
      code: "insufficient_scope",
      message: "This endpoint needs a key with one of: tools:read, tools:execute, admin",
      headers: {
        "WWW-Authenticate": 'Bearer error="insufficient_scope", error_description="This key holds none of the scopes this endpoint needs", scope="tools:read tools:execute admin"',
      },
      body: { error: "insufficient_scope", error_description: "This endpoint needs a key with one of: tools:read, tools:execute, admin" },
    });
  });
});

describe("credentials", () => {
  it("takes the Bearer credential; anything else in Authorization is one that fails, never the query", () => {
    expect(presentedCredential("Bearer kw_abc", undefined, false)).toBe("kw_abc");
    expect(presentedCredential("bearer   kw_abc ", undefined, false)).toBe("kw_abc");
    expect(presentedCredential("Basic dXNlcjpwYXNz", "kw_q", true)).toBe("");
    expect(presentedCredential("Bearer", undefined, false)).toBe("");
  });
  it("takes ?admin_key= only when allowed, and only a single string", () => {
    expect(presentedCredential(undefined, "kw_q", false)).toBeNull();
    expect(presentedCredential(undefined, "kw_q", true)).toBe("kw_q");
    expect(presentedCredential(undefined, ["kw_a", "kw_b"], true)).toBe("");
    expect(presentedCredential(undefined, undefined, true)).toBeNull();
  });
  it("answers a missing credential with a bare challenge and a failed one with invalid_token (RFC 6750 section 3.1)", () => {
    expect(unauthorizedRefusal(false)).toBe(MISSING_TOKEN);
    expect(unauthorizedRefusal(true)).toBe(INVALID_TOKEN);
    expect(MISSING_TOKEN.headers).toStrictEqual({ "WWW-Authenticate": 'Bearer realm="keywarden"' });
    expect(INVALID_TOKEN.body).toStrictEqual({ error: "invalid_token", error_description: "The bearer token is malformed, unknown, revoked or expired" });
  });
});

describe("envelopes", () => {
  it("writes a refusal as JSON-RPC on /mcp and as keywarden's error body elsewhere; a fixed body everywhere", () => {
    const notFound = refusal(404, "not_found", "Session not found");
    expect(bodyOf("/mcp", notFound)).toStrictEqual({ jsonrpc: "2.0", error: { code: -32000, message: "Session not found" }, id: null });
    expect(bodyOf("/mcp", refusal(400, "parse_error", "Parse error"))).toStrictEqual({ jsonrpc: "2.0", error: { code: -32700, message: "Parse error" }, id: null });
    expect(bodyOf("/v1/keys/verify", notFound)).toStrictEqual({ error: { code: "not_found", message: "Session not found", errors: [] } });
    expect(bodyOf("/mcp", INVALID_TOKEN)).toBe(INVALID_TOKEN.body);
  });
});

describe("parseJsonBody (as body-parser in strict mode)", () => {
  const parseError = { status: 400, code: "parse_error", message: "Parse error: the body is not valid JSON" };
  it("reads an empty body as {}, and objects and arrays as themselves", () => {
    expect(parseJsonBody("  ")).toStrictEqual({ body: {} });
    expect(parseJsonBody('{"key":"x"}')).toStrictEqual({ body: { key: "x" } });
    expect(parseJsonBody("[1]")).toStrictEqual({ body: [1] });
  });
  it("refuses invalid JSON and every other JSON value", () => {
    for (const text of ['{"key": ', '"kw_x"', "1", "null", "true"]) expect(parseJsonBody(text), text).toStrictEqual(parseError);
  });
});

describe("the verify fast path takes only requests for which Express would add nothing", () => {
  const fastPath = (disabled = false) =>
    createVerifyFastPath({ pipeline: {} as Pipeline, verify: async () => ({ status: 200, body: {} }), requestLog: new RequestLog({ debug: () => undefined, error: () => undefined }), disabled, onError: () => undefined });
  const request = (overrides: { method?: string; url?: string; headers?: Record<string, string> } = {}) =>
    ({ method: "POST", url: "/v1/keys/verify", ...overrides, headers: { "content-type": "application/json", ...overrides.headers } }) as unknown as IncomingMessage;

  it("takes a plain JSON POST to the bare path", () => {
    expect(fastPath().takes(request(), false)).toBe(true);
    expect(fastPath().takes(request({ headers: { "content-type": "application/json; charset=UTF-8", "content-encoding": "identity" } }), false)).toBe(true);
  });
  it("leaves everything else to Express", () => {
    expect(fastPath().takes(request(), true)).toBe(false); // shutting down
    expect(fastPath(true).takes(request(), false)).toBe(false); // --no-auth, or a proxy to trust
    expect(fastPath().takes(request({ method: "GET" }), false)).toBe(false);
    expect(fastPath().takes(request({ url: "/v1/keys/verify?admin_key=x" }), false)).toBe(false);
    expect(fastPath().takes(request({ headers: { origin: "http://localhost" } }), false)).toBe(false);
    expect(fastPath().takes(request({ headers: { "content-type": "application/json; charset=latin1" } }), false)).toBe(false);
    expect(fastPath().takes(request({ headers: { "content-type": "text/plain" } }), false)).toBe(false);
    expect(fastPath().takes(request({ headers: { "content-encoding": "gzip" } }), false)).toBe(false);
  });
});
