import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checksumOf, generateToken } from "../../src/keys/token.js";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import type { Principal } from "../../src/service/principal.js";
import { KeyService } from "../../src/service/service.js";
import postgres from "postgres";
import { KEY_CHANGES_CHANNEL, PostgresKeyStore } from "../../src/store/postgres.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import type { KeyStore } from "../../src/store/types.js";
import { makeTempDir, TestClock } from "../helpers/harness.js";
import { createTestDatabase, PG_URL, type TestDatabase } from "../helpers/pg.js";

// The verification cache never answers what the store no longer says: for random interleavings of
// create, rotate, revoke, update (narrowed scopes, earlier expiry), the clock moving and verify,
// written through either of TWO handles on one database, a cached verifier on handle 1 answers
// exactly what an uncached verifier (verificationCache: false) answers, at every verification.
//
// SQLite: exact, with no waiting (PRAGMA data_version and the store's own writes). PostgreSQL is
// bounded, not exact: a change made through the other handle reaches handle 1 by its notification,
// so the test waits for it before it verifies: it sends a marker on the channel after the change
// and waits for handle 1 to hear the marker (notifications arrive in commit order, so every earlier
// one has been heard then; waiting for the key's id instead could be met by an older notification
// of the same key). Changes through handle 1 itself need no wait.

const SCOPES = ["tools:read", "tools:execute", "orders:read", "orders:write"] as const;

type Command =
  | { op: "create"; via: 1 | 2; scopes: string[] }
  | { op: "rotate"; via: 1 | 2; key: number; grace: number }
  | { op: "revoke"; via: 1 | 2; key: number }
  | { op: "narrow"; via: 1 | 2; key: number; keep: number }
  | { op: "shorten"; via: 1 | 2; key: number; seconds: number }
  | { op: "tick"; ms: number }
  | { op: "verify"; key: number; required: string[]; form: "token" | "forged" | "unknown" };

const via = fc.constantFrom<1 | 2>(1, 2);
const keyIndex = fc.nat({ max: 20 });
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant("create" as const), via, scopes: fc.subarray([...SCOPES], { minLength: 1 }) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant("rotate" as const), via, key: keyIndex, grace: fc.constantFrom(0, 1, 30) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("revoke" as const), via, key: keyIndex }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("narrow" as const), via, key: keyIndex, keep: fc.nat({ max: 3 }) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("shorten" as const), via, key: keyIndex, seconds: fc.integer({ min: 1, max: 60 }) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 40_000 }) }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant("verify" as const),
      key: keyIndex,
      required: fc.subarray([...SCOPES], { maxLength: 2 }),
      form: fc.constantFrom<"token" | "forged" | "unknown">("token", "token", "token", "forged", "unknown"),
    }),
    weight: 6,
  },
);

const policy = { ...DEFAULT_POLICY, maxActiveKeysPerUser: 1000, defaultExpiryDays: 30, maxExpiryDays: 365 };

interface Handles {
  one: KeyStore;
  two: KeyStore;
  /** Resolves once a change through handle 2 to these keys can be seen through handle 1. */
  seenByOne(keyIds: string[]): Promise<void>;
}

