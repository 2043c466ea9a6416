import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { generateToken } from "../../../src/keys/token.js";
import type { CreatedApiKey } from "../../../src/service/types.js";
import { rawRequest, type RawResponse } from "../../helpers/http.js";
import { startInProcess, type InProcessServer } from "../../helpers/inprocess.js";

// POST /v1/keys/verify per status, in process (README, "The verify endpoint"): every request is
// sent to both adapters, the gateway fast path (the bare path) and the Express route (a query
// string sends it there), and each must give exactly the expected status, headers and body.
// Requests the fast path does not take (an Origin, another method) reach Express on both.

const INVALID = "The bearer token is malformed, unknown, revoked or expired";
const MISSING = "This endpoint needs a keywarden API key, sent as Authorization: Bearer kw_…; keywarden does not use OAuth";
const JSON_TYPE = "application/json; charset=utf-8";
const VIAS = { fast: "/v1/keys/verify", express: "/v1/keys/verify?via=express" } as const;

interface Case {
  name: string;
  method?: string;
  headers: () => Record<string, string>;
  body?: () => string | Buffer;
  status: number;
  /** Headers the answer has exactly (lower case); content-type is always checked. */
  expectHeaders?: Record<string, string | undefined>;
  /** The exact JSON body. */
  expectBody: () => unknown;
}

const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });
const json = { "Content-Type": "application/json" };

/** The answer's headers without those that differ per connection. */
function stableHeaders(response: RawResponse): Record<string, unknown> {
  const { date: _date, connection: _connection, "keep-alive": _keepAlive, ...rest } = response.headers;
  return rest;
}

async function both(server: InProcessServer, test: Pick<Case, "method" | "headers" | "body">): Promise<Record<keyof typeof VIAS, RawResponse>> {
  const base = `http://127.0.0.1:${server.server.port}`;
  const send = (path: string) => rawRequest(`${base}${path}`, { method: test.method ?? "POST", headers: test.headers(), body: test.body?.() });
  return { fast: await send(VIAS.fast), express: await send(VIAS.express) };
}

function expectAnswer(response: RawResponse, test: Case, via: string): void {
  const label = `${test.name} (${via})`;
  expect(response.status, label).toBe(test.status);
  expect(response.headers["content-type"], label).toBe(JSON_TYPE);
  for (const [name, value] of Object.entries(test.expectHeaders ?? {})) expect(response.headers[name], `${label}: ${name}`).toBe(value);
  expect(response.json(), label).toStrictEqual(test.expectBody());
}

