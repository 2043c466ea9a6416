import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyStatusAt, MAX_INSTANT_MS, toInstant } from "../../src/store/instants.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import type { ApiKeyRow, KeyStatus, OrganizationRow } from "../../src/store/types.js";
import { createTestDatabase, PG_URL, type TestDatabase } from "../helpers/pg.js";

// test/store/instants.property.test.ts on PostgreSQL: the store's status filters and the cap's
// count, comparing timestamptz, agree with keyStatusAt and the clock for every instant keywarden
// keeps (year 0000, PostgreSQL's 1 BC, included). One database; each run its own user.

const MIN_MS = Date.parse("0000-01-01T00:00:00.000Z");
const BOUNDARIES = [MIN_MS, MIN_MS + 1, Date.parse("0000-12-31T23:59:59.999Z"), Date.parse("0001-01-01T00:00:00.000Z"), -1, 0, 1, MAX_INSTANT_MS - 1, MAX_INSTANT_MS];
const instantMs = fc.oneof(
  { arbitrary: fc.date({ min: new Date(MIN_MS), max: new Date(MAX_INSTANT_MS), noInvalidDate: true }).map((d) => d.getTime()), weight: 3 },
  { arbitrary: fc.constantFrom(...BOUNDARIES), weight: 1 },
);

function statusByTime(key: { revokedMs: number | null; expiresMs: number | null }, nowMs: number): KeyStatus {
  if (key.revokedMs !== null) return "revoked";
  if (key.expiresMs !== null && key.expiresMs <= nowMs) return "expired";
  return "active";
}

describe.skipIf(!PG_URL)("one definition of a key's status at t, on PostgreSQL", () => {
  let db: TestDatabase;
  let store: PostgresKeyStore;
  let organization: OrganizationRow;
  let serial = 0;
  beforeAll(async () => {
    db = await createTestDatabase();
    store = await PostgresKeyStore.open({ url: db.url });
    organization = await store.ensureDefaultOrganization("2026-01-01T00:00:00.000Z");
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  it("the store's status filters and the cap's count agree with the clock and keyStatusAt", async () => {
    const lifetime = fc.record({ expiresMs: fc.option(instantMs, { nil: null }), revokedMs: fc.option(instantMs, { nil: null, freq: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(lifetime, { minLength: 1, maxLength: 8 }), instantMs, fc.nat(), fc.integer({ min: -1, max: 1 }), async (keys, randomNow, pick, nudge) => {
        const expiries = keys.map((key) => key.expiresMs).filter((ms): ms is number => ms !== null);
        const onEdge = expiries.length > 0 && pick % 2 === 0 ? expiries[pick % expiries.length]! + nudge : randomNow;
        const now = toInstant(Math.min(MAX_INSTANT_MS, Math.max(MIN_MS, onEdge)));
        const user = await store.ensureUser(organization.id, `u${++serial}`, now);
        const expected = new Map<string, KeyStatus>();
        const rows: ApiKeyRow[] = keys.map((key, i) => {
          const suffix = `${String(serial).padStart(6, "0")}${String(i).padStart(6, "0")}`;
          const row: ApiKeyRow = {
            id: `key_${suffix}`,
            organization_id: organization.id,
            user_id: user.id,
            project_id: null,
            name: "k",
            description: null,
            key_prefix: `kw_${suffix}`,
            key_hash: new Uint8Array(32),
            hash_algorithm: "sha256",
            scopes: ["tools:read"],
            created_at: "2026-01-01T00:00:00.000Z",
            created_by_user_id: user.id,
            created_by_key_id: null,
            expires_at: key.expiresMs === null ? null : toInstant(key.expiresMs),
            last_used_at: null,
            last_used_ip: null,
            last_used_user_agent: null,
            revoked_at: key.revokedMs === null ? null : toInstant(key.revokedMs),
            revoked_reason: null,
            rotated_from: null,
            replaced_by: null,
          };
          const byTime = statusByTime(key, Date.parse(now));
          expect(keyStatusAt(row, now)).toBe(byTime);
          expected.set(row.id, byTime);
          return row;
        });
        await store.write({ keyIds: [] }, () => ({ ok: true, plan: { insertKeys: rows, updateKeys: [], events: [] }, result: null }));
        for (const row of rows) expect(await store.getKeyById(row.id)).toEqual(row);
        for (const status of ["active", "expired", "revoked"] as const) {
          const listed = await store.listKeys({ organizationId: organization.id, userId: user.id, projectId: null, status, now, after: null, limit: 100 });
          expect(listed.map((row) => row.id).sort()).toEqual([...expected].filter(([, s]) => s === status).map(([id]) => id).sort());
        }
        const active = [...expected.values()].filter((s) => s === "active").length;
        expect(await store.countActiveKeys(user.id, now)).toBe(active);
        expect((await store.listUsers(organization.id, now)).find((u) => u.id === user.id)!.active_keys).toBe(active);
      }),
      { numRuns: 150 },
    );
  }, 120_000);
});
