import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
// The library as a user installs it: the built package.
import { SqliteKeyStore, verifyApiKey } from "../../dist/index.js";
import { makeTempDir } from "../helpers/harness.js";
import { call, sleep, spawnChild, type StdioChild } from "./support.js";

// Crash: keywarden servers (the built binary, over stdio, each with a real MCP client in this
// process) create, rotate and revoke keys in a loop on one database file, and are killed with
// SIGKILL at random moments, 20 times over. "Reported" means the client received the result.
// After every kill the files as the crash left them must recover to a consistent database in
// which every reported key works and no user holds more active keys than the cap.

const ROUNDS = 20;
const CAP = 5;
const USERS = ["crash-ann", "crash-ben", "crash-cat"];

const temp = makeTempDir();
afterAll(() => temp.cleanup());
const dbPath = join(temp.dir, "keywarden.db");

interface Reported {
  token: string;
  id: string;
  user: string;
  round: number;
}

/** Everything the clients were told, across all rounds. */
const reported = new Map<string, Reported>(); // by key id
/** Keys a revoke or a grace-0 rotation was sent for: they may or may not be revoked now. */
const revokeSent = new Set<string>();
/** Keys whose revocation (or grace-0 rotation) was acknowledged: they must stay revoked. */
const revokeAcked = new Set<string>();
const unexpected: string[] = [];

interface WorkerStats {
  creates: number;
  rotations: number;
  revokes: number;
  inFlightAtKill: boolean;
}

/** One client's loop: keep writing until the server dies under it. */
async function work(child: StdioChild, user: string, round: number, rng: () => number): Promise<WorkerStats> {
  const stats: WorkerStats = { creates: 0, rotations: 0, revokes: 0, inFlightAtKill: false };
  const track = async <T>(promise: Promise<T>): Promise<T> => {
    try {
      return await promise;
    } catch (error) {
      stats.inFlightAtKill = true;
      throw error;
    }
  };
  try {
    await child.connected;
    // After a crash the client learns what is active from the server, like a real one would.
    const list = await track(call(child.client, "list_api_keys", { status: "active", limit: 100 }));
    if (!list.ok) throw new Error(`list_api_keys: ${list.raw}`);
    const active = (list.body.keys as { id: string }[]).map((key) => key.id);
    if (active.length > CAP) unexpected.push(`${user} round ${round}: ${active.length} active keys listed at start`);
    for (let n = 0; ; n++) {
      const choice = rng();
      if (active.length >= CAP) {
        const id = active.shift()!;
        revokeSent.add(id);
        const outcome = await track(call(child.client, "revoke_api_key", { id, reason: "crash loop" }));
        if (!outcome.ok) unexpected.push(`revoke ${id}: ${outcome.raw}`);
        else revokeAcked.add(id);
        stats.revokes++;
      } else if (choice < 0.25 && active.length > 0) {
        const index = Math.floor(rng() * active.length);
        const id = active[index]!;
        revokeSent.add(id);
        const outcome = await track(call(child.client, "rotate_api_key", { id, grace_period_seconds: 0 }));
        if (!outcome.ok) {
          unexpected.push(`rotate ${id}: ${outcome.raw}`);
          continue;
        }
        revokeAcked.add(id);
        const successor = outcome.body as { id: string; key: string };
        reported.set(successor.id, { token: successor.key, id: successor.id, user, round });
        active.splice(index, 1, successor.id);
        stats.rotations++;
      } else {
        const outcome = await track(call(child.client, "create_api_key", { name: `crash ${round}.${n}` }));
        if (!outcome.ok) {
          unexpected.push(`create: ${outcome.raw}`);
          continue;
        }
        const created = outcome.body as { id: string; key: string };
        reported.set(created.id, { token: created.key, id: created.id, user, round });
        active.push(created.id);
        stats.creates++;
      }
    }
  } catch {
    // The server was killed: the call in flight (if any) never reported anything.
    return stats;
  }
}

/** A small seeded PRNG (mulberry32), so a failing run can be replayed with KEYWARDEN_CRASH_SEED. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Check {
  integrity: string;
  foreignKeyViolations: number;
  keysWithoutEvent: number;
  overCap: { user: string; n: number }[];
  notValid: { id: string; code: string }[];
  notRevoked: { id: string; code: string }[];
  verified: number;
}

/**
 * Checks a copy of the files exactly as the crash left them (database and WAL, no shared-memory
 * index: SQLite rebuilds it), so the original stays un-recovered for the next round's servers.
 */
