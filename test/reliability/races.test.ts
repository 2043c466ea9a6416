import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { call, callOk, spawnChild, type StdioChild, type ToolOutcome } from "./support.js";

// Races between processes: four keywarden servers (the built binary over stdio, each its own
// process with its own SQLite connection) on one database file, all acting as the same user, fire
// their calls at once. Only the database's write lock stands between them.

const PROCESSES = 4;
const CAP = 5;
const USER = "racer";

const temp = makeTempDir();
const dbPath = join(temp.dir, "keywarden.db");
let servers: StdioChild[] = [];
let db: Database.Database;

beforeAll(async () => {
  // One server first, so that the database is created and migrated before the others open it.
  const args = ["--db", dbPath, "--max-active-keys", String(CAP), "--log-level", "warn"];
  const first = spawnChild(args, { KEYWARDEN_USER: USER });
  await first.connected;
  await callOk(first.client, "whoami");
  const rest = Array.from({ length: PROCESSES - 1 }, () => spawnChild(args, { KEYWARDEN_USER: USER }));
  await Promise.all(rest.map((server) => server.connected));
  servers = [first, ...rest];
  db = new Database(dbPath, { readonly: true });
});

afterAll(async () => {
  db?.close();
  await Promise.all(servers.map((server) => server.close()));
  // A race must not have cost any server an unexpected fault in its log.
  const faults = servers.flatMap((server) => server.stderr().split("\n").filter((line) => /"level":(50|60)/.test(line)));
  expect(faults.length, `server errors, the first: ${faults[0]?.slice(0, 400)}`).toBe(0);
  temp.cleanup();
});

/** Fires `perServer` calls on every server in one synchronous burst, then waits for them all. */
async function burst(perServer: number, name: string, args: () => Record<string, unknown>): Promise<ToolOutcome[]> {
  const pending: Promise<ToolOutcome>[] = [];
  for (let i = 0; i < perServer; i++) for (const server of servers) pending.push(call(server.client, name, args()));
  return Promise.all(pending);
}

const tally = (outcomes: ToolOutcome[]) => {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) {
    const label = outcome.ok ? "ok" : `${outcome.code}:${(outcome.body.errors as { message: string }[] | undefined)?.[0]?.message ?? ""}`;
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
};

function activeKeyIds(): string[] {
  return (
    db
      .prepare(
        `SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id
         WHERE u.name = ? AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND k.replaced_by IS NULL
         ORDER BY k.id`,
      )
      .all(USER, new Date().toISOString()) as { id: string }[]
  ).map((row) => row.id);
}

async function revokeAll(): Promise<void> {
  for (const id of activeKeyIds()) await callOk(servers[0]!.client, "revoke_api_key", { id });
  expect(activeKeyIds()).toEqual([]);
}

