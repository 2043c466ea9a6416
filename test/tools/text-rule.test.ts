import { PassThrough } from "node:stream";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createServer } from "../../src/server.js";
import { callError, openWorld, type World } from "../helpers/lifecycle.js";

// The text rule (service/validation.ts) through the tools, and a lone surrogate however the
// transport decodes it: a `\ud800` escape survives JSON.parse as a lone surrogate; raw bytes that
// are not UTF-8 become U+FFFD when the SDK's stdio transport decodes the line. Both are refused.

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(() => world.close());

describe("the text rule through the tools", () => {
  it("refuses hidden text in every free-text field with a validation_error naming it, and writes nothing", async () => {
    const { id } = (await world.harness.service.createApiKey(world.alice, { name: "target" })) as { id: string };
    const before = await world.harness.tableCounts();
    const errors = [
      await callError(world.aliceClient, "create_api_key", { name: "deploy\u202ebot" }),
      await callError(world.aliceClient, "update_api_key", { id, name: "ok", description: "read me\u200b" }),
      await callError(world.aliceClient, "revoke_api_key", { id, reason: "done\u{e0049}\u{e0047}" }),
      await callError(world.rootClient, "create_project", { slug: "web", name: "\ufeffWeb" }),
    ];
    expect(errors.map((error) => [error.code, ...error.errors.map((field) => `${field.key}: ${field.message}`)])).toEqual([
      ["validation_error", "name: must not contain bidirectional control characters: found U+202E"],
      ["validation_error", "description: must not contain invisible characters: found U+200B at character 8"],
      ["validation_error", "reason: must not contain invisible characters: found U+E0049 at character 5"],
      ["validation_error", "name: must not contain invisible characters: found U+FEFF at character 1"],
    ]);
    expect(await world.harness.tableCounts()).toEqual(before);
  });
});

describe("a lone surrogate, however the transport decodes it", () => {
  /** A real server on the SDK's stdio transport, fed raw bytes; answers by request id. */
  async function stdioServer() {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const server = createServer({ service: world.harness.service, principalOf: () => world.alice, version: "test" });
    await server.connect(new StdioServerTransport(stdin, stdout));
    const answers = new Map<number, unknown>();
    const waiting = new Map<number, (answer: unknown) => void>();
    let pending = "";
    stdout.on("data", (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
        const message = JSON.parse(pending.slice(0, end)) as { id: number };
        pending = pending.slice(end + 1);
        answers.set(message.id, message);
        waiting.get(message.id)?.(message);
      }
    });
    const send = (line: Buffer | string) => stdin.write(Buffer.concat([Buffer.from(line), Buffer.from("\n")]));
    const answer = (id: number) => new Promise<unknown>((resolve) => (answers.has(id) ? resolve(answers.get(id)) : waiting.set(id, resolve)));
    send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } } }));
    await answer(1);
    send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    return { send, answer, close: () => server.close() };
  }

  const errorOf = (answer: unknown) =>
    JSON.parse((answer as { result: { content: { text: string }[] } }).result.content[0]!.text) as { error: { code: string; errors: { key: string; message: string }[] } };

  it("refuses a \\ud800 escape and raw non-UTF-8 bytes in a name, naming the field, and writes nothing", async () => {
    const server = await stdioServer();
    const before = await world.harness.tableCounts();
    const call = (id: number, name: Buffer) =>
      Buffer.concat([Buffer.from(`{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"create_api_key","arguments":{"name":"bot`), name, Buffer.from('"}}}')]);
    server.send(call(2, Buffer.from("\\ud800"))); // the JSON escape of a lone surrogate
    server.send(call(3, Buffer.from([0xed, 0xa0, 0x80]))); // a lone surrogate's bytes, not UTF-8: decoded to U+FFFD
    expect(errorOf(await server.answer(2)).error).toEqual({
      code: "validation_error",
      message: "invalid name: must be valid Unicode text: found a lone surrogate (U+D800)",
      errors: [{ key: "name", message: "must be valid Unicode text: found a lone surrogate (U+D800)", value: "bot<U+D800>" }],
    });
    expect(errorOf(await server.answer(3)).error).toMatchObject({
      code: "validation_error",
      errors: [{ key: "name", message: "must be valid Unicode text: found U+FFFD, the replacement for a lone surrogate or invalid UTF-8", value: "bot\ufffd\ufffd\ufffd" }],
    });
    expect(await world.harness.tableCounts()).toEqual(before);
    await server.close();
  });
});
