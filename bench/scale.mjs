// Row 5: a store of 1,000,000 keys against the same figures at 10,000 keys: bytes on disk per key,
// list_api_keys first and last page p99, verify_api_key p99 (through a spawned stdio server), and
// the server's resident memory after serving them.
import { statSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { bulkLoad, CLI, cleanEnv, copyOfMillionKeys, MILLION, percentile, residentBytes, ROOT, tempDir } from "./lib.mjs";

// The p99 of each series is its 10th-worst call: with 300 calls it was the 3rd-worst, and one
// stall of this shared machine could move it by 2x between runs.
const CALLS = 1000;

async function measureStore(dir, count) {
  const path = join(dir, `scale-${count}.db`);
  // At 1M, a copy of the run's shared database (lib.mjs millionKeys, built as bulkLoad builds this
  // one), with the sample bulkLoad would have kept: every (count / CALLS)-th token.
  const tokens =
    count === MILLION
      ? (await copyOfMillionKeys(path)).filter((_, i) => i % Math.floor(count / CALLS) === 0)
      : await bulkLoad(path, count, { users: 1000, sampleSize: CALLS });
  const bytesPerKey = statSync(path).size / count;

  // The last page's cursor names the row just before it, in (created_at, id) order.
  const { SqliteKeyStore } = await import("keywarden");
  const { encodeCursor } = await import(join(ROOT, "dist/service/cursor.js"));
  const store = SqliteKeyStore.open({ path });
  const beforeLast = store.db
    .prepare("SELECT created_at AS at, id FROM api_keys ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 100")
    .get();
  await store.close();
  const lastCursor = encodeCursor("keys", beforeLast);

  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "--db", path, "--admin", "--log-level", "warn"],
    env: cleanEnv(),
    stderr: "ignore",
  });
  const client = new Client({ name: "bench", version: "0" });
  await client.connect(transport);
  const time = async (call) => {
    const started = process.hrtime.bigint();
    const result = await call();
    if (result.isError) throw new Error(`tool error: ${result.content[0].text}`);
    return { ms: Number(process.hrtime.bigint() - started) / 1e6, result };
  };
  const first = [];
  const last = [];
  const verify = [];
  for (let i = 0; i < 20; i++) await time(() => client.callTool({ name: "list_api_keys", arguments: { limit: 100 } })); // warm-up
  for (let i = 0; i < CALLS; i++) {
    first.push((await time(() => client.callTool({ name: "list_api_keys", arguments: { limit: 100, status: "all" } }))).ms);
    const tail = await time(() => client.callTool({ name: "list_api_keys", arguments: { limit: 100, status: "all", cursor: lastCursor } }));
    if (tail.result.structuredContent.keys.length !== 100 || tail.result.structuredContent.next_cursor !== null) {
      throw new Error("the last page is not the last 100 keys");
    }
    last.push(tail.ms);
    const checked = await time(() => client.callTool({ name: "verify_api_key", arguments: { key: tokens[i % tokens.length] } }));
    if (!checked.result.structuredContent.valid) throw new Error("a loaded key did not verify");
    verify.push(checked.ms);
  }
  const rss = residentBytes(transport.pid);
  await client.close();
  return {
    bytesPerKey,
    firstP99: percentile(first, 99),
    lastP99: percentile(last, 99),
    verifyP99: percentile(verify, 99),
    rssMiB: rss / 2 ** 20,
  };
}

export async function scale({ large = 1_000_000, small = 10_000 } = {}) {
  const { dir, cleanup } = tempDir();
  try {
    const base = await measureStore(dir, small);
    const big = await measureStore(dir, large);
    const row = (name, unit, key, target, pass, digits = 2) => ({
      row: `scale: ${name}`,
      unit,
      digits,
      value: big[key],
      baseline: base[key],
      baselineName: `same at ${small.toLocaleString("en")} keys`,
      ratio: big[key] / base[key],
      target,
      pass,
    });
    return [
      row("bytes on disk per key (1M keys)", "B", "bytesPerKey", "report", true, 0),
      row("list_api_keys first page p99 (1M)", "ms", "firstP99", "≤ 2× at 10k", big.firstP99 / base.firstP99 <= 2),
      row("list_api_keys last page p99 (1M)", "ms", "lastP99", "≤ 2× at 10k", big.lastP99 / base.lastP99 <= 2),
      row("verify_api_key p99 (1M)", "ms", "verifyP99", "≤ 2× at 10k", big.verifyP99 / base.verifyP99 <= 2),
      {
        ...row("server resident memory after serving (1M)", "MiB", "rssMiB", "< 150 MiB", big.rssMiB < 150, 0),
      },
    ];
  } finally {
    cleanup();
  }
}
