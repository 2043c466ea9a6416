import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/keys/token.js";
import { makeTempDir } from "../helpers/harness.js";
import { mintKey, rawRequest, spawnHttpServer, type CreatedKey, type HttpServerProcess } from "../helpers/http.js";

// POST /v1/keys/verify is answered on bare node:http (the gateway fast path); a query string sends
// the same request through the Express route. Both must give the same answer to every request.

const temp = makeTempDir();
let server: HttpServerProcess;
let gateway: CreatedKey;
let agent: CreatedKey;
let checked: CreatedKey;

beforeAll(async () => {
  const db = join(temp.dir, "keywarden.db");
  gateway = mintKey(db, "ops", "gateway", "keys:verify");
  agent = mintKey(db, "ops", "agent", "tools:read,tools:execute");
  checked = mintKey(db, "alice", "checked", "orders:read");
  server = await spawnHttpServer(["--db", db]);
});
afterAll(async () => {
  await server?.stop();
  temp.cleanup();
});

const JSON_TYPE = { "Content-Type": "application/json" };
const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

describe("the verify fast path answers exactly as the Express route", () => {
  const cases: [string, () => { headers: Record<string, string>; body?: string | Buffer }][] = [
    ["a valid key", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: JSON.stringify({ key: checked.key }) })],
    ["a valid key, charset given", () => ({ headers: { "Content-Type": "application/json; charset=utf-8", ...bearer(gateway.key) }, body: JSON.stringify({ key: checked.key }) })],
    ["insufficient scope", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: JSON.stringify({ key: checked.key, required_scopes: ["orders:write"] }) })],
    ["an unknown key", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: JSON.stringify({ key: generateToken().token }) })],
    ["a malformed key", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: JSON.stringify({ key: "kw_nope" }) })],
    ["a body without key", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: JSON.stringify({ token: "x" }) })],
    ["an array body", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: "[]" })],
    ["an empty body", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: "" })],
    ["bad JSON", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: '{"key": ' })],
    ["a JSON string", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: '"kw_x"' })],
    ["an oversize body", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key) }, body: Buffer.alloc(1024 * 1024 + 10, 0x20) })],
    ["no caller key", () => ({ headers: JSON_TYPE, body: JSON.stringify({ key: checked.key }) })],
    ["a bad caller key", () => ({ headers: { ...JSON_TYPE, ...bearer(generateToken().token) }, body: JSON.stringify({ key: checked.key }) })],
    ["a caller key without keys:verify", () => ({ headers: { ...JSON_TYPE, ...bearer(agent.key) }, body: JSON.stringify({ key: checked.key }) })],
    ["a foreign Origin", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key), Origin: "https://evil.example" }, body: "{}" })],
    ["a foreign Host", () => ({ headers: { ...JSON_TYPE, ...bearer(gateway.key), Host: "evil.example" }, body: "{}" })],
  ];

  for (const [name, build] of cases) {
    it(name, async () => {
      const { headers, body } = build();
      const fast = await rawRequest(`${server.base}/v1/keys/verify`, { method: "POST", headers, body });
      const express = await rawRequest(`${server.base}/v1/keys/verify?via=express`, { method: "POST", headers, body });
      expect(fast.status).toBe(express.status);
      expect(fast.text).toBe(express.text);
      for (const header of ["content-type", "www-authenticate", "retry-after"]) {
        expect(fast.headers[header], header).toEqual(express.headers[header]);
      }
      expect(fast.status).toBeLessThan(500);
    });
  }

  it("answers a valid key with its record fields on the fast path", async () => {
    const answer = await rawRequest(`${server.base}/v1/keys/verify`, {
      method: "POST",
      headers: { ...JSON_TYPE, ...bearer(gateway.key) },
      body: JSON.stringify({ key: checked.key }),
    });
    expect(answer.json()).toMatchObject({ valid: true, code: "valid", key_id: checked.id, scopes: ["orders:read"] });
  });
});
