import { createServer, connect, type Server, type Socket } from "node:net";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { KEY_CHANGES_APPLICATION_NAME } from "../../src/store/postgres-watch.js";
import type { ApiKeyRow, KeyChangeListener } from "../../src/store/types.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";

// PostgresKeyStore.watchKeyChanges: what one instance learns of key changes committed by another
// (the api_keys triggers of src/store/migrations-postgres/001_initial.sql), and "all" after its
// listening connection was lost and is back.

const T0 = "2026-06-01T12:00:00.000Z";
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Every report of a watcher, and a way to wait for one. */
function recorder() {
  const reports: (string[] | "all")[] = [];
  const listener: KeyChangeListener = (changed) => reports.push(changed);
  const changedIds = () => new Set(reports.flatMap((report) => (report === "all" ? [] : report)));
  async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; reports: ${JSON.stringify(reports)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return { reports, listener, changedIds, until };
}

async function setUp(watcherUrl?: (url: string) => string) {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const writer = await PostgresKeyStore.open({ url: db.url });
  cleanups.push(() => writer.close());
  const watcher = await PostgresKeyStore.open({ url: watcherUrl ? watcherUrl(db.url) : db.url });
  cleanups.push(() => watcher.close());
  const org = await writer.ensureDefaultOrganization(T0);
  const user = await writer.ensureUser(org.id, "u", T0);
  let serial = 0;
  const keyRow = (): ApiKeyRow => {
    const n = String(++serial).padStart(12, "0");
    return {
      id: `key_watch${n}`,
      organization_id: org.id,
      user_id: user.id,
      project_id: null,
      name: `k${n}`,
      description: null,
      key_prefix: `kw_${n}`,
      key_hash: new Uint8Array(32),
      hash_algorithm: "sha256",
      scopes: ["tools:read"],
      created_at: T0,
      created_by_user_id: user.id,
      created_by_key_id: null,
      expires_at: null,
      last_used_at: null,
      last_used_ip: null,
      last_used_user_agent: null,
      revoked_at: null,
      revoked_reason: null,
      rotated_from: null,
      replaced_by: null,
    };
  };
  const insert = async (...keys: ApiKeyRow[]) => {
    await writer.write({ keyIds: [] }, () => ({ ok: true, plan: { insertKeys: keys, updateKeys: [], events: [] }, result: null }));
  };
  const revoke = async (...ids: string[]) => {
    await writer.write({ keyIds: ids }, () => ({
      ok: true,
      plan: { insertKeys: [], updateKeys: ids.map((id) => ({ id, set: { revoked_at: T0, revoked_reason: "watched" } })), events: [] },
      result: null,
    }));
  };
  const sql = postgres(db.url, { max: 1, onnotice: () => undefined });
  cleanups.push(() => sql.end({ timeout: 1 }));
  return { url: db.url, writer, watcher, keyRow, insert, revoke, sql };
}

describe.skipIf(!PG_URL)("PostgresKeyStore.watchKeyChanges", () => {
  it("reports the keys another instance changed, at commit, and no insert, last use or change that changes nothing", async () => {
    const { watcher, writer, keyRow, insert, revoke } = await setUp();
    const seen = recorder();
    await watcher.watchKeyChanges(seen.listener);
    const [a, b, c] = [keyRow(), keyRow(), keyRow()];
    await insert(a, b, c);
    await writer.recordKeyUse(a.id, { at: T0, ip: null, userAgent: null });
    await writer.write({ keyIds: [] }, () => ({ ok: true, plan: { insertKeys: [], updateKeys: [{ id: c.id, set: { name: c.name } }], events: [] }, result: null }));
    await revoke(a.id, b.id);
    await seen.until("a and b", () => seen.changedIds().has(a.id) && seen.changedIds().has(b.id));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect([...seen.changedIds()].sort()).toEqual([a.id, b.id].sort());
    expect(seen.reports).not.toContain("all");
  });

  it("reports nothing of a transaction that rolls back", async () => {
    const { watcher, keyRow, insert, revoke, writer } = await setUp();
    const seen = recorder();
    await watcher.watchKeyChanges(seen.listener);
    const [a, b] = [keyRow(), keyRow()];
    await insert(a, b);
    const failed = writer.write({ keyIds: [a.id] }, () => ({
      ok: true,
      plan: { insertKeys: [{ ...keyRow(), key_prefix: b.key_prefix }], updateKeys: [{ id: a.id, set: { revoked_at: T0 } }], events: [] },
      result: null,
    }));
    await expect(failed).rejects.toThrow(/duplicate key/);
    await revoke(b.id);
    await seen.until("b", () => seen.changedIds().has(b.id));
    expect(seen.changedIds().has(a.id)).toBe(false);
  });

  it("says all after its connection was cut, then reports changes again", async () => {
    const { watcher, keyRow, insert, revoke, sql } = await setUp();
    const seen = recorder();
    await watcher.watchKeyChanges(seen.listener);
    const [a, b] = [keyRow(), keyRow()];
    await insert(a, b);
    const cut = await sql`SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = ${KEY_CHANGES_APPLICATION_NAME}`;
    expect(cut.map((row) => row.cut)).toEqual([true]);
    await seen.until("all", () => seen.reports.includes("all"));
    await revoke(b.id);
    await seen.until("b", () => seen.changedIds().has(b.id));
  });

  it("keeps trying while the server cannot be reached, and says all once it listens again", async () => {
    const proxy = await tcpProxy(new URL(PG_URL!).port);
    cleanups.push(() => proxy.close());
    const { watcher, keyRow, insert, revoke } = await setUp((url) => {
      const through = new URL(url);
      through.port = String(proxy.port);
      return through.toString();
    });
    const seen = recorder();
    await watcher.watchKeyChanges(seen.listener);
    const [a, b] = [keyRow(), keyRow()];
    await insert(a, b);
    // The server is gone for the watcher: its connection drops, every reconnect is refused.
    await proxy.down();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await revoke(a.id); // told to nobody: the watcher is not listening
    expect(seen.reports).toEqual([]);
    await proxy.up();
    await seen.until("all", () => seen.reports.includes("all"));
    await revoke(b.id);
    await seen.until("b", () => seen.changedIds().has(b.id));
    expect(seen.changedIds().has(a.id)).toBe(false);
  });

  it("shares one listening connection between watchers, stops each when asked, and ends it when the store closes", async () => {
    const { watcher, keyRow, insert, revoke, sql } = await setUp();
    const first = recorder();
    const second = recorder();
    const stopFirst = await watcher.watchKeyChanges(first.listener);
    await watcher.watchKeyChanges(second.listener);
    const listening = () =>
      sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = ${KEY_CHANGES_APPLICATION_NAME}`.then((rows) => rows[0]!.n);
    // One connection however many watchers (and verification caches) the store has.
    expect(await listening()).toBe(1);
    await stopFirst();
    const [a] = [keyRow()];
    await insert(a);
    await revoke(a.id);
    await second.until("a", () => second.changedIds().has(a.id));
    expect(first.reports).toEqual([]);
    await watcher.close();
    expect(await listening()).toBe(0);
  });
});

/** A TCP proxy to the test server that can refuse every connection for a while, as a server that is down. */
async function tcpProxy(targetPort: string): Promise<{ port: number; down(): Promise<void>; up(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        const upstream = connect(Number(targetPort), "127.0.0.1");
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on("close", () => sockets.delete(socket));
          socket.on("error", () => undefined);
        }
        client.pipe(upstream).pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        port = (server.address() as { port: number }).port;
        resolve();
      });
    });
  const down = async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
  };
  await listen();
  return { port, down, up: listen, close: () => (server.listening ? down() : Promise.resolve()) };
}
