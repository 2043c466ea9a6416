// Preloaded into a server under soak (NODE_OPTIONS=--require …): on SIGUSR2 it runs a full garbage
// collection, waits for V8 to hand the freed pages back, and writes one JSON line with the memory
// figures to stderr, so that the soak compares memory after a collection with memory after a
// collection, not two random points of the heap's sawtooth. Test instrumentation only; keywarden
// itself knows nothing of it.
"use strict";
const v8 = require("node:v8");
const vm = require("node:vm");
const fs = require("node:fs");

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc");

// V8 unmaps the pages a collection freed from a background thread, after gc() has returned: read
// at once, resident memory was up to 13 MB higher than 100 ms later, and 100 ms to 1 s later it
// did not change (2026-11-26, this suite's soak). 300 ms, with the soak's clients paused.
const SETTLE_MS = 300;

/** Resident memory (kB), read by the process itself at the moment it chooses. */
function residentKb() {
  const text = fs.readFileSync("/proc/self/smaps_rollup", "utf8");
  return Number(/^Rss:\s+(\d+) kB/m.exec(text)?.[1]);
}

process.on("SIGUSR2", () => {
  gc();
  gc();
  setTimeout(() => {
    const memory = process.memoryUsage();
    const newSpace = v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space");
    const probe = {
      rssKb: residentKb(),
      newSpace: newSpace?.space_size ?? 0,
      heapUsed: memory.heapUsed,
      heapTotal: memory.heapTotal,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers,
    };
    fs.writeSync(2, `${JSON.stringify({ gcProbe: probe })}\n`);
  }, SETTLE_MS);
});