async function checkCrashState(round: number, inPlace = false): Promise<Check> {
  let path = dbPath;
  if (!inPlace) {
    path = join(temp.dir, `check-${round}.db`);
    copyFileSync(dbPath, path);
    if (existsSync(`${dbPath}-wal`)) copyFileSync(`${dbPath}-wal`, `${path}-wal`);
  }
  const store = SqliteKeyStore.open({ path });
  // A scratch copy: the last-use writes of the verifications below need not reach the disk.
  if (!inPlace) store.db.pragma("synchronous = OFF");
  try {
    const integrity = (store.db.pragma("integrity_check") as { integrity_check: string }[]).map((row) => row.integrity_check).join("; ");
    const foreignKeyViolations = (store.db.pragma("foreign_key_check") as unknown[]).length;
    // Each key and its audit event are written in one transaction: never one without the other.
    const keysWithoutEvent = (
      store.db
        .prepare("SELECT count(*) AS n FROM api_keys k WHERE NOT EXISTS (SELECT 1 FROM key_events e WHERE e.key_id = k.id)")
        .get() as { n: number }
    ).n;
    const now = new Date().toISOString();
    const counts = store.db
      .prepare(
        `SELECT u.name AS user, count(*) AS n FROM api_keys k JOIN users u ON u.id = k.user_id
         WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) GROUP BY u.name`,
      )
      .all(now) as { user: string; n: number }[];
    const overCap = counts.filter((row) => row.n > CAP);
    const notValid: Check["notValid"] = [];
    const notRevoked: Check["notRevoked"] = [];
    let verified = 0;
    for (const key of reported.values()) {
      // The library's own verify, on the recovered store.
      const result = await verifyApiKey(store, key.token);
      verified++;
      if (revokeAcked.has(key.id)) {
        if (result.code !== "revoked") notRevoked.push({ id: key.id, code: result.code });
      } else if (!revokeSent.has(key.id)) {
        if (result.code !== "valid") notValid.push({ id: key.id, code: result.code });
      } else if (result.code !== "valid" && result.code !== "revoked") {
        notValid.push({ id: key.id, code: result.code });
      }
    }
    return { integrity, foreignKeyViolations, keysWithoutEvent, overCap, notValid, notRevoked, verified };
  } finally {
    await store.close();
  }
}

describe("SIGKILL at random moments", () => {
  it(`${ROUNDS} kills of servers writing to one database lose no reported key and break no rule`, async () => {
    const seed = Number(process.env.KEYWARDEN_CRASH_SEED ?? Date.now() % 2 ** 31);
    const rng = mulberry32(seed);
    const log: string[] = [`seed ${seed}`];
    let killsWithCallInFlight = 0;
    let roundsWithWrites = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const children = USERS.map((user) =>
        spawnChild(["--db", dbPath, "--max-active-keys", String(CAP), "--log-level", "warn"], { KEYWARDEN_USER: user }),
      );
      // Each process dies at its own random moment: some while starting up (opening, migrating,
      // recovering the last crash's WAL), most in the middle of the write loop.
      const plans = children.map(() => (rng() < 0.15 ? { afterConnect: false, ms: rng() * 400 } : { afterConnect: true, ms: 20 + rng() * 800 }));
      const workers = children.map((child, i) => work(child, USERS[i]!, round, mulberry32(Math.floor(rng() * 2 ** 31))));
      await Promise.all(
        children.map(async (child, i) => {
          if (plans[i]!.afterConnect) await child.connected.catch(() => undefined);
          await sleep(plans[i]!.ms);
          child.kill("SIGKILL");
          await child.exited;
        }),
      );
      const stats = await Promise.all(workers);
      await Promise.all(children.map((child) => child.close()));
      killsWithCallInFlight += stats.filter((s) => s.inFlightAtKill).length;
      const writes = stats.reduce((sum, s) => sum + s.creates + s.rotations + s.revokes, 0);
      if (writes > 0) roundsWithWrites++;

      if (!existsSync(dbPath)) {
        // Killed before any of them created the file: then nothing can have been reported either.
        expect(reported.size, `round ${round}`).toBe(0);
        log.push(`round ${round}: killed before the database file existed`);
        continue;
      }
      const checkStarted = performance.now();
      const check = await checkCrashState(round);
      const checkMs = Math.round(performance.now() - checkStarted);
      log.push(
        `round ${round}: kills at ${plans.map((p) => `${p.afterConnect ? "+" : ""}${Math.round(p.ms)}`).join("/")} ms, ${writes} writes, ${check.verified} reported keys checked in ${checkMs} ms`,
      );
      expect(check.integrity, `round ${round}`).toBe("ok");
      expect(check.foreignKeyViolations, `round ${round}`).toBe(0);
      expect(check.keysWithoutEvent, `round ${round}`).toBe(0);
      expect(check.overCap, `round ${round}`).toEqual([]);
      expect(check.notValid, `round ${round}: reported keys that do not verify`).toEqual([]);
      expect(check.notRevoked, `round ${round}: acknowledged revocations that did not stick`).toEqual([]);
      expect(unexpected, `round ${round}`).toEqual([]);
    }
    log.push(`${reported.size} keys reported, ${revokeAcked.size} revocations acknowledged, ${killsWithCallInFlight} kills with a call in flight`);
    console.log(log.join("\n"));
    // The test only means something if the kills really landed in the middle of work.
    expect(reported.size).toBeGreaterThan(100);
    expect(revokeAcked.size).toBeGreaterThan(20);
    expect(roundsWithWrites).toBeGreaterThanOrEqual(ROUNDS / 2);
    expect(killsWithCallInFlight).toBeGreaterThanOrEqual(ROUNDS);

    // Finally the original files themselves, recovered in place: the same rules hold.
    const final = await checkCrashState(0, true);
    expect(final.integrity).toBe("ok");
    expect(final.notValid).toEqual([]);
    expect(final.overCap).toEqual([]);
  });
});
