import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { ServiceError } from "../../src/service/errors.js";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import type { Principal } from "../../src/service/principal.js";
import { KeyService } from "../../src/service/service.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";

// The rules that hold across instances (README, Policy: the cap, one successor per rotation),
// with the real deciders of src/service: several stores, each with its own pool of connections
// (as separate keywarden instances have), on one database, fire at once. Only write()'s per-user
// lock stands between them.

const CAP = 5;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Instance {
  store: PostgresKeyStore;
  service: KeyService;
  principal: Principal;
}

/** `count` stores on one new database, each with a KeyService acting as the same user. */
async function instances(count: number): Promise<{ url: string; instances: Instance[] }> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const opened: Instance[] = [];
  for (let i = 0; i < count; i++) {
    const store = await PostgresKeyStore.open({ url: db.url, poolSize: 10 });
    cleanups.push(() => store.close());
    const service = new KeyService({ store, config: { policy: { ...DEFAULT_POLICY, maxActiveKeysPerUser: CAP }, keyBrand: "kw" } });
    opened.push({ store, service, principal: await service.localPrincipal({ userName: "racer", transport: "library", isAdmin: false }) });
  }
  return { url: db.url, instances: opened };
}

function tally(results: PromiseSettledResult<{ id: string }>[]) {
  const winners = results.flatMap((result) => (result.status === "fulfilled" ? [result.value.id] : []));
  const reasons = results.flatMap((result) =>
    result.status === "rejected" ? [result.reason instanceof ServiceError ? result.reason.code : `unexpected: ${String(result.reason)}`] : [],
  );
  return { winners, reasons };
}

function look(url: string): postgres.Sql {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  cleanups.push(() => sql.end({ timeout: 1 }));
  return sql;
}

describe.skipIf(!PG_URL)("races between instances on one PostgreSQL database", () => {
  it("4 instances x 25 simultaneous creates for one user give exactly the cap", async () => {
    const { url, instances: all } = await instances(4);
    const results = await Promise.allSettled(
      Array.from({ length: 25 }).flatMap((_, i) => all.map(({ service, principal }) => service.createApiKey(principal, { name: `race ${i}` }))),
    );
    const { winners, reasons } = tally(results);
    expect(winners).toHaveLength(CAP);
    expect(reasons).toEqual(Array(100 - CAP).fill("max_keys_reached"));
    const sql = look(url);
    const [counts] = await sql`SELECT (SELECT count(*)::int FROM api_keys) AS keys, (SELECT count(*)::int FROM key_events WHERE event_type = 'key.created') AS events`;
    expect(counts).toEqual({ keys: CAP, events: CAP });
    expect(await all[0]!.store.countActiveKeys(all[0]!.principal.userId, new Date().toISOString())).toBe(CAP);
  });

  it("50 simultaneous rotations of one key through 2 instances give one successor", async () => {
    const { url, instances: all } = await instances(2);
    const old = await all[0]!.service.createApiKey(all[0]!.principal, { name: "hot" });
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => all[i % 2]!.service.rotateApiKey(all[i % 2]!.principal, { id: old.id, grace_period_seconds: 3600 })),
    );
    const { winners, reasons } = tally(results);
    expect(winners).toHaveLength(1);
    expect(reasons).toEqual(Array(49).fill("conflict"));
    const sql = look(url);
    const successors = await sql`SELECT id FROM api_keys WHERE rotated_from = ${old.id}`;
    expect(successors.map((row) => row.id)).toEqual(winners);
    const [oldRow] = await sql`SELECT replaced_by FROM api_keys WHERE id = ${old.id}`;
    expect(oldRow!.replaced_by).toBe(winners[0]);
    const rotated = await sql`SELECT key_id FROM key_events WHERE event_type = 'key.rotated' ORDER BY key_id`;
    expect(rotated.map((row) => row.key_id)).toEqual([old.id, winners[0]].sort());
  });

  it("each user's cap holds on its own when two users race through two instances", async () => {
    const { instances: all } = await instances(2);
    const [a, b] = all;
    const bob = await b!.service.localPrincipal({ userName: "bob", transport: "library", isAdmin: false });
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a!.service.createApiKey(a!.principal, { name: `a${i}` }) : b!.service.createApiKey(bob, { name: `b${i}` }))),
    );
    const { winners, reasons } = tally(results);
    expect(winners).toHaveLength(2 * CAP);
    expect(reasons).toEqual(Array(20 - 2 * CAP).fill("max_keys_reached"));
  });
});
