import { afterAll, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { createServer } from "../../src/server.js";
import { openHarness } from "../helpers/harness.js";

// Agents pay for every byte of tools/list, in every conversation (BENCHMARKS.md, tools/list size).
// 36,193 bytes in 0.1, 25,899 before the $schema declarations and annotations.title went, 23,703
// since; the bound (that, and room for a word) keeps it from growing back.
const ADMIN_TOOLS_LIST_MAX_BYTES = 23_750;

const harness = await openHarness({ isAdmin: true });
afterAll(() => harness.close());

it("keeps an admin's tools/list, as the server writes it, under the bound", async () => {
  const server = createServer({ service: harness.service, principalOf: () => harness.principal, version: "test" });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  // What the stdio transport writes for each message is its JSON (plus a newline).
  const written: string[] = [];
  const send = serverTransport.send.bind(serverTransport);
  serverTransport.send = (message: JSONRPCMessage, options) => {
    written.push(JSON.stringify(message));
    return send(message, options);
  };
  await server.connect(serverTransport);
  const client = new Client({ name: "size", version: "0" });
  await client.connect(clientTransport);
  const { tools } = await client.listTools();
  const answer = written.find((text) => text.includes('"tools":['))!;
  const bytes = Buffer.byteLength(answer);
  console.log(`admin tools/list: ${bytes} bytes, ${tools.length} tools`);
  expect(tools).toHaveLength(11);
  expect(bytes).toBeLessThan(ADMIN_TOOLS_LIST_MAX_BYTES);
  await client.close();
});
