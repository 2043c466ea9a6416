import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, describe, expect, it } from "vitest";
// The library as a user installs it: the built package.
import { SqliteKeyStore, verifyApiKey } from "../../dist/index.js";
import { makeTempDir } from "../helpers/harness.js";
import { rawRequest, spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";
import {
  call,
  connectHttp,
  engineSkipped,
  faultLines,
  mintKeys,
  openBuiltStore,
  openTestDatabase,
  sleep,
  spawnChild,
  type MintedKey,
  type StdioChild,
  type TestDatabase,
} from "./support.js";

// Crash, on SQLite: keywarden servers (the built binary, over stdio, each with a real MCP client in
// this process) create, rotate and revoke keys in a loop on one database file, and are killed with
// SIGKILL at random moments, 20 times over. "Reported" means the client received the result.
// After every kill the files as the crash left them must recover to a consistent database in
// which every reported key works and no user holds more active keys than the cap.
//
// Crash, on PostgreSQL: two `keywarden serve` on one database, each user's clients storming
// creates through both at once; one instance is SIGKILLed in the middle, the other must go on
// answering every call, and what either acknowledged must be in the database and verify.

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

/** Everything the clients of one test were told, across all its rounds. */
class Ledger {
  readonly reported = new Map<string, Reported>(); // by key id
  /** Keys a revoke or a grace-0 rotation was sent for: they may or may not be revoked now. */
  readonly revokeSent = new Set<string>();
  /** Keys whose revocation (or grace-0 rotation) was acknowledged: they must stay revoked. */
  readonly revokeAcked = new Set<string>();
  readonly unexpected: string[] = [];

  /** What is wrong with a reported key's verify code, or null: acknowledged is never lost nor undone. */
  judge(id: string, code: string): string | null {
    if (this.revokeAcked.has(id)) return code === "revoked" ? null : `revocation acknowledged, verify says ${code}`;
    if (!this.revokeSent.has(id)) return code === "valid" ? null : `creation acknowledged, verify says ${code}`;
    return code === "valid" || code === "revoked" ? null : `verify says ${code}`;
  }
}

const ledger = new Ledger();
const { reported, revokeSent, revokeAcked, unexpected } = ledger;

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
      if (ledger.judge(key.id, result.code) === null) continue;
      (revokeAcked.has(key.id) ? notRevoked : notValid).push({ id: key.id, code: result.code });
    }
    return { integrity, foreignKeyViolations, keysWithoutEvent, overCap, notValid, notRevoked, verified };
  } finally {
    await store.close();
  }
}

