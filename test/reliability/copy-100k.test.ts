import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createTokenHasher, type TokenHasher } from "../../src/keys/hash.js";
import { newApiKeyId, newKeyEventId } from "../../src/keys/ids.js";
import { generateToken } from "../../src/keys/token.js";
import { KeyService } from "../../src/service/service.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import type { VerifyCode } from "../../src/service/types.js";
import { makeTempDir } from "../helpers/harness.js";
import { createTestDatabase, PG_URL, type TestDatabase } from "../helpers/pg.js";
import { CLI, cleanEnv } from "./support.js";

// README, "Moving a SQLite database to PostgreSQL": `keywarden admin copy` of a 100,000-key SQLite
// database, then every token minted before the copy verified against the PostgreSQL store, each
// with the answer it had on SQLite (valid, revoked, expired). The keys are loaded as bench/lib.mjs
// bulkLoad loads them (real tokens, hashed as the service hashes them, rows written directly),
// with what a long-lived install also holds: both hash algorithms, rotation chains whose two keys
// lie far apart, revoked and expired keys, last use, and an audit log.

const BASE_KEYS = 98_000;
const ROTATE_EVERY = 49; // 2,000 successors: 100,000 keys in all
const USERS = 1000;
const PEPPER = "pepper-for-the-copy-reliability-test";
const DAY = 86_400_000;

interface Minted {
  token: string;
  expected: VerifyCode;
}

