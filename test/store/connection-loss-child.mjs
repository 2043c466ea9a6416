// The child of test/store/postgres-connection-loss.test.ts: a storm of writes through the built
// KeyService on a PostgresKeyStore (creates, rotations, revocations, projects, verifications),
// while the parent kills this process's backends. One JSON line on stdout per acknowledged or
// failed operation; "stop" on stdin ends the storm, then the watcher must still hear a change and
// the process exits 0. A crash is a dead process and its stack trace on stderr.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [root, url] = process.argv.slice(2);
if (!root || !url) throw new Error("usage: connection-loss-child.mjs <checkout> <postgres url>");
const { KeyService, DEFAULT_POLICY, ServiceError, verifyApiKey } = await import(pathToFileURL(`${root}/dist/index.js`).href);
const { PostgresKeyStore } = await import(pathToFileURL(`${root}/dist/postgres.js`).href);

const WORKERS = 6;

/** @param {Record<string, unknown>} line */
const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

/** What a failure was, for the parent to judge: a ServiceError's code, or the error's class and code. */
function failure(/** @type {unknown} */ error) {
  const err = /** @type {{ name?: unknown, code?: unknown, message?: unknown, constructor?: { name?: unknown } }} */ (error ?? {});
  if (error instanceof ServiceError) return { kind: "service", code: String(err.code), message: String(err.message) };
  return { kind: "store", name: String(err.constructor?.name ?? err.name), code: String(err.code ?? ""), message: String(err.message ?? error) };
}

const store = await PostgresKeyStore.open({ url, poolSize: 4, statementTimeoutMs: 5000 });
const service = new KeyService({ store, config: { policy: { ...DEFAULT_POLICY, maxActiveKeysPerUser: 10_000 }, keyBrand: "kw" } });
/** @type {Set<string>} */
const changed = new Set();
let relistened = 0;
await store.watchKeyChanges((/** @type {string[] | "all"} */ ids) => {
  if (ids === "all") relistened++;
  else for (const id of ids) changed.add(id);
});

let stopping = false;
const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  if (line.trim() !== "stop") return;
  stopping = true;
  commands.close();
  process.stdin.destroy();
});

/**
 * Runs one operation, reports it, and gives back its result or null.
 * @template T
 * @param {string} op
 * @param {Record<string, unknown>} subject
 * @param {() => Promise<T>} run
 * @param {(result: T) => Record<string, unknown>} acknowledged
 * @returns {Promise<T | null>}
 */
async function attempt(op, subject, run, acknowledged) {
  try {
    const result = await run();
    emit({ op, ok: true, ...subject, ...acknowledged(result) });
    return result;
  } catch (error) {
    emit({ op, ok: false, ...subject, error: failure(error) });
    // The next statement waits for a timer, as a client's next request would: one sent from the
    // continuation of a connection's close can land on another connection closing in the same
    // turn of the event loop, which postgres.js 3.4.9 then leaves unable to connect again
    // (src/store/postgres-transaction.ts, runTransaction).
    await new Promise((resolve) => setTimeout(resolve, 10));
    return null;
  }
}

/** Keeps asking until the database answers again (a principal is looked up or created). */
async function principalOf(/** @type {string} */ userName, /** @type {boolean} */ isAdmin) {
  for (;;) {
    try {
      return await service.localPrincipal({ userName, transport: "library", isAdmin });
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** One user's keys: create, verify, rotate at once, revoke the successor; again until told to stop. */
async function keyWorker(/** @type {number} */ n) {
  const principal = await principalOf(`storm-${n}`, false);
  for (let round = 0; !stopping; round++) {
    const created = await attempt("create", {}, () => service.createApiKey(principal, { name: `k${n}-${round}` }), (key) => ({ id: key.id }));
    if (!created) continue;
    await attempt("verify", { id: created.id }, () => verifyApiKey(store, created.key), (result) => ({ code: result.code }));
    const rotated = await attempt("rotate", { id: created.id }, () => service.rotateApiKey(principal, { id: created.id, grace_period_seconds: 0 }), (key) => ({ newId: key.id }));
    if (!rotated) continue;
    await attempt("revoke", { id: rotated.id }, () => service.revokeApiKey(principal, { id: rotated.id, reason: "storm" }), () => ({}));
  }
}

/** Projects: insertProject is a transaction of its own. */
async function projectWorker() {
  const admin = await principalOf("storm-admin", true);
  for (let round = 0; !stopping; round++) {
    const slug = `p-${process.pid}-${round}`;
    await attempt("project", { slug }, () => service.createProject(admin, { slug, name: slug }), (project) => ({ id: project.id }));
  }
}

emit({ ready: true });
await Promise.all([...Array.from({ length: WORKERS }, (_, n) => keyWorker(n)), projectWorker()]);

// The storm is over and the parent has stopped killing: the pool and the watcher must work again.
const last = await principalOf("storm-last", false);
const key = await service.createApiKey(last, { name: "after the storm" });
await service.revokeApiKey(last, { id: key.id, reason: "after the storm" });
const deadline = Date.now() + 15_000;
while (!changed.has(key.id) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
emit({ done: true, heardAfterStorm: changed.has(key.id), relistened, lastKeyId: key.id });
await store.close();
