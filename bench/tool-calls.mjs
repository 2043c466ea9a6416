// Row 3: verify_api_key and create_api_key called through the SDK client over Streamable HTTP,
// p50/p99, against a no-op tool registered on the same server and transport. Create is compared
// with the no-op plus one fsync measured on the same disk in the same run.
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { bulkLoad, median, mintKey, percentile, spawnServer, tempDir } from "./lib.mjs";

const CALLS = 400;

/** One 4 KiB write and fsync on the database's disk, timed: sampled between calls, so disk contention hits both. */
function fsyncProbe(dir) {
  const fd = openSync(join(dir, "fsync-probe"), "a");
  const page = Buffer.alloc(4096, 1);
  try {
    writeSync(fd, page);
    const started = process.hrtime.bigint();
    fsyncSync(fd);
    return Number(process.hrtime.bigint() - started) / 1e6;
  } finally {
    closeSync(fd);
  }
}

export async function toolCalls() {
  const { dir, cleanup } = tempDir();
  let server;
  try {
    const db = join(dir, "tools.db");
    const tokens = await bulkLoad(db, 10_000, { users: 100, sampleSize: 1000 });
    const caller = mintKey(db, "agent", "tools:read,tools:execute");
    server = await spawnServer([new URL("./fixtures/http-with-noop.mjs", import.meta.url).pathname, db]);
    const client = new Client({ name: "bench", version: "0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: { authorization: `Bearer ${caller}` } } }),
    );
    const timed = async (name, args) => {
      const started = process.hrtime.bigint();
      const result = await client.callTool({ name, arguments: args });
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (result.isError) throw new Error(`${name}: ${JSON.stringify(result.content)}`);
      return ms;
    };
    /** @type {Record<"noop" | "verify" | "create" | "fsync", number[]>} */
    const samples = { noop: [], verify: [], create: [], fsync: [] };
    for (let i = 0; i < 50; i++) {
      await timed("noop", {});
      await timed("verify_api_key", { key: tokens[i] });
    }
    for (let i = 0; i < CALLS; i++) {
      samples.noop.push(await timed("noop", {}));
      samples.verify.push(await timed("verify_api_key", { key: tokens[i % tokens.length] }));
      samples.create.push(await timed("create_api_key", { name: `bench ${i}` }));
      samples.fsync.push(fsyncProbe(dir));
    }
    await client.close();
    const fsync = median(samples.fsync);
    const stat = (list) => ({ p50: percentile(list, 50), p99: percentile(list, 99) });
    const noop = stat(samples.noop);
    const verify = stat(samples.verify);
    const create = stat(samples.create);
    const f = (s) => `p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`;
    return [
      {
        row: "MCP verify_api_key over Streamable HTTP (SDK client)",
        unit: `ms p50 (${f(verify)})`,
        digits: 2,
        value: verify.p50,
        baseline: noop.p50,
        baselineName: `no-op tool, same server and transport, ${f(noop)}`,
        ratio: verify.p50 / noop.p50,
        target: "≤ 1.3× no-op",
        pass: verify.p50 / noop.p50 <= 1.3,
      },
      {
        row: "MCP create_api_key over Streamable HTTP (SDK client)",
        unit: `ms p50 (${f(create)})`,
        digits: 2,
        value: create.p50,
        baseline: noop.p50 + fsync,
        baselineName: `no-op p50 + one fsync p50 (${fsync.toFixed(2)} ms, same disk)`,
        ratio: create.p50 / (noop.p50 + fsync),
        target: "≤ 1.0× (no-op + one fsync)",
        pass: create.p50 <= noop.p50 + fsync,
      },
    ];
  } finally {
    await server?.stop();
    cleanup();
  }
}