describe("POST /v1/keys/verify, per status, on the fast path and through Express", () => {
  let server: InProcessServer;
  let gateway: CreatedApiKey;
  let agent: CreatedApiKey;
  let checked: CreatedApiKey;
  let revoked: CreatedApiKey;
  const unknown = generateToken().token;

  beforeAll(async () => {
    server = await startInProcess();
    gateway = await server.mint("gateway", ["keys:verify"], "ops");
    agent = await server.mint("agent", ["tools:read", "tools:execute"], "ops");
    checked = await server.mint("checked", ["orders:read"], "alice");
    revoked = await server.mint("revoked", ["orders:read"], "alice");
    await server.service.revokeApiKey(await server.operator("alice"), { id: revoked.id, reason: "test" });
  });
  afterAll(() => server.close());

  const record = (key: CreatedApiKey, valid: boolean, code: string) => ({
    valid,
    code,
    key_id: key.id,
    key_prefix: key.key_prefix,
    user_id: key.user_id,
    organization_id: expect.stringMatching(/^org_/),
    project_id: null,
    scopes: ["orders:read"],
    expires_at: key.expires_at,
  });
  const nothing = (code: string) => ({ valid: false, code, key_id: null, key_prefix: null, user_id: null, organization_id: null, project_id: null, scopes: null, expires_at: null });
  const validation = (message: string, errors: unknown[]) => ({ error: { code: "validation_error", message, errors } });
  const parseError = { error: { code: "parse_error", message: "Parse error: the body is not valid JSON", errors: [] } };

  const cases: Case[] = [
    {
      name: "200 valid",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => JSON.stringify({ key: checked.key }),
      status: 200,
      expectBody: () => record(checked, true, "valid"),
    },
    {
      name: "200 valid, charset given",
      headers: () => ({ "Content-Type": "application/json; charset=utf-8", ...bearer(gateway.key) }),
      body: () => JSON.stringify({ key: checked.key, required_scopes: ["orders:read"] }),
      status: 200,
      expectBody: () => record(checked, true, "valid"),
    },
    {
      name: "200 insufficient_scope",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => JSON.stringify({ key: checked.key, required_scopes: ["orders:write"] }),
      status: 200,
      expectBody: () => record(checked, false, "insufficient_scope"),
    },
    {
      name: "200 revoked",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => JSON.stringify({ key: revoked.key }),
      status: 200,
      expectBody: () => record(revoked, false, "revoked"),
    },
    {
      name: "200 not_found",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => JSON.stringify({ key: unknown }),
      status: 200,
      expectBody: () => nothing("not_found"),
    },
    {
      name: "200 malformed",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => JSON.stringify({ key: "kw_nope" }),
      status: 200,
      expectBody: () => nothing("malformed"),
    },
    {
      name: "400 a body without key",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => JSON.stringify({ token: "x" }),
      status: 400,
      expectBody: () => validation("2 fields are invalid", [expect.objectContaining({ key: "key" }), expect.objectContaining({ key: "token" })]),
    },
    {
      name: "400 more required scopes than a key can hold, named as the body names them",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => JSON.stringify({ key: checked.key, required_scopes: Array.from({ length: 51 }, (_, i) => `s${i}`) }),
      status: 400,
      expectBody: () => validation("invalid required_scopes: must name at most 50 scopes", [{ key: "required_scopes", message: "must name at most 50 scopes" }]),
    },
    {
      name: "400 an empty body (read as {})",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => "",
      status: 400,
      expectBody: () => validation(expect.stringMatching(/^invalid key: /) as unknown as string, [{ key: "key", message: expect.any(String) }]),
    },
    {
      name: "400 an array body",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => "[]",
      status: 400,
      expectBody: () =>
        validation('the body must be a JSON object: {"key": "…", "required_scopes": ["…"]}', [{ key: "body", message: "expected a JSON object (Content-Type: application/json)" }]),
    },
    { name: "400 bad JSON", headers: () => ({ ...json, ...bearer(gateway.key) }), body: () => '{"key": ', status: 400, expectBody: () => parseError },
    { name: "400 a JSON string", headers: () => ({ ...json, ...bearer(gateway.key) }), body: () => '"kw_x"', status: 400, expectBody: () => parseError },
    {
      name: "401 no caller key",
      headers: () => json,
      body: () => JSON.stringify({ key: checked.key }),
      status: 401,
      expectHeaders: { "www-authenticate": 'Bearer realm="keywarden"' },
      expectBody: () => ({ error: "unauthorized", error_description: MISSING }),
    },
    {
      name: "401 a bad caller key",
      headers: () => ({ ...json, ...bearer(unknown) }),
      body: () => JSON.stringify({ key: checked.key }),
      status: 401,
      expectHeaders: { "www-authenticate": `Bearer realm="keywarden", error="invalid_token", error_description="${INVALID}"` },
      expectBody: () => ({ error: "invalid_token", error_description: INVALID }),
    },
    {
      name: "403 a caller key without keys:verify",
      headers: () => ({ ...json, ...bearer(agent.key) }),
      body: () => JSON.stringify({ key: checked.key }),
      status: 403,
      expectHeaders: {
        "www-authenticate": 'Bearer error="insufficient_scope", error_description="This key holds none of the scopes this endpoint needs", scope="keys:verify admin"',
      },
      expectBody: () => ({ error: "insufficient_scope", error_description: "This endpoint needs a key with one of: keys:verify, admin" }),
    },
    {
      name: "403 a foreign Host",
      headers: () => ({ ...json, ...bearer(gateway.key), Host: "evil.example" }),
      body: () => "{}",
      status: 403,
      expectBody: () => ({ error: { code: "forbidden", message: "Invalid Host: evil.example", errors: [] } }),
    },
    {
      name: "403 a foreign Origin",
      headers: () => ({ ...json, ...bearer(gateway.key), Origin: "https://evil.example" }),
      body: () => "{}",
      status: 403,
      expectBody: () => ({ error: { code: "forbidden", message: "Forbidden: this Origin is not allowed", errors: [] } }),
    },
    {
      name: "400 a duplicated Authorization",
      headers: () => ({ ...json, Authorization: [`Bearer ${gateway.key}`, `Bearer ${gateway.key}`] as unknown as string }),
      body: () => "{}",
      status: 400,
      expectBody: () => ({ error: { code: "bad_request", message: "Bad Request: the authorization header appears more than once", errors: [] } }),
    },
    {
      name: "405 GET",
      method: "GET",
      headers: () => bearer(gateway.key),
      status: 405,
      expectHeaders: { allow: "POST" },
      expectBody: () => ({ error: { code: "method_not_allowed", message: "Method not allowed: use POST", errors: [] } }),
    },
    {
      name: "413 a body over 1 MiB",
      headers: () => ({ ...json, ...bearer(gateway.key) }),
      body: () => Buffer.alloc(1024 * 1024 + 10, 0x20),
      status: 413,
      expectBody: () => ({ error: { code: "payload_too_large", message: "Payload too large: the limit is 1048576 bytes", errors: [] } }),
    },
  ];

  for (const test of cases) {
    it(test.name, async () => {
      const answers = await both(server, test);
      expectAnswer(answers.fast, test, "fast path");
      expectAnswer(answers.express, test, "Express");
      expect(stableHeaders(answers.fast), test.name).toStrictEqual(stableHeaders(answers.express));
      expect(answers.fast.text, test.name).toBe(answers.express.text);
      if (test.status === 413) expect([answers.fast.headers.connection, answers.express.headers.connection]).toStrictEqual(["close", "close"]);
    });
  }

  it("writes call.denied for a caller without the scope, once per request, on both paths", async () => {
    const before = (await server.service.listKeyEvents(await server.operator("ops"), { key_id: agent.id })).events.filter((event) => event.event_type === "call.denied").length;
    await both(server, { headers: () => ({ ...json, ...bearer(agent.key) }), body: () => "{}" });
    const after = (await server.service.listKeyEvents(await server.operator("ops"), { key_id: agent.id })).events.filter((event) => event.event_type === "call.denied");
    expect(after.length - before).toBe(2);
    expect(after[0]!.detail).toMatchObject({ endpoint: "/v1/keys/verify", needed_scopes: ["keys:verify", "admin"] });
  });
});

