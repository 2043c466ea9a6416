import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  call,
  callOk,
  ENGINES,
  engineSkipped,
  faultLines,
  mintKeys,
  openTestDatabase,
  spawnServeInstance,
  type ServeInstance,
  type TestDatabase,
  type ToolOutcome,
} from "./support.js";

// Races between processes: four `keywarden serve` instances (the built binary, each its own
// process with its own connections: SQLite's file lock, or a PostgreSQL pool) on one database,
// with a real MCP client each, all acting as the same user through one bearer key, fire their
// calls at once. Only the engine's write serialisation stands between them (SQLite's write lock;
// PostgreSQL's per-user advisory lock, src/store/postgres-write.ts). The same scenarios on each
// engine; each engine's rows are read by the test itself.

const PROCESSES = 4;
const CAP = 5;
const USER = "racer";

const tally = (outcomes: ToolOutcome[]) => {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) {
    const label = outcome.ok ? "ok" : `${outcome.code}:${(outcome.body.errors as { message: string }[] | undefined)?.[0]?.message ?? ""}`;
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
};

for (const engine of ENGINES) {
  describe.skipIf(engineSkipped(engine))(`${PROCESSES} keywarden serve racing on one ${engine} database`, () => {
    let database: TestDatabase;
    let servers: ServeInstance[] = [];
    /** The bearer key's id: an active key of the racer that every call uses, so never revoked here. */
    let bearerId: string;

    beforeAll(async () => {
      database = await openTestDatabase(engine);
      // Minting creates and migrates the database before any server opens it.
      const [bearer] = await mintKeys(database.db, [{ user: USER, name: "racer's bearer", scopes: ["tools:read", "tools:execute"] }]);
      bearerId = bearer!.id;
      // Info, not warn: spawnHttpServer learns the port from the "listening" line.
      const args = ["--max-active-keys", String(CAP)];
      servers = await Promise.all(Array.from({ length: PROCESSES }, () => spawnServeInstance(database.db, bearer!.key, args)));
    });

    afterAll(async () => {
      await Promise.all(servers.map((server) => server.close()));
      await database?.close();
      // A race must not have cost any server an unexpected fault in its log.
      const faults = servers.flatMap((server) => faultLines(server.stderr()));
      expect(faults.length, `server errors, the first: ${faults[0]?.slice(0, 400)}`).toBe(0);
    });

    /** The racer's keys that count against the cap now, the bearer included. */
    async function activeKeyIds(): Promise<string[]> {
      const rows = await database.all<{ id: string }>(
        `SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id
         WHERE u.name = ? AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?) AND k.replaced_by IS NULL
         ORDER BY k.id`,
        USER,
        new Date().toISOString(),
      );
      return rows.map((row) => row.id);
    }

    /** The active keys the calls may race on: all but the bearer. */
    const raceable = async () => (await activeKeyIds()).filter((id) => id !== bearerId);

    const countKeys = async () => (await database.all<{ n: number }>("SELECT CAST(count(*) AS INTEGER) AS n FROM api_keys"))[0]!.n;

    async function revokeAll(): Promise<void> {
      for (const id of await raceable()) await callOk(servers[0]!.client, "revoke_api_key", { id });
      expect(await activeKeyIds()).toEqual([bearerId]);
    }

    /** Fires `perServer` calls on every server in one synchronous burst, then waits for them all. */
    async function burst(perServer: number, name: string, args: () => Record<string, unknown>): Promise<ToolOutcome[]> {
      const pending: Promise<ToolOutcome>[] = [];
      for (let i = 0; i < perServer; i++) for (const server of servers) pending.push(call(server.client, name, args()));
      return Promise.all(pending);
    }

    // The bearer takes one of the cap's places: CAP - 1 creates win, and the racer holds exactly CAP.
    it.each([1, 2, 3])(`${PROCESSES} x 25 simultaneous creates under a cap of ${CAP} leave exactly ${CAP} active keys (round %i)`, async () => {
      await revokeAll();
      const keysBefore = await countKeys();
      const outcomes = await burst(25, "create_api_key", () => ({ name: "race" }));
      expect(outcomes).toHaveLength(PROCESSES * 25);
      expect(tally(outcomes)).toEqual({ ok: CAP - 1, "max_keys_reached:max_keys_reached": PROCESSES * 25 - (CAP - 1) });
      const winners = outcomes.filter((outcome) => outcome.ok).map((outcome) => outcome.body.id as string);
      // The database agrees: exactly the bearer and the winners are active, and nothing else was written.
      expect(await activeKeyIds()).toEqual([bearerId, ...winners].sort());
      expect(await countKeys()).toBe(keysBefore + CAP - 1);
      const created = await database.all<{ n: number }>(
        `SELECT CAST(count(*) AS INTEGER) AS n FROM key_events WHERE event_type = 'key.created' AND key_id IN (${winners.map(() => "?").join(",")})`,
        ...winners,
      );
      expect(created[0]!.n).toBe(CAP - 1);
    });

    // The issue asks for 2 instances; 4 make the race wider. Grace 3600 leaves the old key working.
    it.each([
      { grace: 0, through: 2 },
      { grace: 3600, through: 2 },
      { grace: 0, through: PROCESSES },
    ])("50 simultaneous rotations of one key through $through instances produce exactly one successor (grace $grace s)", async ({ grace, through }) => {
      await revokeAll();
      const key = await callOk<{ id: string }>(servers[1]!.client, "create_api_key", { name: "hot" });
      const keysBefore = await countKeys();
      const pending: Promise<ToolOutcome>[] = [];
      for (let i = 0; i < 50; i++) {
        pending.push(call(servers[i % through]!.client, "rotate_api_key", { id: key.id, grace_period_seconds: grace }));
      }
      const outcomes = await Promise.all(pending);
      expect(tally(outcomes)).toEqual({ ok: 1, "conflict:already_rotated": 49 });
      const winner = outcomes.find((outcome) => outcome.ok)!.body as { id: string; previous_key_id: string };
      expect(winner.previous_key_id).toBe(key.id);
      // In the database: exactly one row rotated from the key, and the key points at it.
      expect(await database.all("SELECT id FROM api_keys WHERE rotated_from = ?", key.id)).toEqual([{ id: winner.id }]);
      const [old] = await database.all<{ replaced_by: string; revoked_at: unknown }>("SELECT replaced_by, revoked_at FROM api_keys WHERE id = ?", key.id);
      expect(old!.replaced_by).toBe(winner.id);
      expect(old!.revoked_at !== null).toBe(grace === 0);
      expect(await countKeys()).toBe(keysBefore + 1);
      const events = await database.all("SELECT key_id FROM key_events WHERE event_type = 'key.rotated' AND key_id IN (?, ?)", key.id, winner.id);
      expect(events).toHaveLength(2);
      expect(await raceable()).toEqual([winner.id]);
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
          const n = (await activeKeyIds()).length;
          if (n > CAP) violations.push(`${n} active`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      await Promise.all(
        servers.map(async (server, s) => {
          for (let i = 0; i < 40; i++) {
            const active = await raceable();
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
      expect((await activeKeyIds()).length).toBeLessThanOrEqual(CAP);
      // Every rotated key has exactly one successor.
      const doubles = await database.all("SELECT rotated_from, count(*) AS n FROM api_keys WHERE rotated_from IS NOT NULL GROUP BY rotated_from HAVING count(*) > 1");
      expect(doubles).toEqual([]);
    });
  });
}