async function runScenario(handles: Handles, clock: TestClock, commands: Command[]): Promise<void> {
  const config = { policy, keyBrand: "kw" };
  const cached = new KeyService({ store: handles.one, clock: clock.now, config, useRecorder: { record: () => undefined } });
  const uncached = new KeyService({ store: handles.two, clock: clock.now, config, verificationCache: false, useRecorder: { record: () => undefined } });
  const writers = { 1: cached, 2: uncached };
  const principal: Principal = await cached.localPrincipal({ userName: "prop", transport: "stdio", isAdmin: true });
  const keys: { id: string; token: string }[] = [];
  const pick = (index: number) => keys[index % keys.length];

  for (const command of commands) {
    if (command.op === "tick") {
      clock.advance(command.ms);
      continue;
    }
    if (command.op === "verify") {
      const key = pick(command.key);
      let token = key?.token ?? generateToken().token;
      if (command.form === "unknown") token = generateToken().token;
      if (command.form === "forged" && key) {
        const body = `${key.token.slice(0, 15)}_${"Z".repeat(32)}`;
        token = body + checksumOf(body);
      }
      const options = command.required.length > 0 ? { requiredScopes: command.required } : {};
      const want = await uncached.verifyApiKey(token, options);
      const got = await cached.verifyApiKey(token, options);
      expect(got).toEqual(want);
      continue;
    }
    const writer = writers[command.via];
    const changed: string[] = [];
    try {
      if (command.op === "create") {
        const created = await writer.createApiKey(principal, { name: `k${keys.length}`, scopes: command.scopes });
        keys.push({ id: created.id, token: created.key });
      } else {
        const key = pick(command.key);
        if (!key) continue;
        changed.push(key.id);
        if (command.op === "rotate") {
          const rotated = await writer.rotateApiKey(principal, { id: key.id, grace_period_seconds: command.grace });
          keys.push({ id: rotated.id, token: rotated.key });
        } else if (command.op === "revoke") {
          await writer.revokeApiKey(principal, { id: key.id });
        } else if (command.op === "narrow") {
          const record = await writer.getApiKey(principal, { id: key.id });
          await writer.updateApiKey(principal, { id: key.id, scopes: record.scopes.slice(0, Math.max(1, Math.min(command.keep, record.scopes.length - 1))) });
        } else {
          await writer.updateApiKey(principal, { id: key.id, expires_at: new Date(clock.current.getTime() + command.seconds * 1000).toISOString() });
        }
      }
    } catch (error) {
      // A refusal (a revoked key cannot be updated, a later expiry is not a shortening…) writes nothing.
      if ((error as { name?: string }).name !== "ServiceError") throw error;
      continue;
    }
    if (command.via === 2 && changed.length > 0) await handles.seenByOne(changed);
  }
}

describe("the verification cache against the store (property)", () => {
  it("on two SQLite handles on one file, gives exactly the uncached answer at every verification", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 40 }), async (commands) => {
        const { dir, cleanup } = makeTempDir();
        const one = SqliteKeyStore.open({ path: `${dir}/k.db` });
        const two = SqliteKeyStore.open({ path: `${dir}/k.db` });
        try {
          await runScenario({ one, two, seenByOne: async () => undefined }, new TestClock(), commands);
        } finally {
          await one.close();
          await two.close();
          cleanup();
        }
      }),
      { numRuns: 60 },
    );
  });

  describe.skipIf(!PG_URL)("on PostgreSQL", () => {
    let database: TestDatabase;
    let one: PostgresKeyStore;
    let two: PostgresKeyStore;
    const notified = new Set<string>();
    beforeAll(async () => {
      database = await createTestDatabase();
      one = await PostgresKeyStore.open({ url: database.url });
      two = await PostgresKeyStore.open({ url: database.url });
      // Starts handle 1's one listening connection, which its verification cache shares.
      await one.watchKeyChanges((changed) => {
        if (changed !== "all") for (const id of changed) notified.add(id);
      });
    });
    afterAll(async () => {
      await one?.close();
      await two?.close();
      await database?.drop();
    });

    it("on two handles, gives the uncached answer once handle 1 has heard of each change (bounded, not exact)", async () => {
      const raw = postgres(database.url, { max: 1, onnotice: () => undefined });
      let markers = 0;
      const seenByOne = async (): Promise<void> => {
        const marker = `marker-${++markers}`;
        await raw`SELECT pg_notify(${KEY_CHANGES_CHANNEL}, ${marker})`;
        const deadline = Date.now() + 5000;
        while (!notified.has(marker)) {
          if (Date.now() > deadline) throw new Error(`handle 1 never heard ${marker}`);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      };
      // Listening, and its first heartbeat back (src/store/postgres.ts): the cache answers from then on.
      for (let waited = 0; one.keyChangeVersion() === null && waited < 5000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(one.keyChangeVersion()).not.toBeNull();
      await fc.assert(
        fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 30 }), async (commands) => {
          await runScenario({ one, two, seenByOne }, new TestClock(), commands);
        }),
        { numRuns: 15 },
      );
      await raw.end();
    }, 120_000);
  });
});
