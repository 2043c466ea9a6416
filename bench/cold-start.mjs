// Row 4: stdio cold start, spawn to the first tools/list answer, against
// @modelcontextprotocol/server-memory started the same way.
import { createRequire } from "node:module";
import { join } from "node:path";
import { CLI, median, tempDir, timeToFirstToolsList } from "./lib.mjs";

const require = createRequire(import.meta.url);
const MEMORY_SERVER = require.resolve("@modelcontextprotocol/server-memory/dist/index.js");

export async function coldStart({ rounds = 15 } = {}) {
  const { dir, cleanup } = tempDir();
  try {
    const keywarden = [];
    const baseline = [];
    // Interleaved, so drift in machine load hits both sides alike. The first round warms the OS cache.
    for (let round = 0; round <= rounds; round++) {
      const db = join(dir, `cold-${round}.db`);
      const ours = await timeToFirstToolsList(process.execPath, [CLI, "--db", db, "--log-level", "warn"]);
      const theirs = await timeToFirstToolsList(process.execPath, [MEMORY_SERVER], {
        ...process.env,
        MEMORY_FILE_PATH: join(dir, `memory-${round}.jsonl`),
      });
      if (round > 0) {
        keywarden.push(ours);
        baseline.push(theirs);
      }
    }
    const value = median(keywarden);
    const base = median(baseline);
    return {
      row: "stdio cold start (spawn → first tools/list)",
      unit: "ms, median",
      value,
      baseline: base,
      baselineName: "@modelcontextprotocol/server-memory, same spawn",
      ratio: value / base,
      target: "≤ 1.5× baseline",
      pass: value / base <= 1.5,
      detail: { rounds, keywarden_ms: keywarden, baseline_ms: baseline, note: "new database file each round (includes schema creation)" },
    };
  } finally {
    cleanup();
  }
}
