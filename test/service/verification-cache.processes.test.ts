import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import { KeyService } from "../../src/service/service.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { KEY_CHANGES_APPLICATION_NAME } from "../../src/store/postgres-watch.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import type { KeyStore } from "../../src/store/types.js";
import { makeTempDir } from "../helpers/harness.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";
import { assertBuilt, cleanEnv, ROOT } from "../helpers/spawn.js";

// A key revoked, narrowed or expired by one process is refused by another on its very next
// verification (README, "Verification cache"). The child (verify-loop-child.mjs, on the built
// dist/) verifies in a loop with its cache; the parent commits a change, then tells the child a
// new epoch and waits for its acknowledgement: every verification the child STARTS after that
// must refuse. On SQLite that is exact. On PostgreSQL it is bounded: by the notification's
// delivery while the child's listener is up, and by the 1-s max age when notifications are lost
// without the listener noticing (here: the parent's session does not fire triggers).

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface ChildReport {
  lastAccepted: { epoch: number; at: number }[];
  counts: Record<string, number>[];
  verifications: number;
  storeReads: number;
}

interface Child {
  epoch(n: number): Promise<void>;
  stop(): Promise<ChildReport>;
}

async function startChild(
  engine: "sqlite" | "postgres",
  database: string,
  tokens: { token: string; requiredScopes?: string[] }[],
  storeOptions: Record<string, unknown> = {},
): Promise<Child> {
  assertBuilt();
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    [join(ROOT, "test/service/verify-loop-child.mjs"), engine, database, join(ROOT, "dist"), JSON.stringify(tokens), JSON.stringify(storeOptions)],
    { env: cleanEnv(), stdio: "pipe" },
  );
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    for (const wake of waiters.splice(0)) wake();
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const next = async (predicate: (line: string) => boolean): Promise<string> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const found = lines.find(predicate);
      if (found !== undefined) return found;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`child: no expected line; stderr: ${stderr}; lines: ${lines.join(" | ")}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  };
  await next((line) => line === "ready");
  return {
    async epoch(n) {
      child.stdin.write(`epoch ${n}\n`);
      await next((line) => line === `ack ${n}`);
    },
    async stop() {
      child.stdin.write("stop\n");
      return JSON.parse(await next((line) => line.startsWith("{"))) as ChildReport;
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Three keys of one admin: one to revoke, one to narrow (verified requiring tools:execute), one to expire. */
async function threeKeys(store: KeyStore) {
  const service = new KeyService({ store, config: { policy: { ...DEFAULT_POLICY, maxActiveKeysPerUser: 100 }, keyBrand: "kw" }, verificationCache: false });
  const admin = await service.localPrincipal({ userName: "parent", transport: "cli", isAdmin: true });
  const scopes = ["tools:read", "tools:execute"];
  const [revoke, narrow, expire] = await Promise.all(["revoke", "narrow", "expire"].map((name) => service.createApiKey(admin, { name, scopes })));
  const tokens = [{ token: revoke!.key }, { token: narrow!.key, requiredScopes: ["tools:execute"] }, { token: expire!.key }];
  return { service, admin, revoke: revoke!, narrow: narrow!, expire: expire!, tokens };
}

describe("the verification cache across processes", () => {
  it("on one SQLite file: not one accepted verification started after the other process's commit", async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const path = join(dir, "keywarden.db");
    const store = SqliteKeyStore.open({ path });
    cleanups.push(() => store.close());
    const { service, admin, revoke, narrow, expire, tokens } = await threeKeys(store);
    const child = await startChild("sqlite", path, tokens);

    await sleep(300); // the child's cache holds all three
    await service.revokeApiKey(admin, { id: revoke.id });
    await child.epoch(1);
    await sleep(200);
    await service.updateApiKey(admin, { id: narrow.id, scopes: ["tools:read"] });
    await child.epoch(2);
    await sleep(200);
    // Expiry moved to 300 ms from now, which the child's clock then passes: no write after it.
    const expiresAt = Date.now() + 300;
    await service.updateApiKey(admin, { id: expire.id, expires_at: new Date(expiresAt).toISOString() });
    await sleep(expiresAt - Date.now() + 5);
    await child.epoch(3);
    await sleep(200);
    const report = await child.stop();

    expect(report.lastAccepted[0]!.epoch, JSON.stringify(report)).toBe(0);
    expect(report.lastAccepted[1]!.epoch, JSON.stringify(report)).toBe(1);
    expect(report.lastAccepted[2]!.epoch, JSON.stringify(report)).toBe(2);
    expect(report.counts[0]!.revoked).toBeGreaterThan(0);
    expect(report.counts[1]!.insufficient_scope).toBeGreaterThan(0);
    expect(report.counts[2]!.expired).toBeGreaterThan(0);
    // The cache was in use: far fewer store reads than verifications.
    expect(report.storeReads * 10).toBeLessThan(report.verifications);
  }, 60_000);

  describe.skipIf(!PG_URL)("on PostgreSQL, two instances", () => {
    async function setUp() {
      const database = await createTestDatabase();
      cleanups.push(() => database.drop());
      const store = await PostgresKeyStore.open({ url: database.url });
      cleanups.push(() => store.close());
      const raw = postgres(database.url, { max: 1, onnotice: () => undefined });
      cleanups.push(() => raw.end());
      const keys = await threeKeys(store);
      // A max age of 1 s (30 s by default) bounds the change that sends no notification below.
      const child = await startChild("postgres", database.url, keys.tokens, { keyCacheMaxAgeMs: 1000 });
      // Until the child listens, its cache reads the store every time: wait for its listener.
      for (let i = 0; ; i++) {
        const [{ n } = { n: 0 }] = await raw<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = ${KEY_CHANGES_APPLICATION_NAME}`;
        if (n > 0) break;
        if (i > 200) throw new Error("the child never listened");
        await sleep(25);
      }
      await sleep(300);
      return { ...keys, raw, child };
    }

    it("with notifications: refused once the notification arrives (milliseconds)", async () => {
      const { service, admin, revoke, narrow, child } = await setUp();
      await service.revokeApiKey(admin, { id: revoke.id });
      const revokedAt = Date.now();
      await child.epoch(1);
      await service.updateApiKey(admin, { id: narrow.id, scopes: ["tools:read"] });
      const narrowedAt = Date.now();
      await child.epoch(2);
      await sleep(1300);
      const report = await child.stop();
      // Staleness: the last accepted verification's start after the commit (≤ 0: none after it).
      const stale = [report.lastAccepted[0]!.at - revokedAt, report.lastAccepted[1]!.at - narrowedAt];
      console.log(`PostgreSQL, notifications on: staleness after commit ${JSON.stringify(stale)} ms; ${report.verifications} verifications, ${report.storeReads} store reads`);
      for (const ms of stale) expect(ms, JSON.stringify(report)).toBeLessThanOrEqual(1000 + 50);
      expect(report.counts[0]!.revoked).toBeGreaterThan(0);
      expect(report.counts[1]!.insufficient_scope).toBeGreaterThan(0);
      expect(report.storeReads * 10).toBeLessThan(report.verifications);
    }, 60_000);

    it("with a change that sends no notification, the listener none the wiser: refused within the max age (1 s here)", async () => {
      const { raw, revoke, narrow, child } = await setUp();
      // A session that fires no triggers (session_replication_role = replica) sends no notification:
      // the change is committed, the child's listener is up and hears nothing.
      const revokedAt = await raw.begin(async (tx) => {
        await tx`SET LOCAL session_replication_role = replica`;
        await tx`UPDATE api_keys SET revoked_at = now() WHERE id = ${revoke.id}`;
        await tx`UPDATE api_keys SET scopes = ${["tools:read"]} WHERE id = ${narrow.id}`;
        return Date.now();
      });
      const committedAt = Date.now();
      await child.epoch(1);
      await sleep(1500);
      const report = await child.stop();
      const stale = [report.lastAccepted[0]!.at - committedAt, report.lastAccepted[1]!.at - committedAt];
      console.log(`PostgreSQL, notifications lost: staleness after commit ${JSON.stringify(stale)} ms (bound 1000); ${report.verifications} verifications, ${report.storeReads} store reads`);
      expect(revokedAt).toBeLessThanOrEqual(committedAt);
      for (const ms of stale) expect(ms, JSON.stringify(report)).toBeLessThanOrEqual(1000 + 50);
      expect(report.counts[0]!.revoked).toBeGreaterThan(0);
      expect(report.counts[1]!.insufficient_scope).toBeGreaterThan(0);
    }, 60_000);

    it("with the listener killed: the cache is bypassed until it listens again, so the change is refused at once", async () => {
      const { raw, revoke, child } = await setUp();
      await raw`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = ${KEY_CHANGES_APPLICATION_NAME}`;
      await raw.begin(async (tx) => {
        await tx`SET LOCAL session_replication_role = replica`;
        await tx`UPDATE api_keys SET revoked_at = now() WHERE id = ${revoke.id}`;
      });
      const committedAt = Date.now();
      await child.epoch(1);
      await sleep(500);
      const report = await child.stop();
      const stale = report.lastAccepted[0]!.at - committedAt;
      console.log(`PostgreSQL, listener killed: staleness after commit ${stale} ms`);
      expect(stale, JSON.stringify(report)).toBeLessThanOrEqual(1000 + 50);
      expect(report.counts[0]!.revoked).toBeGreaterThan(0);
    }, 60_000);
  });
});
