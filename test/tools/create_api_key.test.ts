import { readFileSync } from "node:fs";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterEach, describe, expect, it } from "vitest";
import { connectClient, openHarness, secretOf, TEST_STORE, type Harness } from "../helpers/harness.js";
import { CommitOutcomeUnknownError, ConnectionLostError } from "../../src/store/errors.js";

const spec = (file: string) => JSON.parse(readFileSync(new URL(`../fixtures/spec/${file}`, import.meta.url), "utf8"));

let harness: Harness;
let client: Client;
afterEach(async () => {
  await client?.close();
  await harness?.close();
});

async function setup(options: Parameters<typeof openHarness>[0] = {}) {
  harness = await openHarness(options);
  client = await connectClient(harness.service, harness.principal);
}

interface ErrorBody {
  error: { code: string; message: string; errors: { key: string; message: string; value?: unknown }[] };
}

async function callError(args: Record<string, unknown>): Promise<ErrorBody> {
  const result = await client.callTool({ name: "create_api_key", arguments: args });
  expect(result.isError).toBe(true);
  expect(result.structuredContent).toBeUndefined();
  const content = result.content as { type: string; text: string }[];
  expect(content).toHaveLength(1);
  return JSON.parse(content[0]!.text) as ErrorBody;
}

describe("create_api_key over MCP", () => {
  it("is listed with input and output schemas equal to the spec, a title and all four hints", async () => {
    await setup();
    const { tools } = await client.listTools();
    const tool = tools.find((t) => t.name === "create_api_key")!;
    expect(tool.inputSchema).toStrictEqual(spec("create_api_key.input.schema.json"));
    expect(tool.outputSchema).toStrictEqual(spec("create_api_key.output.schema.json"));
    expect(tool.title).toBe("Create API key");
    expect(tool.annotations).toEqual({
      readOnlyHint: false,
      destructiveHint: false,
      idempotentHint: false,
      openWorldHint: false,
    });
    expect(tool.description?.length).toBeGreaterThan(100);
  });

  it("returns structuredContent and the same JSON as text", async () => {
    await setup();
    const result = await client.callTool({ name: "create_api_key", arguments: { name: "demo" } });
    expect(result.isError).toBeFalsy();
    const structured = result.structuredContent as Record<string, unknown>;
    expect(Object.keys(structured).sort()).toEqual(
      ["created_at", "expires_at", "id", "key", "key_prefix", "name", "project_id", "scopes", "user_id"],
    );
    expect(structured).toMatchObject({ name: "demo", project_id: null, user_id: harness.principal.userId });
    const content = result.content as { type: string; text: string }[];
    expect(content).toEqual([{ type: "text", text: JSON.stringify(structured) }]);
  });

  it("names every unknown field and every wrongly typed field", async () => {
    await setup();
    const before = await harness.tableCounts();
    const body = await callError({ name: 42, scopes: ["admin"], __proto__x: 1, expires_at: false });
    expect(body.error.code).toBe("validation_error");
    expect(body.error.errors).toEqual(
      expect.arrayContaining([
        { key: "name", message: "expected string", value: 42 },
        { key: "expires_at", message: "expected string", value: false },
        { key: "scopes", message: "unknown field" },
        { key: "__proto__x", message: "unknown field" },
      ]),
    );
    expect(body.error.errors).toHaveLength(4);
    expect(await harness.tableCounts()).toEqual(before);
  });

  it("reports a missing name as required", async () => {
    await setup();
    const body = await callError({});
    expect(body.error.errors).toEqual([{ key: "name", message: "required" }]);
  });

  it("refuses an empty or 300-character name and bad expiry dates, naming the field and writing nothing", async () => {
    await setup();
    const before = await harness.tableCounts();
    const expectField = async (args: Record<string, unknown>, code: string, field: string) => {
      const body = await callError(args);
      expect(body.error.code, JSON.stringify(args).slice(0, 80)).toBe(code);
      expect(body.error.errors.map((e) => e.key)).toEqual([field]);
      return body;
    };
    await expectField({ name: "" }, "validation_error", "name");
    const long = await expectField({ name: "n".repeat(300) }, "validation_error", "name");
    expect(String(long.error.errors[0]!.value).length).toBeLessThan(100); // bounded echo
    await expectField({ name: "ok", expires_at: "31/12/2026" }, "validation_error", "expires_at");
    await expectField({ name: "ok", expires_at: "2001-01-01T00:00:00Z" }, "validation_error", "expires_at");
    await expectField({ name: "ok", expires_at: "2099-01-01T00:00:00Z" }, "validation_error", "expires_at");
    await expectField({ name: "ok", project_reference: "missing" }, "not_found", "project_reference");
    expect(await harness.tableCounts()).toEqual(before);
  });

  it("refuses the sixth key with max_keys_reached", async () => {
    await setup();
    for (let i = 0; i < 5; i++) {
      const ok = await client.callTool({ name: "create_api_key", arguments: { name: `k${i}` } });
      expect(ok.isError).toBeFalsy();
    }
    const body = await callError({ name: "sixth" });
    expect(body.error.code).toBe("max_keys_reached");
    expect(body.error.errors).toEqual([{ key: "limit", message: "max_keys_reached", value: 5 }]);
  });

  it("answers an unknown tool with a protocol error", async () => {
    await setup();
    await expect(client.callTool({ name: "drop_tables", arguments: {} })).rejects.toThrow(/Unknown tool: drop_tables/);
  });

  it("keeps unexpected failures to a bare internal_error without leaking details", async () => {
    await setup();
    await harness.store.close(); // every database call now throws
    const body = await callError({ name: "after close" });
    // On PostgreSQL the closed pool's connections count as lost (src/store/postgres-transaction.ts).
    const message = TEST_STORE === "postgres" ? "internal error; the connection to the database was lost, so the operation was not completed" : "internal error; the operation was not completed";
    expect(body).toEqual({ error: { code: "internal_error", message, errors: [] } });
  });

  it("says a write cut off at commit may have been made, and one cut off before it was not", async () => {
    await setup();
    // What src/store/postgres-transaction.ts throws when PostgreSQL's connection dies at COMMIT or
    // before it; no engine can be made to lose it on cue, so the store's write throws it here.
    const write = harness.store.write.bind(harness.store);
    harness.store.write = () => Promise.reject(new CommitOutcomeUnknownError(new Error("write CONNECTION_CLOSED")));
    const unknown = await callError({ name: "cut at commit" });
    harness.store.write = () => Promise.reject(new ConnectionLostError(new Error("write CONNECTION_CLOSED")));
    const lost = await callError({ name: "cut before commit" });
    harness.store.write = write;
    expect([unknown.error.message, lost.error.message]).toEqual([
      "internal error; the connection to the database was lost at commit, so the operation may or may not have been completed: read the key before trying again",
      "internal error; the connection to the database was lost, so the operation was not completed",
    ]);
    expect([unknown.error.code, lost.error.code]).toEqual(["internal_error", "internal_error"]);
  });

  it("never puts the secret in any later tool answer", async () => {
    await setup();
    const created = await client.callTool({ name: "create_api_key", arguments: { name: "secret" } });
    const token = (created.structuredContent as { key: string }).key;
    const again = await client.callTool({ name: "create_api_key", arguments: { name: "other" } });
    expect(JSON.stringify(again)).not.toContain(secretOf(token));
  });
});
