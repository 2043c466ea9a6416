// The other process of test/service/verification-cache.processes.test.ts: opens the store the
// parent names (argv: engine, database, the built dist/ directory, a JSON list of
// {token, requiredScopes}, and for PostgreSQL a JSON object of store options) and verifies those tokens round-robin with the README's library call,
// verifyApiKey(store, token) (its default cache and batched last use), as fast as it can.
// Each line "epoch N" on stdin is answered at once by "ack N" on stdout: every verification that
// STARTS after that answer carries epoch N. "stop" ends the loop and prints, per token, the latest
// epoch and start time (Date.now()) of an accepted verification, the counts of each answer, and
// how many verifications read the store (so that hits are shown to have happened).
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [engine, database, dist, tokensJson, storeOptionsJson = "{}"] = process.argv.slice(2);
/** @type {{ token: string, requiredScopes?: string[] }[]} */
const tokens = JSON.parse(String(tokensJson));
const { verifyApiKey, SqliteKeyStore } = await import(pathToFileURL(`${dist}/index.js`).href);
/** @type {any} */
let store;
if (engine === "postgres") {
  const { PostgresKeyStore } = await import(pathToFileURL(`${dist}/postgres.js`).href);
  store = await PostgresKeyStore.open({ url: database, ...JSON.parse(storeOptionsJson) });
} else {
  store = SqliteKeyStore.open({ path: database });
}
let storeReads = 0;
const find = store.findKeyForVerification.bind(store);
store.findKeyForVerification = (/** @type {string} */ prefix) => {
  storeReads++;
  return find(prefix);
};

let epoch = 0;
let stopping = false;
createInterface({ input: process.stdin }).on("line", (line) => {
  const [word, n] = line.trim().split(" ");
  if (word === "epoch") {
    epoch = Number(n);
    process.stdout.write(`ack ${epoch}\n`);
  } else if (word === "stop") {
    stopping = true;
  }
});

const lastAccepted = tokens.map(() => ({ epoch: -1, at: 0 }));
/** @type {Record<string, number>[]} */
const counts = tokens.map(() => ({}));
let verifications = 0;
process.stdout.write("ready\n");
for (let i = 0; !stopping; i++) {
  const index = i % tokens.length;
  const { token, requiredScopes } = /** @type {{ token: string, requiredScopes?: string[] }} */ (tokens[index]);
  const startedEpoch = epoch;
  const startedAt = Date.now();
  const result = await verifyApiKey(store, token, requiredScopes ? { requiredScopes } : {});
  verifications++;
  const count = /** @type {Record<string, number>} */ (counts[index]);
  count[result.code] = (count[result.code] ?? 0) + 1;
  if (result.valid) lastAccepted[index] = { epoch: startedEpoch, at: startedAt };
  // Let stdin in between (a SQLite verification completes without a turn of the event loop).
  if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
}
process.stdout.write(`${JSON.stringify({ lastAccepted, counts, verifications, storeReads })}\n`);
await store.close();
process.exit(0);
