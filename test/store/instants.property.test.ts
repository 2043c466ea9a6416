import fc from "fast-check";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keyStatusAt, MAX_INSTANT_MS, toInstant, type KeyLifetime } from "../../src/store/instants.js";
import { loadMigrations } from "../../src/store/migrations.js";
import { openSqliteDatabase, SqliteKeyStore } from "../../src/store/sqlite.js";
import type { ApiKeyRow, KeyStatus } from "../../src/store/types.js";
import { makeTempDir } from "../helpers/harness.js";

const MIN_MS = Date.parse("0000-01-01T00:00:00.000Z");
/** Instants where text and time order are most likely to part: the ends, year-digit rollovers, the epoch. */
const BOUNDARIES = [
  MIN_MS,
  MIN_MS + 1,
  Date.parse("0999-12-31T23:59:59.999Z"),
  Date.parse("1000-01-01T00:00:00.000Z"),
  -1,
  0,
  1,
  Date.parse("2026-06-01T12:00:00.000Z"),
  Date.parse("9998-12-31T23:59:59.999Z"),
  MAX_INSTANT_MS - 1,
  MAX_INSTANT_MS,
];
const instantMs = fc.oneof(
  { arbitrary: fc.date({ min: new Date(MIN_MS), max: new Date(MAX_INSTANT_MS), noInvalidDate: true }).map((d) => d.getTime()), weight: 3 },
  { arbitrary: fc.constantFrom(...BOUNDARIES), weight: 1 },
);

/** The status by the clock (epoch milliseconds), independent of any text form. */
function statusByTime(key: { revokedMs: number | null; expiresMs: number | null }, nowMs: number): KeyStatus {
  if (key.revokedMs !== null) return "revoked";
  if (key.expiresMs !== null && key.expiresMs <= nowMs) return "expired";
  return "active";
}

function keyRow(id: number, organizationId: string, userId: string, lifetime: KeyLifetime): ApiKeyRow {
  const suffix = String(id).padStart(12, "0");
  return {
    id: `key_${suffix}`,
    organization_id: organizationId,
    user_id: userId,
    project_id: null,
    name: `k${id}`,
    description: null,
    key_prefix: `kw_${suffix}`,
    key_hash: new Uint8Array(32),
    hash_algorithm: "sha256",
    scopes: ["tools:read"],
    created_at: "2026-01-01T00:00:00.000Z",
    created_by_user_id: userId,
    created_by_key_id: null,
    expires_at: lifetime.expires_at,
    last_used_at: null,
    last_used_ip: null,
    last_used_user_agent: null,
    revoked_at: lifetime.revoked_at,
    revoked_reason: null,
    rotated_from: null,
    replaced_by: null,
  };
}

