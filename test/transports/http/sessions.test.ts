import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CreatedApiKey } from "../../../src/service/types.js";
import { BoundedEventStore, replayableForm } from "../../../src/transports/http/event-store.js";
import { SessionTable, type SessionCloseReason, type TableEntry } from "../../../src/transports/http/sessions.js";
import { openHarness, type Harness } from "../../helpers/harness.js";

// The session table in process, on a real service and SQLite store with a test clock: limits,
// LRU eviction, the idle sweep, and the watch of the keys that own sessions.

interface Entry extends TableEntry {
  label: string;
}

let harness: Harness;
let closed: [string, SessionCloseReason][];
let now: number;

beforeEach(async () => {
  harness = await openHarness({ isAdmin: true });
  closed = [];
  now = 1_000_000;
});
afterEach(async () => {
  await harness.close();
});

/** The ids of each standings read the table made. */
let reads: string[][];

function table(
  limits: { maxSessions?: number; maxSessionsPerKey?: number; idleTimeoutMs?: number } = {},
  keyStandings = (ids: readonly string[]) => harness.service.keyStandings(ids),
  clock: () => number = () => now,
) {
  reads = [];
  return new SessionTable<Entry>({
    maxSessions: limits.maxSessions ?? 100,
    maxSessionsPerKey: limits.maxSessionsPerKey ?? 10,
    idleTimeoutMs: limits.idleTimeoutMs ?? 60_000,
    keyWatchIntervalMs: 60_000,
    keyStandings: (ids) => {
      reads.push([...ids].sort());
      return keyStandings(ids);
    },
    onClose: (session, why) => void closed.push([session.label, why]),
    now: clock,
  });
}

let counter = 0;
function entry(label: string, keyId: string | null, scopes: readonly string[] | null = ["tools:read"], expiresAtMs: number | null = null): Entry {
  return { id: `s${++counter}`, label, keyId, scopes, expiresAtMs, lastUsed: now, busy: 0 };
}

/** admit() then add(), as the transport does; false when refused. */
function open(sessions: SessionTable<Entry>, session: Entry): boolean {
  if (!sessions.admit(session.keyId)) return false;
  sessions.add(session);
  return true;
}

describe("SessionTable limits", () => {
  it("a key at its limit gives up its least recently used session, and only its own", () => {
    const sessions = table({ maxSessionsPerKey: 3 });
    const [a1, a2, a3, a4] = ["a1", "a2", "a3", "a4"].map((label) => entry(label, "key_a"));
    const b1 = entry("b1", "key_b");
    for (const session of [a1!, a2!, a3!, b1]) expect(open(sessions, session)).toBe(true);
    sessions.use(a1!, false)(); // a1 used: a2 is now the least recently used, in the same millisecond
    expect(open(sessions, a4!)).toBe(true);
    expect(closed).toStrictEqual([["a2", "evicted"]]);
    expect(sessions.countOf("key_a")).toBe(3);
    expect(sessions.get(b1.id)).toBe(b1);
    expect(sessions.size).toBe(4);
  });

  it("a full table refuses a key with no session, and makes a key with sessions give up its own", () => {
    const sessions = table({ maxSessions: 3, maxSessionsPerKey: 10 });
    for (const label of ["a1", "a2", "b1"]) expect(open(sessions, entry(label, label[0] === "a" ? "key_a" : "key_b"))).toBe(true);
    expect(open(sessions, entry("c1", "key_c"))).toBe(false);
    expect(closed).toStrictEqual([]);
    expect(open(sessions, entry("b2", "key_b"))).toBe(true);
    expect(closed).toStrictEqual([["b1", "evicted"]]);
    expect(sessions.size).toBe(3);
  });

  it("--no-auth is one principal: its sessions share one per-key limit", () => {
    const sessions = table({ maxSessionsPerKey: 2 });
    for (const label of ["n1", "n2", "n3"]) expect(open(sessions, entry(label, null, null))).toBe(true);
    expect(closed).toStrictEqual([["n1", "evicted"]]);
  });

  it("closes an idle session even while it holds a GET stream, never one with a request in progress", () => {
    const sessions = table({ idleTimeoutMs: 1000 });
    const streaming = entry("streaming", "key_a");
    const working = entry("working", "key_a");
    open(sessions, streaming);
    open(sessions, working);
    sessions.use(streaming, true); // a GET stream, never ended
    sessions.use(working, false); // a tool call, still running
    now += 1000;
    sessions.sweepIdle();
    expect(closed).toStrictEqual([["streaming", "idle"]]);
    expect(sessions.size).toBe(1);
  });

  it("a session whose key's scopes changed is not admitted, and is closed", () => {
    const sessions = table();
    const session = entry("a1", "key_a", ["tools:read", "tools:execute"]);
    open(sessions, session);
    expect(sessions.admits(session, ["tools:execute", "tools:read"])).toBe(true);
    expect(sessions.admits(session, ["tools:read"])).toBe(false);
    expect(closed).toStrictEqual([["a1", "scopes_changed"]]);
    expect(sessions.size).toBe(0);
  });
});

