// The bytes an admin's tools/list costs an agent, on the wire: spawns the built stdio server with
// --admin on a new database, speaks raw JSON-RPC, and prints the size of the tools/list answer
// (one JSON line, without its newline) and each tool's share. Not a timing: `npm test` asserts
// the bound too (test/tools/listing-size.test.ts). Usage: npm run -s build && node bench/tools-list-size.mjs
import { spawn } from "node:child_process";
import { join } from "node:path";
import { CLI, cleanEnv, tempDir } from "./lib.mjs";

const { dir, cleanup } = tempDir();
const child = spawn(process.execPath, [CLI, "--db", join(dir, "size.db"), "--admin", "--log-level", "warn"], {
  env: cleanEnv(),
  stdio: ["pipe", "pipe", "inherit"],
});
const send = (message) => child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);
let buffer = "";
child.stdout.on("data", (chunk) => {
  buffer += chunk.toString("utf8");
  for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
    const line = buffer.slice(0, newline);
    buffer = buffer.slice(newline + 1);
    const message = JSON.parse(line);
    if (message.id === 1) {
      send({ method: "notifications/initialized" });
      send({ id: 2, method: "tools/list" });
    } else if (message.id === 2) {
      const tools = message.result.tools;
      console.log(`admin tools/list: ${Buffer.byteLength(line)} bytes, ${tools.length} tools`);
      for (const tool of tools) console.log(`  ${tool.name.padEnd(16)} ${Buffer.byteLength(JSON.stringify(tool))} bytes`);
      child.stdin.end();
    }
  }
});
child.on("exit", cleanup);
send({
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "size", version: "0" } },
});
