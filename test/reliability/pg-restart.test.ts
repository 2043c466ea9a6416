import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { mintKey } from "../helpers/http.js";
import { findPgBin, startPgCluster, type PgCluster } from "../helpers/pg-cluster.mjs";
import { PG_URL } from "../helpers/pg.js";
import { call, connectHttp, sleep, spawnServeInstance, type ServeInstance } from "./support.js";

// A PostgreSQL restart under write traffic, as an operator's failover or upgrade does it: a
// `keywarden serve` on a cluster of its own (the shared test cluster is not restarted under the
// other tests), four MCP clients creating and revoking keys, and `pg_ctl restart -m fast` three
// times. postgres.js 3.4.9 ended the process at the first restart (src/store/postgres-transaction.ts);
// the calls in flight may fail, with internal_error saying what became of them, and the next ones
// must work again.

const RESTARTS = 3;
const WRITERS = 4;

/** What a call cut off by the restart may answer (src/service/errors.ts, internalErrorBody). */
const CUT_OFF = new Set([
  "internal error; the connection to the database was lost, so the operation was not completed",
  "internal error; the connection to the database was lost at commit, so the operation may or may not have been completed: read the key before trying again",
  "internal error; the operation was not completed",
]);

/**
 * A request whose bearer key cannot be judged while PostgreSQL is down: the verification cache is
 * bypassed while the key-change listener is lost (README, "Verification cache"), so the key is read
 * from the store, which does not answer, and the server says 503 with Retry-After (README, "Limits
 * and errors"). Whether a request lands in that window is a matter of timing.
 */
const STORE_UNAVAILABLE = /Error POSTing to endpoint: \{"error":"temporarily_unavailable","error_description":"The key store did not answer; retry later"\}$/;

let cluster: PgCluster | null = null;
let serve: ServeInstance | null = null;
afterAll(async () => {
  await serve?.close().catch(() => undefined);
  cluster?.stop();
});

describe.skipIf(!PG_URL)("keywarden serve while PostgreSQL restarts under writes", () => {
  it("lives through every restart, and answers writes again after each", async () => {
    const bin = findPgBin()!;
    cluster = await startPgCluster(bin, { durable: true });
    const { dataDir, logFile } = cluster;
    const admin = mintKey(cluster.url, "restart-admin", "admin", "admin");
    serve = await spawnServeInstance(cluster.url, admin.key, ["--max-active-keys", "1000"]);
    const url = serve.server.url;
    const restart = () =>
      execFileSync(process.getuid?.() === 0 ? "runuser" : `${bin}/pg_ctl`, [...(process.getuid?.() === 0 ? ["-u", "postgres", "--", `${bin}/pg_ctl`] : []), "-D", dataDir, "-l", logFile, "-m", "fast", "-w", "restart"], {
        // pg_ctl's server inherits nothing of ours: with a pipe left open, execFileSync would wait for it.
        stdio: "ignore",
      });

    let stopping = false;
    const acknowledged: string[] = [];
    const failures: string[] = [];
    const transportErrors: string[] = [];
    const writer = async (n: number) => {
      const { client } = await connectHttp(url, admin.key);
      for (let round = 0; !stopping; round++) {
        try {
          const created = await call(client, "create_api_key", { name: `w${n}-${round}` });
          if (!created.ok) {
            failures.push(String(created.body.message));
            await sleep(20);
            continue;
          }
          acknowledged.push(String(created.body.id));
          const revoked = await call(client, "revoke_api_key", { id: created.body.id, reason: "restart" });
          if (!revoked.ok) failures.push(String(revoked.body.message));
        } catch (error) {
          transportErrors.push(String(error));
          await sleep(20);
        }
      }
      await client.close();
    };
    const writers = Array.from({ length: WRITERS }, (_, n) => writer(n));

    const acknowledgedAfter: number[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      await sleep(1000);
      restart();
      const before = acknowledged.length;
      // Writes work again within seconds of PostgreSQL answering.
      const deadline = Date.now() + 15_000;
      while (acknowledged.length < before + 10 && Date.now() < deadline) await sleep(50);
      acknowledgedAfter.push(acknowledged.length - before);
    }
    stopping = true;
    await Promise.all(writers);

    expect(serve.server.child.exitCode).toBeNull();
    expect(acknowledgedAfter.every((count) => count >= 10), `acknowledged after each restart: ${acknowledgedAfter}`).toBe(true);
    expect(transportErrors.filter((message) => !STORE_UNAVAILABLE.test(message))).toEqual([]);
    expect(failures.filter((message) => !CUT_OFF.has(message))).toEqual([]);
    // Nothing the server acknowledged was lost by a restart.
    const { client } = await connectHttp(url, admin.key);
    const missing: string[] = [];
    for (const id of acknowledged) if (!(await call(client, "get_api_key", { id })).ok) missing.push(id);
    await client.close();
    expect(missing).toEqual([]);
    expect(serve.stderr()).not.toMatch(/TypeError|uncaught|unhandled/i);
  }, 180_000);
});