describe("SessionTable key watch (one read of every owning key's standing)", () => {
  const mint = (name: string, scopes = ["tools:read", "tools:execute"], expires_at?: string): Promise<CreatedApiKey> =>
    harness.service.createApiKey(harness.principal, { name, scopes, expires_at });

  it("closes the sessions of a revoked key, of a narrowed key, and of an expired key; keeps the rest", async () => {
    const sessions = table();
    const revoked = await mint("revoked");
    const narrowed = await mint("narrowed");
    const expiring = await mint("expiring", ["tools:read"], new Date(harness.clock.current.getTime() + 60_000).toISOString());
    const kept = await mint("kept");
    const open1 = (label: string, key: CreatedApiKey) => open(sessions, entry(label, key.id, key.scopes));
    open1("revoked-1", revoked);
    open1("revoked-2", revoked);
    open1("narrowed", narrowed);
    open1("expiring", expiring);
    open1("kept", kept);

    await harness.service.revokeApiKey(harness.principal, { id: revoked.id });
    await harness.service.updateApiKey(harness.principal, { id: narrowed.id, scopes: ["tools:read"] });
    await sessions.recheckKeys("all");
    expect(closed.sort()).toStrictEqual([
      ["narrowed", "scopes_changed"],
      ["revoked-1", "revoked"],
      ["revoked-2", "revoked"],
    ]);

    harness.clock.advance(60_000);
    await sessions.recheckKeys("all");
    expect(closed.at(-1)).toStrictEqual(["expiring", "expired"]);
    expect(sessions.size).toBe(1);
    expect(sessions.countOf(kept.id)).toBe(1);
  });

  it("a key that no longer exists loses its sessions; a key's known expiry closes them without a read", async () => {
    const sessions = table();
    open(sessions, entry("ghost", "key_doesnotexist"));
    open(sessions, entry("local-expiry", null, null, now + 10));
    now += 10;
    await sessions.recheckKeys("all");
    expect(closed.sort()).toStrictEqual([
      ["ghost", "key_gone"],
      ["local-expiry", "expired"],
    ]);
  });

  it("a re-check of named keys (a key-change notification) reads and judges only their sessions; keys owning none cost no read", async () => {
    const sessions = table();
    const named = await mint("named");
    const other = await mint("other");
    open(sessions, entry("named", named.id, named.scopes));
    open(sessions, entry("other", other.id, other.scopes));
    await harness.service.revokeApiKey(harness.principal, { id: named.id });
    await harness.service.revokeApiKey(harness.principal, { id: other.id });

    await sessions.recheckKeys(["key_without_sessions"]);
    expect(reads).toStrictEqual([]);
    await sessions.recheckKeys([named.id, "key_without_sessions"]);
    expect(reads).toStrictEqual([[named.id]]);
    expect(closed).toStrictEqual([["named", "revoked"]]);
    // "all" (the periodic watch, or notifications lost) reads every key that owns a session.
    await sessions.recheckKeys("all");
    expect(reads.at(-1)).toStrictEqual([other.id]);
    expect(closed.at(-1)).toStrictEqual(["other", "revoked"]);
  });

  it("a storm of notifications costs one read at a time: ids arriving during a read are read together by one more", async () => {
    const keys = await Promise.all(["k1", "k2", "k3", "k4"].map((name) => mint(name)));
    let release!: () => void;
    let gate: Promise<void> | null = new Promise<void>((resolve) => (release = resolve));
    let inFlight = 0;
    let mostInFlight = 0;
    const sessions = table({}, async (ids) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      if (gate) await gate;
      try {
        return await harness.service.keyStandings(ids);
      } finally {
        inFlight -= 1;
      }
    });
    for (const key of keys) open(sessions, entry(key.id, key.id, key.scopes));

    const first = sessions.recheckKeys([keys[0]!.id]);
    await new Promise((resolve) => setImmediate(resolve));
    // Committed while the first read is in flight (it may predate them): 100 notifications.
    await harness.service.revokeApiKey(harness.principal, { id: keys[1]!.id });
    await harness.service.updateApiKey(harness.principal, { id: keys[2]!.id, scopes: ["tools:read"] });
    const storm = Array.from({ length: 100 }, (_, i) => sessions.recheckKeys([keys[1 + (i % 2)]!.id]));
    gate = null;
    release();
    await Promise.all([first, ...storm]);
    expect(reads).toStrictEqual([[keys[0]!.id], [keys[1]!.id, keys[2]!.id].sort()]);
    expect(mostInFlight).toBe(1);
    expect(closed.sort()).toStrictEqual(
      [
        [keys[1]!.id, "revoked"],
        [keys[2]!.id, "scopes_changed"],
      ].sort(),
    );
    expect(sessions.size).toBe(2);
  });

  it("once started, a session ends at its key's expiry without a read, also when a re-check learns of an earlier one", async () => {
    const at = Date.now();
    // The key as another instance left it: active, its expiry moved 300 ms ahead.
    const standings = async (ids: readonly string[]) =>
      new Map(ids.map((id) => [id, { status: "active" as const, scopes: ["tools:read"], expiresAt: new Date(at + 300).toISOString() }]));
    const sessions = table({}, standings, Date.now);
    sessions.start();
    try {
      open(sessions, entry("known", "key_known", ["tools:read"], at + 150));
      const moved = entry("moved", "key_moved", ["tools:read"], at + 3_600_000);
      open(sessions, moved);
      await sessions.recheckKeys(["key_moved"]);
      expect(moved.expiresAtMs).toBe(at + 300);
      expect(reads).toStrictEqual([["key_moved"]]);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(closed).toStrictEqual([
        ["known", "expired"],
        ["moved", "expired"],
      ]);
      expect(reads).toHaveLength(1);
    } finally {
      sessions.stop();
    }
  });

  it("the store answers for every key in one read, leaving out unknown ids", async () => {
    const one = await mint("one");
    const two = await mint("two", ["tools:read"]);
    await harness.service.revokeApiKey(harness.principal, { id: two.id });
    const standings = await harness.service.keyStandings([one.id, two.id, "key_unknown"]);
    expect(Object.fromEntries(standings)).toStrictEqual({
      [one.id]: { status: "active", scopes: ["tools:read", "tools:execute"], expiresAt: one.expires_at },
      [two.id]: { status: "revoked", scopes: ["tools:read"], expiresAt: two.expires_at },
    });
    expect(await harness.store.getKeyStandings([])).toStrictEqual([]);
  });
});

