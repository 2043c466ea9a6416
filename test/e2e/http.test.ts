import { existsSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/keys/token.js";
import { makeTempDir, secretOf } from "../helpers/harness.js";
import {
  connectHttpClient,
  initializeBody,
  MCP_HEADERS,
  mintKey,
  rawRequest,
  rpcBody,
  spawnHttpServer,
  toolError,
  type CreatedKey,
  type HttpServerProcess,
} from "../helpers/http.js";

const INVALID_TOKEN_DESCRIPTION = "The bearer token is malformed, unknown, revoked or expired";
const INVALID_TOKEN_HEADER = `Bearer realm="keywarden", error="invalid_token", error_description="${INVALID_TOKEN_DESCRIPTION}"`;

const READ_TOOLS = ["list_api_keys", "get_api_key", "verify_api_key", "whoami", "list_projects", "list_key_events"];
const EXECUTE_TOOLS = ["create_api_key", "update_api_key", "rotate_api_key", "revoke_api_key"];
const ALL_TOOLS = [
  "create_api_key",
  "list_api_keys",
  "get_api_key",
  "update_api_key",
  "rotate_api_key",
  "revoke_api_key",
  "verify_api_key",
  "whoami",
  "list_projects",
  "create_project",
  "list_key_events",
];

/** The same token with its last checksum character changed. */
function withBadChecksum(token: string): string {
  const last = token.at(-1)!;
  return token.slice(0, -1) + (last === "A" ? "B" : "A");
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDb(): string {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  return join(dir, "keywarden.db");
}

async function serve(args: string[]): Promise<HttpServerProcess> {
  const server = await spawnHttpServer(args);
  cleanups.push(() => server.stop());
  return server;
}

async function client(url: string, key: string | null): Promise<Client> {
  const { client } = await connectHttpClient(url, key);
  cleanups.push(() => client.close());
  return client;
}

const bearer = (key: string | null): Record<string, string> => (key === null ? {} : { Authorization: `Bearer ${key}` });

describe("keywarden serve: the authentication and authorization matrix over real HTTP", () => {
  let db: string;
  let server: HttpServerProcess;
  let keys: Record<"admin" | "reader" | "writer" | "writerSpare" | "gateway" | "revoked" | "expired" | "adminTarget", CreatedKey>;

  beforeAll(async () => {
    db = tempDb();
    keys = {
      admin: mintKey(db, "ops", "admin", "admin"),
      reader: mintKey(db, "reader", "reader", "tools:read"),
      writer: mintKey(db, "writer", "writer", "tools:execute"),
      writerSpare: mintKey(db, "writer", "writer spare", "tools:execute"),
      gateway: mintKey(db, "gateway", "gateway", "keys:verify"),
      revoked: mintKey(db, "victim", "to be revoked", "tools:read,tools:execute"),
      expired: mintKey(db, "victim", "to expire", "tools:read,tools:execute"),
      adminTarget: mintKey(db, "victim", "revoked by the admin", "tools:read,tools:execute"),
    };
    // An expired key cannot be made through the API (expires_at must be in the future): age it in the file.
    const raw = new Database(db);
    raw.prepare("UPDATE api_keys SET expires_at = '2020-01-01T00:00:00.000Z' WHERE id = ?").run(keys.expired.id);
    raw.close();
    server = await serve(["--db", db, "--auth-failure-limit", "1000"]);
    const admin = await client(server.url, keys.admin.key);
    const revoked = await admin.callTool({ name: "revoke_api_key", arguments: { id: keys.revoked.id, reason: "test" } });
    expect(revoked.structuredContent).toMatchObject({ id: keys.revoked.id, status: "revoked" });
  });

  it("gives exactly the designed answer in every cell", async () => {
    const badTokens: Record<string, string | null> = {
      "no token": null,
      malformed: "not-a-key",
      "bad checksum": withBadChecksum(keys.admin.key),
      unknown: generateToken("kw").token,
      revoked: keys.revoked.key,
      expired: keys.expired.key,
    };
    const observed: Record<string, Record<string, string>> = {};
    const answers = new Set<string>();
    const unauthenticatedAnswers = new Set<string>();

    const callRaw = async (key: string | null, body: string) => rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key) }, body });
    const verifyRaw = async (key: string | null) =>
      rawRequest(`${server.base}/v1/keys/verify`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...bearer(key) },
        body: JSON.stringify({ key: keys.reader.key }),
      });
    for (const [kind, token] of Object.entries(badTokens)) {
      const status = (response: { status: number; headers: Record<string, unknown>; text: string }) => {
        if (response.status === 401) (token === null ? unauthenticatedAnswers : answers).add(`${String(response.headers["www-authenticate"])} ${response.text}`);
        return String(response.status);
      };
      observed[kind] = {
        "list tools": status(await callRaw(token, initializeBody())),
        "read tool": status(await callRaw(token, rpcBody("tools/call", { name: "list_api_keys", arguments: {} }))),
        create: status(await callRaw(token, rpcBody("tools/call", { name: "create_api_key", arguments: { name: "x" } }))),
        revoke: status(await callRaw(token, rpcBody("tools/call", { name: "revoke_api_key", arguments: { id: keys.adminTarget.id } }))),
        "/v1/keys/verify": status(await verifyRaw(token)),
      };
    }

    const outcome = (result: object) => ((result as { isError?: boolean }).isError === true ? toolError(result).code : "ok");
    const rows: [string, string, string][] = [
      // row, key, the key to revoke
      ["tools:read key", keys.reader.key, keys.reader.id],
      ["tools:execute key", keys.writer.key, keys.writerSpare.id],
      ["admin key", keys.admin.key, keys.adminTarget.id],
    ];
    const details: Record<string, { tools: string[]; listed: unknown; created: unknown; revoked: unknown; verified: unknown }> = {};
    for (const [row, key, target] of rows) {
      const mcp = await client(server.url, key);
      const { tools } = await mcp.listTools();
      const listed = await mcp.callTool({ name: "list_api_keys", arguments: {} });
      const created = await mcp.callTool({ name: "create_api_key", arguments: { name: `made by ${row}` } });
      const revoked = await mcp.callTool({ name: "revoke_api_key", arguments: { id: target } });
      const verified = await verifyRaw(key);
      observed[row] = {
        "list tools": tools.map((tool) => tool.name).join(","),
        "read tool": outcome(listed),
        create: outcome(created),
        revoke: outcome(revoked),
        "/v1/keys/verify": verified.status === 200 ? `200 ${(verified.json() as { code: string }).code}` : String(verified.status),
      };
      details[row] = { tools: tools.map((tool) => tool.name), listed: listed.structuredContent, created: created.structuredContent, revoked: revoked.structuredContent, verified: verified.status === 200 ? verified.json() : null };
    }
    // A key with none of tools:read, tools:execute, admin is not a key to keywarden's MCP endpoint.
    observed["keys:verify key"] = {
      "list tools": String((await callRaw(keys.gateway.key, initializeBody())).status),
      "read tool": String((await callRaw(keys.gateway.key, rpcBody("tools/call", { name: "list_api_keys", arguments: {} }))).status),
      create: String((await callRaw(keys.gateway.key, rpcBody("tools/call", { name: "create_api_key", arguments: { name: "x" } }))).status),
      revoke: String((await callRaw(keys.gateway.key, rpcBody("tools/call", { name: "revoke_api_key", arguments: { id: keys.adminTarget.id } }))).status),
      "/v1/keys/verify": (await verifyRaw(keys.gateway.key)).status === 200 ? "200 valid" : "other",
    };

    const unauthorized = { "list tools": "401", "read tool": "401", create: "401", revoke: "401", "/v1/keys/verify": "401" };
    expect(observed).toStrictEqual({
      "no token": unauthorized,
      malformed: unauthorized,
      "bad checksum": unauthorized,
      unknown: unauthorized,
      revoked: unauthorized,
      expired: unauthorized,
      "tools:read key": { "list tools": READ_TOOLS.join(","), "read tool": "ok", create: "forbidden", revoke: "forbidden", "/v1/keys/verify": "403" },
      "tools:execute key": { "list tools": EXECUTE_TOOLS.join(","), "read tool": "forbidden", create: "ok", revoke: "ok", "/v1/keys/verify": "403" },
      "admin key": { "list tools": ALL_TOOLS.join(","), "read tool": "ok", create: "ok", revoke: "ok", "/v1/keys/verify": "200 valid" },
      "keys:verify key": { "list tools": "403", "read tool": "403", create: "403", revoke: "403", "/v1/keys/verify": "200 valid" },
    });

    // Every presented key that fails gets the same answer: header and body, whatever failed. A
    // request without any key gets the bare challenge of RFC 6750 section 3.1.
    expect([...answers]).toStrictEqual([`${INVALID_TOKEN_HEADER} {"error":"invalid_token","error_description":"${INVALID_TOKEN_DESCRIPTION}"}`]);
    expect([...unauthenticatedAnswers]).toStrictEqual([
      'Bearer realm="keywarden" {"error":"unauthorized","error_description":"This endpoint needs a keywarden API key, sent as Authorization: Bearer kw_…; keywarden does not use OAuth"}',
    ]);

    // What the ok cells did: a reader sees its own keys only, an admin every user's; a key mints at most its own scopes.
    const ownIds = (page: unknown) => (page as { keys: { id: string; user_id: string }[] }).keys.map((key) => key.user_id);
    expect(new Set(ownIds(details["tools:read key"]!.listed))).toStrictEqual(new Set([keys.reader.user_id]));
    expect(new Set(ownIds(details["admin key"]!.listed)).size).toBeGreaterThanOrEqual(5);
    expect(details["tools:execute key"]!.created).toMatchObject({ user_id: keys.writer.user_id, scopes: ["tools:execute"] });
    expect(details["admin key"]!.created).toMatchObject({ user_id: keys.admin.user_id, scopes: ["tools:read", "tools:execute"] });
    expect(details["tools:execute key"]!.revoked).toMatchObject({ id: keys.writerSpare.id, status: "revoked" });
    expect(details["admin key"]!.revoked).toMatchObject({ id: keys.adminTarget.id, user_id: keys.adminTarget.user_id, status: "revoked" });
    expect(details["admin key"]!.verified).toMatchObject({ valid: true, code: "valid", key_id: keys.reader.id, scopes: ["tools:read"] });
  });

  it("says forbidden, naming the scope, for a tool the key may not call, and writes call.denied", async () => {
    const reader = await client(server.url, keys.reader.key);
    const result = await reader.callTool({ name: "rotate_api_key", arguments: { id: keys.reader.id } });
    expect(toolError(result)).toStrictEqual({
      code: "forbidden",
      message: "calling rotate_api_key needs a key with the tools:execute scope",
      errors: [{ key: "scopes", message: "needs tools:execute", value: "tools:read" }],
    });
    const writer = await client(server.url, keys.writer.key);
    expect(toolError(await writer.callTool({ name: "create_project", arguments: { slug: "p", name: "P" } }))).toMatchObject({
      code: "forbidden",
      message: "calling create_project needs a key with the admin scope; connect with an admin key (keywarden admin create-key --scopes admin)",
    });
    const check = new Database(db, { readonly: true });
    const denied = check
      .prepare("SELECT actor_key_id, transport, client_address, detail FROM key_events WHERE event_type = 'call.denied' ORDER BY occurred_at")
      .all() as { actor_key_id: string; transport: string; client_address: string; detail: string }[];
    check.close();
    expect(denied.map((row) => [row.actor_key_id, JSON.parse(row.detail).tool ?? JSON.parse(row.detail).endpoint])).toEqual(
      expect.arrayContaining([
        [keys.reader.id, "rotate_api_key"],
        [keys.writer.id, "create_project"],
        [keys.gateway.id, "/mcp"],
      ]),
    );
    expect(denied.every((row) => row.transport === "http" && row.client_address === "127.0.0.1")).toBe(true);
  });

  it("writes auth.failed with the reason, the address and never the token", async () => {
    // Failures are written in batches, at most a second late: wait for every kind to arrive.
    const failedRows = () => {
      const check = new Database(db, { readonly: true });
      const rows = check.prepare("SELECT key_id, client_address, detail FROM key_events WHERE event_type = 'auth.failed'").all();
      check.close();
      return rows as { key_id: string | null; client_address: string; detail: string }[];
    };
    let failed = failedRows();
    for (let attempt = 0; attempt < 50 && new Set(failed.map((row) => JSON.parse(row.detail).reason)).size < 5; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      failed = failedRows();
    }
    const check = new Database(db, { readonly: true });
    const everything = (check.prepare("SELECT group_concat(detail, ' ') AS all_details FROM key_events").get() as { all_details: string }).all_details;
    check.close();
    const reasons = new Set(failed.map((row) => JSON.parse(row.detail).reason));
    expect(reasons).toStrictEqual(new Set(["missing", "malformed", "not_found", "revoked", "expired"]));
    expect(failed.filter((row) => JSON.parse(row.detail).reason === "revoked").every((row) => row.key_id === keys.revoked.id)).toBe(true);
    expect(failed.every((row) => row.client_address === "127.0.0.1")).toBe(true);
    for (const key of [keys.revoked, keys.expired, keys.admin]) expect(everything).not.toContain(secretOf(key.key));
    expect(server.stderr()).not.toContain(secretOf(keys.admin.key));
  });

  it("records last use (time, address, user agent) of the key of each authenticated request", async () => {
    const { client: mcp } = await connectHttpClient(server.url, keys.reader.key, "last-use-probe/2.0");
    cleanups.push(() => mcp.close());
    await mcp.listTools();
    // Uses are written in batches, at most a second late: wait for the row, assert its values.
    let row: { last_used_at: string | null; last_used_ip: string | null; last_used_user_agent: string | null } | undefined;
    for (let attempt = 0; attempt < 50; attempt++) {
      const check = new Database(db, { readonly: true });
      row = check.prepare("SELECT last_used_at, last_used_ip, last_used_user_agent FROM key_usage WHERE key_id = ?").get(keys.reader.id) as typeof row;
      check.close();
      if (row?.last_used_user_agent === "last-use-probe/2.0") break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(row).toMatchObject({ last_used_ip: "127.0.0.1", last_used_user_agent: "last-use-probe/2.0" });
    expect(Date.parse(row!.last_used_at!)).toBeGreaterThan(Date.now() - 60_000);
  });

  it("binds a session to the key that opened it: another key gets 404, DELETE ends it", async () => {
    const { client: mcp, transport } = await connectHttpClient(server.url, keys.admin.key);
    cleanups.push(() => mcp.close());
    const sessionId = transport.sessionId!;
    expect(sessionId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const listWith = (key: string, id: string) =>
      rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key), "Mcp-Session-Id": id }, body: rpcBody("tools/list") });

    const stolen = await listWith(keys.writer.key, sessionId);
    expect(stolen.status).toBe(404);
    expect(stolen.json()).toStrictEqual({ jsonrpc: "2.0", error: { code: -32000, message: "Session not found" }, id: null });
    expect((await listWith(keys.admin.key, sessionId)).status).toBe(200);
    expect((await listWith(keys.admin.key, "no-such-session")).status).toBe(404);

    const deleteWith = (key: string) => rawRequest(server.url, { method: "DELETE", headers: { ...bearer(key), "Mcp-Session-Id": sessionId } });
    expect((await deleteWith(keys.writer.key)).status).toBe(404);
    expect((await deleteWith(keys.admin.key)).status).toBe(200);
    expect((await listWith(keys.admin.key, sessionId)).status).toBe(404);
  });

  it("refuses a foreign Origin with 403 before any work, and accepts loopback origins", async () => {
    const count = () => {
      const check = new Database(db, { readonly: true });
      const n = (check.prepare("SELECT count(*) AS n FROM key_events").get() as { n: number }).n;
      check.close();
      return n;
    };
    const before = count();
    const foreign = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, Origin: "http://evil.example" }, body: initializeBody() });
    expect(foreign.status).toBe(403);
    expect(foreign.json()).toMatchObject({ error: { message: "Forbidden: this Origin is not allowed" } });
    const foreignVerify = await rawRequest(`${server.base}/v1/keys/verify`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Origin: "https://localhost.evil.example", ...bearer(keys.admin.key) },
      body: JSON.stringify({ key: keys.reader.key }),
    });
    expect(foreignVerify.status).toBe(403);
    expect(count()).toBe(before); // no auth.failed, no use recorded: nothing ran
    const local = await rawRequest(server.url, {
      method: "POST",
      headers: { ...MCP_HEADERS, Origin: "http://localhost:6274", ...bearer(keys.admin.key) },
      body: initializeBody(),
    });
    expect(local.status).toBe(200);
    expect(local.headers["mcp-session-id"]).toBeDefined();
  });

  it("answers a browser on an allowed origin with CORS headers, preflight included, and a foreign one with 403", async () => {
    const page = "http://localhost:6274";
    const preflight = await rawRequest(server.url, {
      method: "OPTIONS",
      headers: { Origin: page, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type, mcp-session-id" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers["access-control-allow-origin"]).toBe(page);
    expect(preflight.headers["access-control-allow-methods"]).toBe("POST, GET, DELETE");
    expect(String(preflight.headers["access-control-allow-headers"]).split(", ")).toEqual(
      expect.arrayContaining(["Authorization", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version"]),
    );
    expect(preflight.headers["access-control-max-age"]).toBe("600");
    expect(preflight.headers.vary).toMatch(/Origin/);

    const verifyPreflight = await rawRequest(`${server.base}/v1/keys/verify`, {
      method: "OPTIONS",
      headers: { Origin: page, "Access-Control-Request-Method": "POST" },
    });
    expect(verifyPreflight.status).toBe(204);
    expect(verifyPreflight.headers["access-control-allow-methods"]).toBe("POST");

    // The real request: the page may read the session id and the answer.
    const opened = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, Origin: page, ...bearer(keys.admin.key) }, body: initializeBody() });
    expect(opened.status).toBe(200);
    expect(opened.headers["access-control-allow-origin"]).toBe(page);
    expect(String(opened.headers["access-control-expose-headers"])).toContain("Mcp-Session-Id");
    const verified = await rawRequest(`${server.base}/v1/keys/verify`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Origin: page, ...bearer(keys.admin.key) },
      body: JSON.stringify({ key: keys.reader.key }),
    });
    expect(verified.status).toBe(200);
    expect(verified.json()).toMatchObject({ valid: true });
    expect(verified.headers["access-control-allow-origin"]).toBe(page);
    const refused = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, Origin: page }, body: initializeBody() });
    expect(refused.status).toBe(401); // a refusal the page can read: why it failed
    expect(refused.headers["access-control-allow-origin"]).toBe(page);

    // A foreign origin's preflight is refused; a client without Origin gets no CORS headers; an
    // OPTIONS that is not a preflight is a method the endpoint does not take.
    const foreign = await rawRequest(server.url, { method: "OPTIONS", headers: { Origin: "http://evil.example", "Access-Control-Request-Method": "POST" } });
    expect(foreign.status).toBe(403);
    expect(foreign.headers["access-control-allow-origin"]).toBeUndefined();
    const noBrowser = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(keys.admin.key) }, body: initializeBody() });
    expect(noBrowser.status).toBe(200);
    expect(noBrowser.headers["access-control-allow-origin"]).toBeUndefined();
    const plainOptions = await rawRequest(server.url, { method: "OPTIONS", headers: {} });
    expect(plainOptions.status).toBe(405);
  });

  it("refuses a Host that is not this server's (DNS rebinding)", async () => {
    const rebound = await rawRequest(server.url, {
      method: "POST",
      headers: { ...MCP_HEADERS, Host: `evil.example:${server.port}`, ...bearer(keys.admin.key) },
      body: initializeBody(),
    });
    expect(rebound.status).toBe(403);
    expect(rebound.json()).toMatchObject({ error: { message: "Invalid Host: evil.example" } });

    // In absolute form the target's host counts, not the Host header (RFC 9112 section 3.2.2).
    const absolute = (target: string) =>
      rawRequest(server.url, { method: "POST", target, headers: { ...MCP_HEADERS, ...bearer(keys.admin.key) }, body: initializeBody() });
    const foreignTarget = await absolute(`http://evil.example:${server.port}/mcp`);
    expect(foreignTarget.status).toBe(403);
    expect(foreignTarget.json()).toMatchObject({ error: { message: "Invalid Host: evil.example" } });
    const foreignVerify = await rawRequest(server.url, {
      method: "POST",
      target: `http://evil.example:${server.port}/v1/keys/verify`,
      headers: { "Content-Type": "application/json", ...bearer(keys.admin.key) },
      body: JSON.stringify({ key: keys.reader.key }),
    });
    expect(foreignVerify.status).toBe(403);
    expect((await absolute(`http://127.0.0.1:${server.port}/mcp`)).status).toBe(200);
    const asterisk = await rawRequest(server.url, { method: "OPTIONS", target: "*", headers: {} });
    expect(asterisk.status).toBe(400);
    expect(asterisk.json()).toMatchObject({ error: { code: "bad_request" } });
  });

  it("answers bodies over 1 MiB with 413 and JSON, on /mcp and on the verify endpoint", async () => {
    const limit = 1024 * 1024;
    const padded = (size: number) => JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: { pad: "x".repeat(size - 60) } }).padEnd(size, " ");
    const big = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(keys.admin.key) }, body: padded(limit + 1) });
    expect(big.status).toBe(413);
    expect(big.json()).toStrictEqual({ jsonrpc: "2.0", error: { code: -32000, message: `Payload too large: the limit is ${limit} bytes` }, id: null });
    const atLimit = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(keys.admin.key) }, body: padded(limit) });
    expect(atLimit.status).toBe(400); // read and parsed: a ping is not an initialize, and there is no session
    const bigVerify = await rawRequest(`${server.base}/v1/keys/verify`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...bearer(keys.gateway.key) },
      body: JSON.stringify({ key: "x".repeat(2 * limit) }),
    });
    expect(bigVerify.status).toBe(413);
    expect(bigVerify.json()).toMatchObject({ error: { code: "payload_too_large" } });
    expect(bigVerify.text).not.toMatch(/at .*\.js/);
  });

  it("answers the verify endpoint with 200 for good and bad keys and 400 for a malformed body", async () => {
    const verify = (body: string, contentType = "application/json") =>
      rawRequest(`${server.base}/v1/keys/verify`, { method: "POST", headers: { "Content-Type": contentType, ...bearer(keys.gateway.key) }, body });
    const revoked = await verify(JSON.stringify({ key: keys.revoked.key }));
    expect(revoked.status).toBe(200);
    expect(revoked.json()).toMatchObject({ valid: false, code: "revoked", key_id: keys.revoked.id });
    expect((await verify(JSON.stringify({ key: "nope" }))).json()).toMatchObject({ valid: false, code: "malformed", key_id: null });
    const scoped = await verify(JSON.stringify({ key: keys.reader.key, required_scopes: ["tools:execute"] }));
    expect(scoped.json()).toMatchObject({ valid: false, code: "insufficient_scope", key_id: keys.reader.id });

    const cases: [string, string, string, string][] = [
      ["{not json", "application/json", "parse_error", "body"],
      ["[1,2]", "application/json", "validation_error", "body"],
      [JSON.stringify({ key: 5 }), "application/json", "validation_error", "key"],
      [JSON.stringify({ key: "a", extra: true }), "application/json", "validation_error", "extra"],
      [JSON.stringify({ required_scopes: [] }), "application/json", "validation_error", "key"],
      [JSON.stringify({ key: "a", required_scopes: ["Not A Scope"] }), "application/json", "validation_error", "required_scopes"],
      [JSON.stringify({ key: "a" }), "text/plain", "validation_error", "body"],
    ];
    for (const [body, contentType, code, field] of cases) {
      const response = await verify(body, contentType);
      expect(response.status, body).toBe(400);
      const error = (response.json() as { error: { code: string; errors: { key: string }[] } }).error;
      expect(error.code, body).toBe(code);
      if (code === "validation_error") expect(error.errors.map((entry) => entry.key), body).toContain(field);
    }
    const wrongMethod = await rawRequest(`${server.base}/v1/keys/verify`, { headers: bearer(keys.gateway.key) });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe("POST");
  });

  it("reports health, and answers unknown paths with JSON 404", async () => {
    const health = await rawRequest(`${server.base}/healthz`);
    expect(health.status).toBe(200);
    expect(health.json()).toStrictEqual({ status: "ok", database: "ok" });
    const missing = await rawRequest(`${server.base}/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.json()).toMatchObject({ error: { code: "not_found" } });
  });

  it("takes ?admin_key= only when told to", async () => {
    const withQuery = await rawRequest(`${server.url}?admin_key=${keys.admin.key}`, { method: "POST", headers: MCP_HEADERS, body: initializeBody() });
    expect(withQuery.status).toBe(401);
  });
});

describe("keywarden serve: confirmation over HTTP", () => {
  it("asks the client on the call's own stream before revoking; no is confirmation_declined, yes revokes", async () => {
    const db = tempDb();
    const admin = mintKey(db, "ops", "admin", "admin");
    const target = mintKey(db, "victim", "ci deploy", "tools:read");
    const server = await serve(["--db", db]);
    const questions: string[] = [];
    let answer: "accept" | "decline" = "decline";
    const { client } = await connectHttpClient(server.url, admin.key, "keywarden-http-test/1.0", (request) => {
      questions.push(request.params.message);
      return answer === "accept" ? { action: "accept", content: {} } : { action: "decline" };
    });
    cleanups.push(() => client.close());

    const declined = toolError(await client.callTool({ name: "revoke_api_key", arguments: { id: target.id } }));
    expect(declined.code).toBe("confirmation_declined");
    expect(questions).toEqual([expect.stringMatching(/^Revoke the API key "ci deploy" \(kw_\w{12}, scopes tools:read\)\?/)]);
    const check = await client.callTool({ name: "verify_api_key", arguments: { key: target.key } });
    expect(check.structuredContent).toMatchObject({ code: "valid" });

    answer = "accept";
    const revoked = await client.callTool({ name: "revoke_api_key", arguments: { id: target.id, reason: "confirmed" } });
    expect(revoked.structuredContent).toMatchObject({ id: target.id, status: "revoked", revoked_reason: "confirmed" });
    expect(questions).toHaveLength(2);
  });

  it("in --stateless mode, where no answer could come back to the call, does not ask and does not act: cannot_ask", async () => {
    const db = tempDb();
    const admin = mintKey(db, "ops", "admin", "admin");
    const target = mintKey(db, "victim", "ci deploy", "tools:read");
    const server = await serve(["--db", db, "--stateless"]);
    const questions: string[] = [];
    const { client } = await connectHttpClient(server.url, admin.key, "keywarden-http-test/1.0", (request) => {
      questions.push(request.params.message);
      return { action: "accept", content: {} };
    });
    cleanups.push(() => client.close());
    const refused = toolError(await client.callTool({ name: "revoke_api_key", arguments: { id: target.id } }));
    expect(refused).toMatchObject({ code: "confirmation_declined", errors: [{ key: "id", message: "cannot_ask", value: target.id }] });
    expect(questions).toEqual([]);
    const check = await client.callTool({ name: "verify_api_key", arguments: { key: target.key } });
    expect(check.structuredContent).toMatchObject({ code: "valid" });
  });
});

describe("keywarden serve: failed-authentication limit", () => {
  it("answers an address's failures with 429 after 30 bad tokens, still serves a good key from it, and writes the failures in a batch", async () => {
    const db = tempDb();
    const good = mintKey(db, "ops", "good", "tools:read");
    const server = await serve(["--db", db, "--auth-failure-limit", "30", "--auth-failure-window", "3"]);
    const post = (key: string) => rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key) }, body: initializeBody() });

    const statuses: number[] = [];
    for (let attempt = 0; attempt < 30; attempt++) statuses.push((await post(generateToken("kw").token)).status);
    expect(statuses).toStrictEqual(Array(30).fill(401));

    const cutOff = await post(generateToken("kw").token);
    expect(cutOff.status).toBe(429);
    const retryAfter = Number(cutOff.headers["retry-after"]);
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 3).toBe(true);
    expect(cutOff.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32000 } });
    // A valid key is never refused because of other requests' failures (README, Authentication).
    expect((await post(good.key)).status).toBe(200);

    // Written at most a second later, in one batch: the 30 failures, and a count of the one over the limit.
    const details = () => {
      const check = new Database(db, { readonly: true });
      const rows = check.prepare("SELECT detail FROM key_events WHERE event_type = 'auth.failed' ORDER BY rowid").all() as { detail: string }[];
      check.close();
      return rows.map((row) => JSON.parse(row.detail) as Record<string, unknown>);
    };
    let written = details();
    for (let attempt = 0; attempt < 50 && written.length < 31; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      written = details();
    }
    expect(written.filter((detail) => detail.reason === "not_found")).toHaveLength(30);
    expect(written.filter((detail) => detail.reason === "not_recorded")).toStrictEqual([{ reason: "not_recorded", count: 1, buffer_full: 0, over_limit: 1 }]);
  });
});

describe("keywarden serve --stateless", () => {
  it("serves each POST with a fresh server, answers GET and DELETE with 405, and takes its own origin list", async () => {
    const db = tempDb();
    const admin = mintKey(db, "ops", "admin", "admin");
    const server = await serve(["--db", db, "--stateless", "--allowed-origins", "https://app.example.com", "--allow-query-key"]);
    const mcp = await client(server.url, admin.key);
    expect((await mcp.listTools()).tools).toHaveLength(ALL_TOOLS.length);
    const whoami = await mcp.callTool({ name: "whoami", arguments: {} });
    expect(whoami.structuredContent).toMatchObject({ transport: "http", key_id: admin.id, is_admin: true });

    for (const method of ["GET", "DELETE"]) {
      const response = await rawRequest(server.url, { method, headers: { Accept: "text/event-stream", ...bearer(admin.key) } });
      expect(response.status, method).toBe(405);
      expect(response.headers.allow).toBe("POST");
      expect(response.json()).toMatchObject({ jsonrpc: "2.0", error: { code: -32000 } });
    }
    const post = (origin: string) =>
      rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, Origin: origin, ...bearer(admin.key) }, body: initializeBody() });
    expect((await post("https://app.example.com")).status).toBe(200);
    expect((await post("http://localhost:3000")).status).toBe(403);

    // --allow-query-key: the key may come in the URL when no Authorization header is sent.
    const query = (key: string) => rawRequest(`${server.url}?admin_key=${key}`, { method: "POST", headers: MCP_HEADERS, body: initializeBody() });
    expect((await query(admin.key)).status).toBe(200);
    expect((await query(withBadChecksum(admin.key))).status).toBe(401);
  });
});

describe("keywarden serve: idle sessions", () => {
  it("closes a session after --session-idle-timeout without a request; its id then gets 404", async () => {
    const db = tempDb();
    const key = mintKey(db, "ops", "k", "tools:read");
    const server = await serve(["--db", db, "--session-idle-timeout", "1"]);
    const opened = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key.key) }, body: initializeBody() });
    expect(opened.status).toBe(200);
    const sessionId = String(opened.headers["mcp-session-id"]);
    for (let i = 0; i < 100 && !server.stderr().includes('"why":"idle"'); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.stderr()).toContain(`"session":"${sessionId.slice(0, 8)}","key":"${key.id}","why":"idle"`);
    const later = await rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, ...bearer(key.key), "Mcp-Session-Id": sessionId }, body: rpcBody("tools/list") });
    expect(later.status).toBe(404);
  });
});

describe("keywarden serve: shutdown and start-up", () => {
  it("waits for a request in progress on the first signal and exits at once on the second", async () => {
    const server = await serve(["--db", tempDb(), "--no-auth"]);
    // A POST whose body never finishes: a request in progress that shutdown would wait for.
    const stuck = request(server.url, { method: "POST", headers: { ...MCP_HEADERS, "Content-Length": "1000" } });
    stuck.on("error", () => undefined);
    stuck.write('{"jsonrpc":');
    await new Promise((resolve) => setTimeout(resolve, 200));
    server.child.kill("SIGTERM");
    for (let i = 0; i < 100 && !server.stderr().includes('"msg":"stopping'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.stderr()).toContain('"msg":"stopping: closing sessions, flushing writes, closing the database"');
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(1);
    expect(server.stderr()).toContain('"msg":"second signal: exiting at once"');
    expect(server.stderr()).not.toContain("keywarden http server stopped");
    stuck.destroy();
  });

  it("on SIGTERM closes sessions, writes pending last-use records and closes the database", async () => {
    const db = tempDb();
    const key = mintKey(db, "ops", "k", "tools:read");
    const server = await serve(["--db", db]);
    const { client: mcp } = await connectHttpClient(server.url, key.key, "shutdown-probe/1.0");
    cleanups.push(() => mcp.close());
    await mcp.listTools();
    expect(await server.stop("SIGTERM")).toBe(0);
    expect(server.stderr()).toContain('"msg":"keywarden http server stopped"');
    expect(server.stderr()).toContain('"why":"shutdown"');
    expect(existsSync(`${db}-wal`)).toBe(false); // closed cleanly: the WAL was checkpointed away
    const check = new Database(db, { readonly: true });
    const row = check.prepare("SELECT last_used_ip, last_used_user_agent FROM key_usage WHERE key_id = ?").get(key.id);
    check.close();
    expect(row).toStrictEqual({ last_used_ip: "127.0.0.1", last_used_user_agent: "shutdown-probe/1.0" });
  });
});
