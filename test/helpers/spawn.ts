import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

/** The checkout. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The built binary: end-to-end tests run what a user runs. `npm test` builds it first. */
export const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run npm run build (npm test does it)");
}

/** The environment of a spawned keywarden: none of the developer's KEYWARDEN_* settings leak in. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("KEYWARDEN_")) env[key] = value;
  }
  return { ...env, ...extra };
}

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

/** Runs the CLI to completion. */
export function runCli(args: string[], env: Record<string, string> = {}) {
  assertBuilt();
  const result = spawnSync(process.execPath, [CLI, ...args], { env: cleanEnv(env), encoding: "utf8", timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