describe("BoundedEventStore (SSE resumability)", () => {
  const message = (id: number): JSONRPCMessage => ({ jsonrpc: "2.0", id, result: { n: id } });

  it("replays the events of the same stream after the given id, without priming events", async () => {
    const store = new BoundedEventStore();
    const priming = await store.storeEvent("post-1", {} as JSONRPCMessage);
    await store.storeEvent("post-2", message(20));
    await store.storeEvent("post-1", message(10));
    expect(await store.getStreamIdForEventId(priming)).toBe("post-1");
    const sent: unknown[] = [];
    const stream = await store.replayEventsAfter(priming, { send: async (id, sentMessage) => void sent.push([id, sentMessage]) });
    expect(stream).toBe("post-1");
    expect(sent).toStrictEqual([["3", message(10)]]);
  });

  it("sends a message again at most once, and keeps it at most its time: a created key's value is not held for the session's life", async () => {
    let clock = 0;
    const store = new BoundedEventStore({ messageTtlMs: 60_000 }, () => clock);
    const priming = await store.storeEvent("post-1", {} as JSONRPCMessage);
    const created: JSONRPCMessage = { jsonrpc: "2.0", id: 1, result: { structuredContent: { key: "kw_secret" } } };
    const resultId = await store.storeEvent("post-1", created);
    const replay = async (from: string) => {
      const sent: unknown[] = [];
      await store.replayEventsAfter(from, { send: async (id, sentMessage) => void sent.push([id, sentMessage]) });
      return sent;
    };
    expect(await replay(priming)).toStrictEqual([[resultId, created]]);
    expect(await replay(priming)).toStrictEqual([]);
    expect(store.messageCount).toBe(0);
    // The stream can still be resumed after the result (its id is kept), with nothing to resend.
    expect(await store.getStreamIdForEventId(resultId)).toBe("post-1");

    const later = await store.storeEvent("post-2", message(7));
    const primingTwo = await store.storeEvent("post-3", {} as JSONRPCMessage);
    await store.storeEvent("post-3", message(8));
    clock += 60_000;
    expect(store.messageCount).toBe(0);
    expect(await replay(primingTwo)).toStrictEqual([]);
    expect(await store.getStreamIdForEventId(later)).toBe("post-2");
  });

  it("never sends a key's full value again: a result holding a whole token is replayed as an error for its request", async () => {
    const store = new BoundedEventStore();
    const harnessKey = await harness.service.createApiKey(harness.principal, { name: "replay" });
    const priming = await store.storeEvent("post-1", {} as JSONRPCMessage);
    const created: JSONRPCMessage = { jsonrpc: "2.0", id: 7, result: { content: [{ type: "text", text: JSON.stringify(harnessKey) }], structuredContent: harnessKey } };
    await store.storeEvent("post-1", created);
    const sent: JSONRPCMessage[] = [];
    await store.replayEventsAfter(priming, { send: async (_id, sentMessage) => void sent.push(sentMessage) });
    expect(sent).toHaveLength(1);
    expect(JSON.stringify(sent)).not.toContain(harnessKey.key.slice(harnessKey.key_prefix.length));
    expect(sent[0]).toMatchObject({ jsonrpc: "2.0", id: 7, error: { code: -32000, message: expect.stringContaining("list_api_keys") } });
    // A result with only a key's prefix (a listing) is replayed as it is.
    const listing: JSONRPCMessage = { jsonrpc: "2.0", id: 8, result: { structuredContent: { key_prefix: harnessKey.key_prefix } } };
    expect(replayableForm(listing)).toBe(listing);
  });

  it("keeps at most its bound of events and bytes, dropping the oldest; a dropped id cannot be resumed from", async () => {
    const store = new BoundedEventStore({ maxEvents: 3, maxBytes: 1000 });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await store.storeEvent("s", message(i)));
    expect(store.size).toBe(3);
    expect(await store.getStreamIdForEventId(ids[0]!)).toBeUndefined();
    expect(await store.getStreamIdForEventId(ids[2]!)).toBe("s");
    await expect(store.replayEventsAfter(ids[0]!, { send: async () => undefined })).rejects.toThrow();

    const small = new BoundedEventStore({ maxEvents: 100, maxBytes: 100 });
    for (let i = 0; i < 10; i++) await small.storeEvent("s", message(i));
    expect(small.size).toBe(100 / JSON.stringify(message(1)).length | 0);
  });
});
