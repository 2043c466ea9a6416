// Not a bench row: times last-use flushes of 20,000 distinct keys over a 100,000-key store, the
// cost behind row 1's "with last-use recording on".
//   store: one SqliteKeyStore.recordKeyUses call with all 20,000 uses (one transaction)
//   recorder: CoalescingUseRecorder.flush() of the same, and the longest the event loop was
//             blocked meanwhile (a setImmediate probe re-armed each turn)
// Each round takes a fresh pseudo-random set of keys with newer timestamps, so later rounds mix
// first uses and overwrites. Usage: npm run build && node bench/flush.mjs [rounds]
import { join } from "node:path";
import { bulkLoad, fmt, median, ROOT, seededRandom, tempDir } from "./lib.mjs";

const KEYS = 100_000;
const PER_FLUSH = 20_000;
const rounds = Number(process.argv[2] ?? 7);

const { dir, cleanup } = tempDir();
try {
  const path = join(dir, "flush.db");
  await bulkLoad(path, KEYS, { sampleSize: 1 });
  const { SqliteKeyStore, CoalescingUseRecorder } = await import("keywarden");
  const store = SqliteKeyStore.open({ path });
  const ids = store.db.prepare("SELECT id FROM api_keys").pluck().all();
  const random = seededRandom(4242);
  let clock = Date.parse("2026-06-01T00:00:00.000Z");
  const batch = () => {
    const chosen = new Set();
    while (chosen.size < PER_FLUSH) chosen.add(ids[Math.floor(random() * ids.length)]);
    clock += 1000;
    const at = new Date(clock).toISOString();
    return [...chosen].map((id) => /** @type {const} */ ([id, { at, ip: "203.0.113.7", userAgent: "bench-flush/1.0 (keywarden)" }]));
  };

  const storeMs = [];
  const recorderMs = [];
  const stallMs = [];
  await store.recordKeyUses(batch()); // warm-up
  for (let round = 0; round < rounds; round++) {
    const uses = batch();
    let started = process.hrtime.bigint();
    await store.recordKeyUses(uses);
    storeMs.push(Number(process.hrtime.bigint() - started) / 1e6);

    const recorder = new CoalescingUseRecorder(store, { intervalMs: 60_000 });
    for (const [id, use] of batch()) await recorder.record(id, use);
    let longest = 0;
    let last = process.hrtime.bigint();
    let probing = true;
    const probe = () => {
      const now = process.hrtime.bigint();
      longest = Math.max(longest, Number(now - last) / 1e6);
      last = now;
      if (probing) setImmediate(probe);
    };
    setImmediate(probe);
    started = process.hrtime.bigint();
    await recorder.flush();
    recorderMs.push(Number(process.hrtime.bigint() - started) / 1e6);
    probing = false;
    await new Promise(setImmediate);
    stallMs.push(longest);
    await recorder.close();
  }
  await store.close();
  const show = (values) => `median ${fmt(median(values))} ms  [${values.map((v) => fmt(v, 0)).join(", ")}]`;
  console.log(`store.recordKeyUses(${PER_FLUSH} distinct keys):     ${show(storeMs)}`);
  console.log(`recorder.flush() of ${PER_FLUSH} distinct keys:       ${show(recorderMs)}`);
  console.log(`longest event-loop stall during recorder.flush(): ${show(stallMs)}`);
} finally {
  cleanup();
}
