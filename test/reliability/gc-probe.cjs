// Preloaded into a server under soak (NODE_OPTIONS=--require …): on SIGUSR2 it runs a full garbage
// collection and writes one JSON line with the memory figures to stderr, so that the soak compares
// resident memory after a collection with resident memory after a collection, not two random
// points of the heap's sawtooth. Test instrumentation only; keywarden itself knows nothing of it.
"use strict";
const v8 = require("node:v8");
const vm = require("node:vm");
const fs = require("node:fs");

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc");

process.on("SIGUSR2", () => {
  gc();
  gc();
  const memory = process.memoryUsage();
  fs.writeSync(2, `${JSON.stringify({ gcProbe: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal, external: memory.external } })}\n`);
});