describe("one definition of a key's status at t (store/instants.ts)", () => {
  it("canonical instants are 24 characters whose text order is time order, to 9999-12-31T23:59:59Z and no further", () => {
    fc.assert(
      fc.property(instantMs, instantMs, (a, b) => {
        const [ta, tb] = [toInstant(a), toInstant(b)];
        expect(ta).toHaveLength(24);
        expect(Date.parse(ta)).toBe(a);
        expect(Math.sign(ta < tb ? -1 : ta > tb ? 1 : 0)).toBe(Math.sign(a - b));
      }),
      { numRuns: 2_000 },
    );
    expect(toInstant(MAX_INSTANT_MS)).toBe("9999-12-31T23:59:59.000Z");
    for (const outside of [MAX_INSTANT_MS + 1, Date.parse("+010000-01-01T00:00:59.000Z"), MIN_MS - 1, Number.NaN]) {
      expect(() => toInstant(outside)).toThrow(RangeError);
    }
  });

  it("keyStatusAt, the store's status filters and the cap's count agree with the clock for every key and instant", async () => {
    const lifetime = fc.record({
      expiresMs: fc.option(instantMs, { nil: null }),
      revokedMs: fc.option(instantMs, { nil: null, freq: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(lifetime, { minLength: 1, maxLength: 12 }), instantMs, fc.nat(), fc.integer({ min: -1, max: 1 }), async (keys, randomNow, pick, nudge) => {
        // Half the time "now" sits on (or one millisecond beside) some key's expiry: the boundary of expires_at <= now.
        const expiries = keys.map((key) => key.expiresMs).filter((ms): ms is number => ms !== null);
        const onEdge = expiries.length > 0 && pick % 2 === 0 ? expiries[pick % expiries.length]! + nudge : randomNow;
        const nowMs = Math.min(MAX_INSTANT_MS, Math.max(MIN_MS, onEdge));
        const now = toInstant(nowMs);

        const store = SqliteKeyStore.open({ path: ":memory:" });
        try {
          const organization = await store.ensureDefaultOrganization(now);
          const user = await store.ensureUser(organization.id, "u", now);
          const expected = new Map<string, KeyStatus>();
          for (const [i, key] of keys.entries()) {
            const row = keyRow(i, organization.id, user.id, {
              expires_at: key.expiresMs === null ? null : toInstant(key.expiresMs),
              revoked_at: key.revokedMs === null ? null : toInstant(key.revokedMs),
            });
            const byTime = statusByTime(key, nowMs);
            expect(keyStatusAt(row, now)).toBe(byTime);
            expected.set(row.id, byTime);
            await store.write({ keyIds: [] }, () => ({ ok: true, plan: { insertKeys: [row], updateKeys: [], events: [] }, result: null }));
          }
          for (const status of ["active", "expired", "revoked"] as const) {
            const listed = await store.listKeys({ organizationId: organization.id, userId: null, projectId: null, status, now, after: null, limit: 100 });
            const want = [...expected].filter(([, s]) => s === status).map(([id]) => id);
            expect(listed.map((row) => row.id).sort()).toEqual(want.sort());
          }
          const active = [...expected.values()].filter((s) => s === "active").length;
          expect(await store.countActiveKeys(user.id, now)).toBe(active);
          expect((await store.listUsers(organization.id, now))[0]!.active_keys).toBe(active);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it("schema v5 moves an expiry stored past 9999 (+010000-…) to the bound, where SQL and code agree it is active", async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const path = join(dir, "v4.db");
      // Schema v4 as an older keywarden left it, written with plain SQL: this build's store
      // prepares statements for tables v4 does not have yet.
      const v4 = openSqliteDatabase({ path, migrations: loadMigrations().slice(0, 4) });
      const now = "2026-06-01T12:00:00.000Z";
      const organization = { id: "org_000000000001" };
      const user = { id: "usr_000000000001" };
      v4.prepare("INSERT INTO organizations (id, name, created_at) VALUES (?, 'default', ?)").run(organization.id, now);
      v4.prepare("INSERT INTO users (id, organization_id, name, created_at) VALUES (?, ?, 'u', ?)").run(user.id, organization.id, now);
      const far = keyRow(1, organization.id, user.id, { expires_at: "+010000-01-01T00:00:59.000Z", revoked_at: null });
      const plain = keyRow(2, organization.id, user.id, { expires_at: "2027-01-01T00:00:00.000Z", revoked_at: null });
      for (const key of [far, plain]) v4.prepare("INSERT INTO api_keys (id, organization_id, user_id, name, key_prefix, key_hash, hash_algorithm, scopes, created_at, created_by_user_id, expires_at) VALUES (@id, @organization_id, @user_id, @name, @key_prefix, @key_hash, @hash_algorithm, '[]', @created_at, @created_by_user_id, @expires_at)").run({ ...key, key_hash: Buffer.from(key.key_hash) });
      // The bug: text order calls year 10000 expired, so the cap's count missed the key.
      expect((v4.prepare("SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)").get(now) as { n: number }).n).toBe(1);
      v4.close();

      const store = SqliteKeyStore.open({ path });
      try {
        expect((await store.getKeyById(far.id))!.expires_at).toBe("9999-12-31T23:59:59.000Z");
        expect((await store.getKeyById(plain.id))!.expires_at).toBe("2027-01-01T00:00:00.000Z");
        expect(await store.countActiveKeys(user.id, now)).toBe(2);
        expect(keyStatusAt((await store.getKeyById(far.id))!, now)).toBe("active");
      } finally {
        await store.close();
      }
    } finally {
      cleanup();
    }
  });
});
