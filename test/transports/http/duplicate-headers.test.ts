import { createConnection } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedApiKey } from "../../../src/service/types.js";
import { initializeBody } from "../../helpers/http.js";
import { startInProcess, type InProcessServer } from "../../helpers/inprocess.js";

// Node keeps the first of two Host or Authorization headers; a proxy in front may have acted on
// the last. keywarden refuses such a request outright (found by the reliability suite's hostile
// HTTP requests: a good key followed by a bad one used to open a session).

let server: InProcessServer;
let key: CreatedApiKey;

beforeAll(async () => {
  server = await startInProcess();
  key = await server.mint("dup", ["tools:read", "tools:execute"], "dup");
});
afterAll(() => server.close());

/** Sends a request with exactly these header lines; resolves with the status and body. */
function send(headers: string[], body = initializeBody()): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: "127.0.0.1", port: server.server.port });
    let text = "";
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
    socket.on("close", () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body: text.split("\r\n\r\n").slice(1).join("") }));
    socket.on("error", reject);
    const head = ["POST /mcp HTTP/1.1", ...headers, "Content-Type: application/json", "Accept: application/json, text/event-stream", "Connection: close", `Content-Length: ${Buffer.byteLength(body)}`];
    socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
  });
}

describe("duplicated headers", () => {
  const host = () => `Host: 127.0.0.1:${server.server.port}`;

  it.each([
    ["a good key, then a bad one", () => [host(), `Authorization: Bearer ${key.key}`, "Authorization: Bearer kw_nope"]],
    ["a bad key, then a good one", () => [host(), "Authorization: Bearer kw_nope", `Authorization: Bearer ${key.key}`]],
    ["the same key twice", () => [host(), `Authorization: Bearer ${key.key}`, `Authorization: Bearer ${key.key}`]],
    ["two Host headers", () => [host(), "Host: evil.example", `Authorization: Bearer ${key.key}`]],
    ["two session ids", () => [host(), `Authorization: Bearer ${key.key}`, "Mcp-Session-Id: a", "Mcp-Session-Id: b"]],
  ])("%s: 400, and no session", async (_name, headers) => {
    const answer = await send(headers());
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { message: expect.stringMatching(/appears more than once/) } });
    expect(server.server.sessionCount()).toBe(0);
  });

  it("a single Host and Authorization still work", async () => {
    const answer = await send([host(), `Authorization: Bearer ${key.key}`]);
    expect(answer.status).toBe(200);
  });
});

describe("requests Node's parser or router would answer with no body", () => {
  /** Sends exactly `request`; resolves with the status line's code and the body. */
  const raw = (request: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const socket = createConnection({ host: "127.0.0.1", port: server.server.port });
      let text = "";
      socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
      socket.on("close", () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body: text.split("\r\n\r\n").slice(1).join("") }));
      socket.on("error", reject);
      socket.end(request);
    });

  it.each([
    ["GET", "/healthz"],
    ["POST", "/mcp"],
    ["POST", "/v1/keys/verify"],
  ])("an HTTP/1.1 %s %s without Host: 400 with a JSON body", async (method, path) => {
    const body = '{"key":"kw_x"}';
    const answer = await raw(
      `${method} ${path} HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer ${key.key}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(answer.status).toBe(400);
    expect(answer.body).toContain("an HTTP/1.1 request must have a Host header");
    expect(() => JSON.parse(answer.body)).not.toThrow();
  });

  it("CONNECT: 405 with a JSON body, not a dropped connection", async () => {
    const answer = await raw(`CONNECT 127.0.0.1:${server.server.port} HTTP/1.1\r\nHost: 127.0.0.1:${server.server.port}\r\n\r\n`);
    expect(answer.status).toBe(405);
    expect(JSON.parse(answer.body)).toStrictEqual({
      error: { code: "method_not_allowed", message: "Method Not Allowed: keywarden is not a proxy; CONNECT is not served", errors: [] },
    });
  });

  it("a foreign Host on /healthz gets keywarden's envelope, as every endpoint but /mcp", async () => {
    const answer = await raw("GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body)).toStrictEqual({ error: { code: "forbidden", message: "Invalid Host: evil.example", errors: [] } });
  });
});