describe("SIGKILL at random moments, on SQLite", () => {
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

const PG_ROUNDS = 6;
/** Calls each client of the surviving instance must have had answered after the kill. */
const AFTER_KILL = 10;

interface StormStats {
  /** Calls answered (a result or a tool error). */
  answered: number;
  /** Calls answered after the test killed the other instance. */
  answeredAfterKill: number;
  /** Ids of the keys acknowledged (created or rotated to): reported to the client. */
  acknowledged: string[];
  /** Creates refused with max_keys_reached: the cap was fought over. */
  capRefusals: number;
  /** Whether a call is on its way now. */
  inFlight: boolean;
  /** A call that got no answer (the transport failed): the kill, for a client of the killed instance. */
  failure: string | null;
}

/**
 * One client's create storm through one instance, until `control.stop` or a call goes unanswered,
 * filling in `stats` as it goes. Another client of the same user storms through the other
 * instance, so the cap is fought over: a create refused with max_keys_reached makes room by
 * revoking this client's oldest key. A client rotates and revokes only keys it created, so that
 * its answers alone say what must be in the database.
 */
async function storm(
  client: Client,
  user: string,
  round: number,
  book: Ledger,
  rng: () => number,
  control: { stop: boolean; killed: boolean },
  stats: StormStats,
): Promise<void> {
  const own: string[] = [];
  const send = <T>(promise: Promise<T>): Promise<T> => {
    stats.inFlight = true;
    return promise;
  };
  const answered = () => {
    stats.inFlight = false;
    stats.answered++;
    if (control.killed) stats.answeredAfterKill++;
  };
  const report = (key: { id: string; key: string }) => {
    book.reported.set(key.id, { token: key.key, id: key.id, user, round });
    stats.acknowledged.push(key.id);
  };
  try {
    for (let n = 0; !control.stop; n++) {
      if (own.length > 0 && rng() < 0.1) {
        const index = Math.floor(rng() * own.length);
        const id = own[index]!;
        book.revokeSent.add(id);
        const outcome = await send(call(client, "rotate_api_key", { id, grace_period_seconds: 0 }));
        answered();
        if (!outcome.ok) {
          book.unexpected.push(`${user} rotate ${id}: ${outcome.raw}`);
          continue;
        }
        book.revokeAcked.add(id);
        const successor = outcome.body as { id: string; key: string };
        report(successor);
        own.splice(index, 1, successor.id);
        continue;
      }
      const outcome = await send(call(client, "create_api_key", { name: `storm ${round}.${n}` }));
      answered();
      if (outcome.ok) {
        const created = outcome.body as { id: string; key: string };
        report(created);
        own.push(created.id);
        continue;
      }
      if (outcome.code !== "max_keys_reached") {
        book.unexpected.push(`${user} create: ${outcome.raw}`);
        continue;
      }
      stats.capRefusals++;
      // At the cap: make room, if this client holds any of the places.
      const id = own.shift();
      if (id === undefined) continue;
      book.revokeSent.add(id);
      const revoked = await send(call(client, "revoke_api_key", { id, reason: "storm" }));
      answered();
      if (revoked.ok) book.revokeAcked.add(id);
      else book.unexpected.push(`${user} revoke ${id}: ${revoked.raw}`);
    }
  } catch (error) {
    stats.failure = String(error);
  }
}

describe.skipIf(engineSkipped("postgres"))("SIGKILL of one of two instances on one PostgreSQL database, in the middle of create storms", () => {
  const book = new Ledger();
  let database: TestDatabase | undefined;
  const servers: (HttpServerProcess | undefined)[] = [undefined, undefined];
  afterAll(async () => {
    await Promise.all(servers.map((server) => server?.stop("SIGKILL")));
    await database?.close();
  });

  it(`${PG_ROUNDS} kills: the other instance answers every call, no acknowledged key is lost, the cap holds`, async () => {
    const seed = Number(process.env.KEYWARDEN_CRASH_SEED ?? Date.now() % 2 ** 31);
    const rng = mulberry32(seed);
    const log: string[] = [`seed ${seed}`];
    database = await openTestDatabase("postgres");
    const db = database.db;
    // One bearer key per user, for its clients on both instances: it takes one of the cap's places.
    const minted = await mintKeys(db, [
      ...USERS.map((user) => ({ user, name: `${user} bearer`, scopes: ["tools:read", "tools:execute"] })),
      { user: "crash-gateway", name: "gateway", scopes: ["keys:verify"] },
    ]);
    const bearers = new Map<string, MintedKey>(USERS.map((user, i) => [user, minted[i]!]));
    const gateway = minted[USERS.length]!;
    const store = await openBuiltStore(db);
    let killsWithCallInFlight = 0;
    let verifiedThroughSurvivor = 0;
    let survivorCallsInFlightAtKill = 0;
    let capRefusals = 0;
    try {
      for (let round = 1; round <= PG_ROUNDS; round++) {
        const victim = round % 2;
        const survivor = 1 - victim;
        // The instance killed last round starts again (the first round starts both).
        for (const i of [0, 1]) servers[i] ??= await spawnHttpServer(["--db", db, "--max-active-keys", String(CAP)]);
        const survivorServer = servers[survivor]!;
        const clients = await Promise.all(
          [0, 1].flatMap((server) =>
            USERS.map(async (user) => ({ server, user, ...(await connectHttp(servers[server]!.url, bearers.get(user)!.key)) })),
          ),
        );
        // Like a client after a crash, each user learns from a server what is active and revokes
        // what no client holds any more (keys of the clients of the instance killed before).
        for (const user of USERS) {
          const { client } = clients.find((c) => c.user === user)!;
          const listed = await call(client, "list_api_keys", { status: "active", limit: 100 });
          expect(listed.ok, listed.raw).toBe(true);
          for (const { id } of listed.body.keys as { id: string }[]) {
            if (id === bearers.get(user)!.id) continue;
            book.revokeSent.add(id);
            const outcome = await call(client, "revoke_api_key", { id, reason: "orphaned by a crash" });
            expect(outcome.ok, outcome.raw).toBe(true);
            book.revokeAcked.add(id);
          }
        }
        // The cap, sampled in the database throughout the storm and the kill.
        const overCap: string[] = [];
        const control = { stop: false, killed: false };
        const watcher = (async () => {
          while (!control.stop) {
            const rows = await database!.all<{ name: string; n: number }>(
              `SELECT u.name, CAST(count(*) AS INTEGER) AS n FROM api_keys k JOIN users u ON u.id = k.user_id
               WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND k.replaced_by IS NULL GROUP BY u.name`,
              new Date().toISOString(),
            );
            for (const row of rows) if (row.n > CAP) overCap.push(`${row.name}: ${row.n}`);
            await sleep(10);
          }
        })();
        const stats = clients.map((): StormStats => ({ answered: 0, answeredAfterKill: 0, acknowledged: [], capRefusals: 0, inFlight: false, failure: null }));
        const storms = clients.map((c, i) => storm(c.client, c.user, round, book, mulberry32(Math.floor(rng() * 2 ** 31)), control, stats[i]!));
        // The kill lands in the middle of the storms: once each client of the victim has had a few
        // answers (however slow the machine), then at a random moment.
        const victimStats = stats.filter((_, i) => clients[i]!.server === victim);
        const survivorStats = stats.filter((_, i) => clients[i]!.server === survivor);
        for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(10)) {
          if (victimStats.every((s) => s.answered >= 3)) break;
        }
        const killAfter = Math.round(rng() * 700);
        await sleep(killAfter);
        const victimAckedBeforeKill = victimStats.reduce((sum, s) => sum + s.acknowledged.length, 0);
        servers[victim]!.child.kill("SIGKILL");
        const inFlightAtKill = stats.map((s, i) => (s.inFlight ? clients[i]!.server : null)).filter((server) => server !== null);
        const victimInFlight = inFlightAtKill.filter((server) => server === victim).length;
        const survivorInFlight = inFlightAtKill.length - victimInFlight;
        await servers[victim]!.exited;
        servers[victim] = undefined;
        control.killed = true;
        // A call whose answer was to come over a stream the kill cut would wait for its timeout:
        // closing the client ends it, as a real client gives up on a dead server.
        await Promise.all(clients.filter((c) => c.server === victim).map((c) => c.client.close().catch(() => undefined)));
        // The survivor goes on: each of its clients gets AFTER_KILL more answers (or fails: checked below).
        for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(20)) {
          if (survivorStats.every((s) => s.answeredAfterKill >= AFTER_KILL || s.failure !== null)) break;
        }
        control.stop = true;
        await Promise.all(storms);
        await watcher;
        const health = await rawRequest(`${survivorServer.base}/healthz`);
        await Promise.all(
          clients.filter((c) => c.server === survivor).map(async (c) => {
            await c.transport.terminateSession().catch(() => undefined);
            await c.client.close();
          }),
        );

        // The survivor answered every call, during the kill and after it, and logged no fault.
        expect(survivorStats.map((s) => s.failure), `round ${round}: calls of the survivor that went unanswered`).toEqual(USERS.map(() => null));
        expect(survivorStats.map((s) => s.answeredAfterKill >= AFTER_KILL), `round ${round}`).toEqual(USERS.map(() => true));
        expect([health.status, health.json()]).toEqual([200, { status: "ok", database: "ok" }]);
        expect(faultLines(survivorServer.stderr()), `round ${round}: faults in the survivor's log`).toEqual([]);
        killsWithCallInFlight += victimInFlight;
        survivorCallsInFlightAtKill += survivorInFlight;
        capRefusals += stats.reduce((sum, s) => sum + s.capRefusals, 0);
        expect(book.unexpected, `round ${round}`).toEqual([]);
        expect(overCap, `round ${round}: users over the cap of ${CAP} during the storm`).toEqual([]);

        // In the database: no user over the cap, every key written with its event, and every
        // acknowledged key as the answers said, checked with the library on the database itself.
        const now = new Date().toISOString();
        const counts = await database.all<{ name: string; n: number }>(
          `SELECT u.name, CAST(count(*) AS INTEGER) AS n FROM api_keys k JOIN users u ON u.id = k.user_id
           WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND k.replaced_by IS NULL GROUP BY u.name`,
          now,
        );
        expect(counts.filter((row) => row.n > CAP), `round ${round}`).toEqual([]);
        const [withoutEvent] = await database.all<{ n: number }>(
          "SELECT CAST(count(*) AS INTEGER) AS n FROM api_keys k WHERE NOT EXISTS (SELECT 1 FROM key_events e WHERE e.key_id = k.id)",
        );
        expect(withoutEvent!.n, `round ${round}: keys without their event`).toBe(0);
        const wrong: string[] = [];
        for (const key of book.reported.values()) {
          const problem = book.judge(key.id, (await verifyApiKey(store, key.token)).code);
          if (problem) wrong.push(`${key.id} (${key.user}, round ${key.round}): ${problem}`);
        }
        expect(wrong, `round ${round}: acknowledged keys not as acknowledged`).toEqual([]);
        // What the killed instance acknowledged this round, asked of the survivor as a gateway asks.
        const fromVictim = victimStats.flatMap((s) => s.acknowledged).filter((id) => !book.revokeSent.has(id));
        for (const key of fromVictim.slice(0, 20).map((id) => book.reported.get(id)!)) {
          const answer = await rawRequest(`${survivorServer.base}/v1/keys/verify`, {
            method: "POST",
            headers: { "Content-Type": "application/json", Authorization: `Bearer ${gateway.key}` },
            body: JSON.stringify({ key: key.token }),
          });
          expect([answer.status, (answer.json() as { code: string }).code], key.id).toEqual([200, "valid"]);
          verifiedThroughSurvivor++;
        }
        const answeredAfter = survivorStats.map((s) => s.answeredAfterKill).join("/");
        log.push(
          `round ${round}: killed instance ${victim} ${killAfter} ms after its clients' third answers, after ${victimAckedBeforeKill} keys it acknowledged, ` +
            `with ${victimInFlight} of its clients' calls and ${survivorInFlight} of the survivor's in flight; ` +
            `survivor's clients answered ${answeredAfter} calls after the kill; ${book.reported.size} acknowledged keys checked`,
        );
      }
    } finally {
      await store.close();
    }
    log.push(
      `${book.reported.size} keys acknowledged, ${book.revokeAcked.size} revocations acknowledged, ` +
        `${capRefusals} creates refused at the cap, ${killsWithCallInFlight} calls in flight on a killed instance, ` +
        `${survivorCallsInFlightAtKill} on the survivor at the kill, ${verifiedThroughSurvivor} keys a killed instance acknowledged verified through the survivor`,
    );
    console.log(log.join("\n"));
    // The test only means something if the kills landed in the middle of storms that wrote.
    expect(book.reported.size).toBeGreaterThan(50);
    expect(killsWithCallInFlight).toBeGreaterThanOrEqual(PG_ROUNDS);
    expect(survivorCallsInFlightAtKill).toBeGreaterThanOrEqual(PG_ROUNDS);
    expect(capRefusals).toBeGreaterThanOrEqual(PG_ROUNDS);
    expect(verifiedThroughSurvivor).toBeGreaterThan(0);
  });
});