/**
 * A POST with Content-Length, as gateways send it (node:http's client sends a body written
 * before end() chunked): in one write with its headers, or the body `delayMs` after them.
 * Answers the status and body of the response.
 */
function postWithLength(port: number, path: string, headers: Record<string, string>, body: string, delayMs: number | null): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const head = [`POST ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `Content-Length: ${Buffer.byteLength(body)}`, "Connection: close", "", ""].join("\r\n");
    const socket = connect(port, "127.0.0.1", () => {
      if (delayMs === null) socket.write(head + body);
      else {
        socket.write(head);
        setTimeout(() => socket.write(body), delayMs);
      }
    });
    let raw = "";
    socket.on("data", (chunk: Buffer) => (raw += chunk.toString("utf8")));
    socket.on("end", () => {
      const [status, text] = [Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1]), raw.slice(raw.indexOf("\r\n\r\n") + 4)];
      resolve({ status, body: text });
    });
    socket.on("error", reject);
  });
}

describe("POST /v1/keys/verify with a Content-Length body, whole or still arriving, on both paths", () => {
  let server: InProcessServer;
  let gateway: CreatedApiKey;
  let checked: CreatedApiKey;

  beforeAll(async () => {
    server = await startInProcess();
    gateway = await server.mint("gateway", ["keys:verify"], "ops");
    checked = await server.mint("checked", ["orders:read"], "alice");
  });
  afterAll(() => server.close());

  const bodies = () => [
    { body: JSON.stringify({ key: checked.key }), status: 200, valid: true },
    { body: JSON.stringify({ key: checked.key, required_scopes: ["orders:write"] }), status: 200, valid: false },
    { body: "", status: 400 },
    { body: '{"key": ', status: 400 },
    { body: `{"key": "${"é".repeat(20)}"}`, status: 200, valid: false },
  ];

  for (const delayMs of [null, 30]) {
    it(delayMs === null ? "the body in the same write as the headers" : "the body 30 ms after the headers", async () => {
      for (const { body, status, valid } of bodies()) {
        const headers = { "Content-Type": "application/json", Authorization: `Bearer ${gateway.key}` };
        const fast = await postWithLength(server.server.port, VIAS.fast, headers, body, delayMs);
        const express = await postWithLength(server.server.port, VIAS.express, headers, body, delayMs);
        expect(fast.status, body).toBe(status);
        expect(fast.body, body).toBe(express.body);
        if (valid !== undefined) expect((JSON.parse(fast.body) as { valid: boolean }).valid, body).toBe(valid);
      }
    });
  }
});

describe("POST /v1/keys/verify, the statuses of a failing server or address, on both paths", () => {
  it("429 with Retry-After once the address is over its failure limit; a good key still gets 200", async () => {
    const server = await startInProcess({ authFailureLimit: 1 });
    try {
      const gateway = await server.mint("gateway", ["keys:verify"], "ops");
      const bad = { headers: () => ({ ...json, ...bearer(generateToken().token) }), body: () => "{}" };
      expect((await rawRequest(`http://127.0.0.1:${server.server.port}${VIAS.fast}`, { method: "POST", headers: bad.headers(), body: "{}" })).status).toBe(401);
      const answers = await both(server, bad);
      for (const [via, answer] of Object.entries(answers)) {
        expect(answer.status, via).toBe(429);
        expect(Number(answer.headers["retry-after"]), via).toBeGreaterThanOrEqual(1);
        expect(Number(answer.headers["retry-after"]), via).toBeLessThanOrEqual(300);
        expect(answer.json(), via).toStrictEqual({
          error: { code: "rate_limited", message: `too many failed authentication attempts from this address; retry in ${answer.headers["retry-after"]} s`, errors: [] },
        });
      }
      const good = await both(server, { headers: () => ({ ...json, ...bearer(gateway.key) }), body: () => JSON.stringify({ key: "kw_nope" }) });
      expect([good.fast.status, good.express.status]).toStrictEqual([200, 200]);
    } finally {
      await server.close();
    }
  });

  it("503 temporarily_unavailable when the store cannot judge the caller's key, 500 internal_error when verification fails; the log has the detail", async () => {
    const server = await startInProcess();
    try {
      const gateway = await server.mint("gateway", ["keys:verify"], "ops");
      const request = { headers: () => ({ ...json, ...bearer(gateway.key) }), body: () => JSON.stringify({ key: "kw_nope" }) };

      // Only the verification of the checked key fails: the caller's own authentication goes through.
      const verifyApiKey = server.service.verifyApiKey.bind(server.service);
      const verifyFails = vi
        .spyOn(server.service, "verifyApiKey")
        .mockImplementation((token, options) => (token === "kw_nope" ? Promise.reject(new Error("disk on fire")) : verifyApiKey(token, options)));
      const internal = await both(server, request);
      for (const [via, answer] of Object.entries(internal)) {
        expect(answer.status, via).toBe(500);
        expect(answer.json(), via).toStrictEqual({ error: { code: "internal_error", message: "internal error; the operation was not completed", errors: [] } });
      }
      expect(stableHeaders(internal.fast)).toStrictEqual(stableHeaders(internal.express));
      verifyFails.mockRestore();
      expect(server.log.filter((line) => line.message === "request failed unexpectedly").map((line) => line.object.path)).toStrictEqual(["/v1/keys/verify", "/v1/keys/verify"]);

      vi.spyOn(server.service, "authenticateKey").mockRejectedValue(new Error("database is locked"));
      const unavailable = await both(server, request);
      for (const [via, answer] of Object.entries(unavailable)) {
        expect(answer.status, via).toBe(503);
        expect(answer.headers["www-authenticate"], via).toBeUndefined();
        expect(answer.headers["retry-after"], via).toBe("1");
        expect(answer.json(), via).toStrictEqual({ error: "temporarily_unavailable", error_description: "The key store did not answer; retry later" });
      }
      expect(server.log.filter((line) => line.message === "authentication could not be completed")).toHaveLength(2);
    } finally {
      vi.restoreAllMocks();
      await server.close();
    }
  });
});
