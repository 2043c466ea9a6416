// verify-memory: resident memory of a process that verified enough distinct keys of the 1M
// database (lib.mjs millionKeys) to fill issue 12's verification cache at its default bound
// (100,000 entries, 32 MiB), beside the same process with the cache off. One child process per
// variant and round (fixtures/verify-memory.mjs), alternating, each on its own copy of the file.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { cleanEnv, copyOfMillionKeys, median, millionKeys, tempDir } from "./lib.mjs";

/** Twice the default entry bound, so that the cache is full whichever of its two bounds binds first. */
const DISTINCT = 200_000;

/**
 * @param {string} db
 * @param {string} tokensFile
 * @param {"on" | "off"} cache
 * @returns {{ valid: number, after: { vm_rss_kib: number, anonymous_kib: number }, heap_used: number }}
 */
function child(db, tokensFile, cache) {
  const script = new URL("./fixtures/verify-memory.mjs", import.meta.url).pathname;
  const run = spawnSync(process.execPath, ["--expose-gc", script, db, tokensFile, String(DISTINCT), cache], { env: cleanEnv(), encoding: "utf8" });
  if (run.status !== 0) throw new Error(`verify-memory child (cache ${cache}) failed: ${run.stderr}`);
  const result = JSON.parse(run.stdout);
  if (result.valid !== DISTINCT) throw new Error(`verify-memory child (cache ${cache}): only ${result.valid} of ${DISTINCT} verified`);
  return result;
}

export async function verifyMemory({ rounds = 2 } = {}) {
  const { dir, cleanup } = tempDir();
  try {
    const { tokensFile } = await millionKeys();
    const mib = (kib) => kib / 1024;
    const on = [];
    const off = [];
    for (let round = 0; round < rounds; round++) {
      for (const cache of /** @type {const} */ (["off", "on"])) {
        const db = join(dir, `memory-${cache}-${round}.db`);
        await copyOfMillionKeys(db);
        (cache === "on" ? on : off).push(child(db, tokensFile, cache));
      }
    }
    const value = median(on.map((r) => mib(r.after.vm_rss_kib)));
    const baseline = median(off.map((r) => mib(r.after.vm_rss_kib)));
    const growth = value - baseline;
    return {
      row: `resident memory, ${DISTINCT.toLocaleString("en")} distinct keys of 1M verified, cache full at its default bound`,
      unit: `MiB VmRSS after GC (${growth >= 0 ? "+" : ""}${growth.toFixed(1)} MiB with the cache)`,
      digits: 0,
      value,
      baseline,
      baselineName: "same with the cache off, verificationCache: false",
      ratio: value / baseline,
      target: "report; ≤ +64 MiB",
      pass: growth <= 64,
      detail: { rounds, distinct: DISTINCT, cache_on: on, cache_off: off },
    };
  } finally {
    cleanup();
  }
}
