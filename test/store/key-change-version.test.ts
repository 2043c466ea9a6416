import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import { KeyService } from "../../src/service/service.js";
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_STALE_MS, KEY_CHANGES_CHANNEL, PG_KEY_CACHE_MAX_AGE_MS, PostgresKeyStore } from "../../src/store/postgres.js";
import { KEY_CHANGES_APPLICATION_NAME } from "../../src/store/postgres-watch.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import type { KeyStore } from "../../src/store/types.js";
import { makeTempDir } from "../helpers/harness.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";

// KeyStore.keyChangeVersion (src/store/types.ts): what a cache of key rows relies on.

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function writerOn(store: KeyStore) {
  const service = new KeyService({ store, config: { policy: { ...DEFAULT_POLICY, maxActiveKeysPerUser: 100 }, keyBrand: "kw" }, verificationCache: false });
  const admin = await service.localPrincipal({ userName: "w", transport: "cli", isAdmin: true });
  return { service, admin };
}

const until = async (what: string, predicate: () => boolean): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe("SqliteKeyStore.keyChangeVersion", () => {
  it("moves with its own key writes and with any other connection's commit, not with its own last-use writes or reads", async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const one = SqliteKeyStore.open({ path: `${dir}/k.db` });
    const two = SqliteKeyStore.open({ path: `${dir}/k.db` });
    cleanups.push(() => one.close(), () => two.close());
    const { service, admin } = await writerOn(one);
    let version = one.keyChangeVersion();
    expect(one.keyChangeVersion()).toBe(version);

    const created = await service.createApiKey(admin, { name: "k" });
    expect(one.keyChangeVersion()).not.toBe(version);
    version = one.keyChangeVersion();
    await one.recordKeyUse(created.id, { at: new Date().toISOString(), ip: null, userAgent: null });
    await one.findKeyForVerification(created.key_prefix);
    expect(one.keyChangeVersion()).toBe(version);

    const other = await writerOn(two);
    await other.service.revokeApiKey(other.admin, { id: created.id });
    expect(one.keyChangeVersion()).not.toBe(version);
    version = one.keyChangeVersion();
    // Another connection's last use moves it too (data_version cannot tell tables apart): more
    // clearing than needed, never less.
    await two.recordKeyUse(created.id, { at: new Date().toISOString(), ip: null, userAgent: null });
    expect(one.keyChangeVersion()).not.toBe(version);
  });
});

describe.skipIf(!PG_URL)("PostgresKeyStore.keyChangeVersion", () => {
  async function open(options: { keyChangeNotifications?: boolean } = {}) {
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const one = await PostgresKeyStore.open({ url: database.url, ...options });
    const two = await PostgresKeyStore.open({ url: database.url });
    cleanups.push(() => one.close(), () => two.close());
    const raw = postgres(database.url, { max: 1, onnotice: () => undefined });
    cleanups.push(() => raw.end());
    const listeners = async () =>
      (await raw<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = ${KEY_CHANGES_APPLICATION_NAME}`)[0]!.n;
    return { one, two, raw, listeners };
  }

  it("is null until its one listening connection is up (started by the first call), then moves with own writes and others' notifications", async () => {
    const { one, two, listeners } = await open();
    expect(one.keyChangeVersion()).toBeNull();
    let version: number | null = null;
    await until("listening", () => (version = one.keyChangeVersion()) !== null);
    // A watcher shares that connection.
    await one.watchKeyChanges(() => undefined);
    expect(await listeners()).toBe(1);
    expect(one.keyChangeMaxAgeMs).toBe(PG_KEY_CACHE_MAX_AGE_MS);

    const { service, admin } = await writerOn(one);
    const created = await service.createApiKey(admin, { name: "k" });
    expect(one.keyChangeVersion()).not.toBe(version);
    version = one.keyChangeVersion();

    const other = await writerOn(two);
    await other.service.revokeApiKey(other.admin, { id: created.id });
    await until("the notification", () => one.keyChangeVersion() !== version);
  });

  it("is null while the listening connection is lost, and moves when it is back", async () => {
    const { one, raw } = await open();
    let version: number | null = null;
    await until("listening", () => (version = one.keyChangeVersion()) !== null);
    await raw`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = ${KEY_CHANGES_APPLICATION_NAME}`;
    // The loss lasts from the connection's close to the next LISTEN (one reconnect): watched on
    // every turn of the event loop, not every 10 ms, or it is over before it is seen.
    const deadline = Date.now() + 10_000;
    while (one.keyChangeVersion() !== null) {
      if (Date.now() > deadline) throw new Error("timed out waiting for the loss");
      await new Promise((resolve) => setImmediate(resolve));
    }
    await until("listening again", () => one.keyChangeVersion() !== null);
    expect(one.keyChangeVersion()).not.toBe(version);
  });

  it("is null once its own heartbeat has not come back for HEARTBEAT_STALE_MS (a listening connection silently gone)", async () => {
    const { one } = await open();
    await until("listening", () => one.keyChangeVersion() !== null);
    // A silent partition, as the store sees it: its heartbeats stop coming back. They stop being
    // sent here (the store's own timer, reached past TypeScript's private), the connection stays up.
    const timer = (one as unknown as { keyFeed: { heartbeatTimer: NodeJS.Timeout } }).keyFeed.heartbeatTimer;
    clearInterval(timer);
    const stoppedAt = Date.now();
    await until("the heartbeat gone stale", () => one.keyChangeVersion() === null);
    const waited = Date.now() - stoppedAt;
    expect(waited).toBeGreaterThanOrEqual(HEARTBEAT_STALE_MS / 2);
    expect(waited).toBeLessThanOrEqual(HEARTBEAT_STALE_MS + 1000);
  });

  it("sends heartbeats only once a cache asks for the version: a store that only watches (sessions) sends none", async () => {
    const { one, raw } = await open();
    const heard: string[] = [];
    await raw.listen(KEY_CHANGES_CHANNEL, (payload) => {
      if (payload.startsWith("heartbeat:")) heard.push(payload);
    });
    await one.watchKeyChanges(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 3 * HEARTBEAT_INTERVAL_MS));
    expect(heard).toEqual([]);
    await until("a heartbeat heard back", () => one.keyChangeVersion() !== null);
    await until("a heartbeat on the channel", () => heard.length > 0);
  });

  it("with keyChangeNotifications: false, never listens and is always null (the cache reads the store)", async () => {
    const { one, listeners } = await open({ keyChangeNotifications: false });
    for (let i = 0; i < 5; i++) expect(one.keyChangeVersion()).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(one.keyChangeVersion()).toBeNull();
    expect(await listeners()).toBe(0);
  });
});
