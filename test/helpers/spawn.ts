import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { assertBuilt, cleanEnv, CLI } from "./child.mjs";

export { assertBuilt, cleanEnv, CLI, ROOT, runCli } from "./child.mjs";

export interface SpawnedServer {
  client: Client;
  stderr: () => string;
  close: () => Promise<void>;
}

/** Spawns `keywarden` over stdio and connects a real MCP client to it. */
export async function spawnStdioServer(args: string[], env: Record<string, string> = {}): Promise<SpawnedServer> {
  assertBuilt();
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, ...args], env: cleanEnv(env), stderr: "pipe" });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const client = new Client({ name: "keywarden-e2e", version: "0" });
  await client.connect(transport);
  return { client, stderr: () => stderr, close: () => client.close() };
}