/** Fills `path` with 100,000 keys; answers every token with the code it must verify to. */
async function load(path: string, now: number): Promise<Minted[]> {
  const store = SqliteKeyStore.open({ path });
  const at = (ms: number) => new Date(ms).toISOString();
  const org = await store.ensureDefaultOrganization(at(now - 400 * DAY));
  const users: string[] = [];
  for (let i = 0; i < USERS; i++) users.push((await store.ensureUser(org.id, `user-${i}`, at(now - 400 * DAY))).id);
  await store.recordPepperFingerprint(createTokenHasher(PEPPER).pepperFingerprint!, at(now - 400 * DAY));
  const hashers = [createTokenHasher(), createTokenHasher(PEPPER)];
  const db = store.db;
  const insertKey = db.prepare(
    `INSERT INTO api_keys (id, organization_id, user_id, key_prefix, name, key_hash, hash_algorithm, scopes, created_at, created_by_user_id,
       expires_at, revoked_at, revoked_reason, rotated_from)
     VALUES (?, ?, ?, ?, ?, ?, ?, '["tools:read","tools:execute"]', ?, ?, ?, ?, ?, ?)`,
  );
  const insertEvent = db.prepare(
    "INSERT INTO key_events (id, organization_id, key_id, event_type, actor_user_id, transport, occurred_at, detail) VALUES (?, ?, ?, ?, ?, 'cli', ?, ?)",
  );
  const insertUse = db.prepare("INSERT INTO key_usage (key_id, last_used_at, last_used_ip, last_used_user_agent) VALUES (?, ?, ?, 'gateway/1')");
  const replace = db.prepare("UPDATE api_keys SET replaced_by = ?, expires_at = ? WHERE id = ?");
  const minted: Minted[] = [];
  const mint = (i: number, user: string, createdAt: number, hasher: TokenHasher, fields: { expires: number; revoked?: boolean; from?: string }) => {
    const { token, keyPrefix } = generateToken();
    const id = newApiKeyId();
    const revoked = fields.revoked ? at(createdAt + 1000) : null;
    insertKey.run(id, org.id, user, keyPrefix, `key ${i}`, Buffer.from(hasher.hash(token)), hasher.algorithm, at(createdAt), user, at(fields.expires), revoked, revoked ? "compromised" : null, fields.from ?? null);
    insertEvent.run(newKeyEventId(), org.id, id, fields.from ? "key.rotated" : "key.created", user, at(createdAt), JSON.stringify({ name: `key ${i}` }));
    if (revoked) insertEvent.run(newKeyEventId(), org.id, id, "key.revoked", user, revoked, '{"reason":"compromised"}');
    minted.push({ token, expected: revoked ? "revoked" : fields.expires <= now ? "expired" : "valid" });
    return id;
  };
  db.pragma("synchronous = OFF"); // set-up only, as bulkLoad does
  const rotated: [id: string, user: string, hasher: TokenHasher][] = [];
  db.transaction(() => {
    for (let i = 0; i < BASE_KEYS; i++) {
      const user = users[i % USERS]!;
      const hasher = hashers[i % 10 === 3 ? 1 : 0]!; // one key in ten peppered
      const createdAt = now - 300 * DAY + i * 1000;
      const rotate = i % ROTATE_EVERY === 11; // only working keys are rotated
      const expires = !rotate && i % 89 === 5 ? now - DAY : now + 90 * DAY;
      const id = mint(i, user, createdAt, hasher, { expires, revoked: !rotate && i % 97 === 7 });
      if (i % 10 === 0) insertUse.run(id, at(now - (i % 1000) * 1000), `10.0.${(i >> 8) & 255}.${i & 255}`);
      if (rotate) rotated.push([id, user, hasher]);
    }
    // Successors, written last, far from the keys they replace; the old key stays valid in its grace.
    rotated.forEach(([from, user, hasher], n) => {
      const successor = mint(BASE_KEYS + n, user, now - DAY + n, hasher, { expires: now + 90 * DAY, from });
      replace.run(successor, at(now + DAY), from);
    });
  })();
  db.pragma("wal_checkpoint(TRUNCATE)");
  await store.close();
  return minted;
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.skipIf(!PG_URL)("admin copy of a 100,000-key SQLite database", () => {
  it("copies in well under a minute, and every token minted before verifies on PostgreSQL as it did on SQLite", async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const path = join(dir, "keywarden.db");
    const now = Date.now();
    let started = performance.now();
    const minted = await load(path, now);
    const loadMs = performance.now() - started;
    expect(minted).toHaveLength(100_000);

    const database: TestDatabase = await createTestDatabase();
    cleanups.push(() => database.drop());
    started = performance.now();
    const copy = spawnSync(process.execPath, [CLI, "admin", "copy", "--from", path, "--to", database.url], { env: cleanEnv(), encoding: "utf8", timeout: 120_000 });
    const copyMs = performance.now() - started;
    expect(copy.stderr).toBe("");
    expect(copy.status).toBe(0);
    const rows: Record<string, [source: number, target: number]> = Object.fromEntries(
      copy.stdout
        .split("\n")
        .map((line) => /^(\w+)\s+(\d+)\s+(\d+)$/.exec(line))
        .filter((match) => match !== null)
        .map((match) => [match[1], [Number(match[2]), Number(match[3])]]),
    );
    expect(rows).toMatchObject({ api_keys: [100_000, 100_000], key_usage: [9800, 9800], users: [USERS, USERS], key_hash_algorithms: [2, 2], pepper_fingerprint: [1, 1] });
    const [events, eventsCopied] = rows.key_events!;
    expect(events).toBeGreaterThan(100_000);
    expect(eventsCopied).toBe(events);
    expect(copyMs).toBeLessThan(60_000);

    const store = await PostgresKeyStore.open({ url: database.url });
    cleanups.push(() => store.close());
    const service = new KeyService({ store, pepper: PEPPER, useRecorder: { record: () => undefined } });
    started = performance.now();
    const wrong: string[] = [];
    let next = 0;
    // Twenty verifications in flight over the pool of ten connections.
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        for (let i = next++; i < minted.length; i = next++) {
          const { code } = await service.verifyApiKey(minted[i]!.token);
          if (code !== minted[i]!.expected) wrong.push(`token ${i}: ${code}, expected ${minted[i]!.expected}`);
        }
      }),
    );
    const verifyMs = performance.now() - started;
    expect(wrong).toEqual([]);
    const answers = minted.reduce<Record<string, number>>((tally, { expected }) => ({ ...tally, [expected]: (tally[expected] ?? 0) + 1 }), {});
    console.log(
      `100,000 keys (${JSON.stringify(answers)}), ${events} events: load ${(loadMs / 1000).toFixed(1)} s, ` +
        `admin copy ${(copyMs / 1000).toFixed(1)} s (process start to exit), verify all on PostgreSQL ${(verifyMs / 1000).toFixed(1)} s`,
    );
  });
});