describe(`${PROCESSES} processes racing on one database`, () => {
  it.each([1, 2, 3])(`${PROCESSES} x 25 simultaneous creates under a cap of ${CAP} leave exactly ${CAP} active keys (round %i)`, async () => {
    await revokeAll();
    const keysBefore = (db.prepare("SELECT count(*) AS n FROM api_keys").get() as { n: number }).n;
    const outcomes = await burst(25, "create_api_key", () => ({ name: "race" }));
    expect(outcomes).toHaveLength(PROCESSES * 25);
    expect(tally(outcomes)).toEqual({ ok: CAP, "max_keys_reached:max_keys_reached": PROCESSES * 25 - CAP });
    const winners = outcomes.filter((outcome) => outcome.ok).map((outcome) => outcome.body.id as string).sort();
    // The database agrees: exactly the five winners are active, and nothing else was written.
    expect(activeKeyIds()).toEqual(winners);
    expect((db.prepare("SELECT count(*) AS n FROM api_keys").get() as { n: number }).n).toBe(keysBefore + CAP);
    const created = db
      .prepare(`SELECT count(*) AS n FROM key_events WHERE event_type = 'key.created' AND key_id IN (${winners.map(() => "?").join(",")})`)
      .get(...winners) as { n: number };
    expect(created.n).toBe(CAP);
  });

  it.each([0, 3600, 0])("50 simultaneous rotations of one key across the processes produce exactly one successor (grace %i s)", async (grace) => {
    await revokeAll();
    const key = await callOk<{ id: string }>(servers[1]!.client, "create_api_key", { name: "hot" });
    const keysBefore = (db.prepare("SELECT count(*) AS n FROM api_keys").get() as { n: number }).n;
    // 50 across 4 servers: 13, 13, 12, 12.
    const pending: Promise<ToolOutcome>[] = [];
    for (let i = 0; i < 50; i++) {
      pending.push(call(servers[i % PROCESSES]!.client, "rotate_api_key", { id: key.id, grace_period_seconds: grace }));
    }
    const outcomes = await Promise.all(pending);
    expect(tally(outcomes)).toEqual({ ok: 1, "conflict:already_rotated": 49 });
    const winner = outcomes.find((outcome) => outcome.ok)!.body as { id: string; previous_key_id: string };
    expect(winner.previous_key_id).toBe(key.id);
    // In the database: exactly one row rotated from the key, and the key points at it.
    const successors = db.prepare("SELECT id FROM api_keys WHERE rotated_from = ?").all(key.id) as { id: string }[];
    expect(successors).toEqual([{ id: winner.id }]);
    const old = db.prepare("SELECT replaced_by, revoked_at FROM api_keys WHERE id = ?").get(key.id) as { replaced_by: string; revoked_at: string | null };
    expect(old.replaced_by).toBe(winner.id);
    expect(old.revoked_at !== null).toBe(grace === 0);
    expect((db.prepare("SELECT count(*) AS n FROM api_keys").get() as { n: number }).n).toBe(keysBefore + 1);
    const events = db.prepare("SELECT key_id FROM key_events WHERE event_type = 'key.rotated' AND key_id IN (?, ?)").all(key.id, winner.id);
    expect(events).toHaveLength(2);
    expect(activeKeyIds()).toEqual([winner.id]);
  });

  it("a storm of creates, rotations and revocations from every process never leaves more active keys than the cap", async () => {
    await revokeAll();
    const violations: string[] = [];
    const faults: string[] = [];
    const done: Record<string, number> = {};
    let stop = false;
    // A watcher samples the database throughout the storm, not only at the end.
    const watcher = (async () => {
      while (!stop) {
        const n = activeKeyIds().length;
        if (n > CAP) violations.push(`${n} active`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await Promise.all(
      servers.map(async (server, s) => {
        for (let i = 0; i < 40; i++) {
          const active = activeKeyIds();
          const pick = active[(i * 7 + s) % Math.max(1, active.length)];
          const action = pick === undefined ? 0 : (i + s) % 3;
          const outcome =
            action === 0
              ? await call(server.client, "create_api_key", { name: `storm ${s}.${i}` })
              : action === 1
                ? await call(server.client, "rotate_api_key", { id: pick, grace_period_seconds: i % 2 === 0 ? 0 : 60 })
                : await call(server.client, "revoke_api_key", { id: pick });
          // Losing a race is fine (max_keys_reached, conflict); anything else is a fault.
          if (!outcome.ok && outcome.code !== "max_keys_reached" && outcome.code !== "conflict") faults.push(outcome.raw);
          const label = `${["create", "rotate", "revoke"][action]}:${outcome.ok ? "ok" : outcome.code}`;
          done[label] = (done[label] ?? 0) + 1;
        }
      }),
    );
    stop = true;
    await watcher;
    expect(faults).toEqual([]);
    expect(violations).toEqual([]);
    // The storm really wrote: each kind of call succeeded many times.
    for (const label of ["create:ok", "rotate:ok", "revoke:ok"]) expect(done[label] ?? 0, JSON.stringify(done)).toBeGreaterThan(10);
    expect(activeKeyIds().length).toBeLessThanOrEqual(CAP);
    // Every rotated key has exactly one successor.
    const doubles = db.prepare("SELECT rotated_from, count(*) AS n FROM api_keys WHERE rotated_from IS NOT NULL GROUP BY rotated_from HAVING n > 1").all();
    expect(doubles).toEqual([]);
  });
});
