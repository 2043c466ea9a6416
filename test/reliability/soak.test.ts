import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { generateToken } from "../../src/keys/token.js";
import { SQLITE_CACHE_KIB } from "../../src/store/sqlite-open.js";
import { makeTempDir } from "../helpers/harness.js";
import { spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";
import { call, connectHttp, mintKeys, openBuiltStore, residentKb, sleep, type MintedKey, type ToolOutcome } from "./support.js";

// Soak: 16 concurrent clients, for KEYWARDEN_SOAK_SECONDS (60 by default), each in a loop: open a
// session (the SDK's Streamable HTTP client with its own bearer key), call tools, close the
// session; beside them 4 gateways in a loop of `POST /v1/keys/verify` (valid, revoked, unknown and
// malformed keys, each answer checked). Zero failed calls; no session left open at the end (by the
// server's own session log and by the count it reports when stopped); no memory growth from the
// end of the warm-up to the end: of the V8 heap, of the memory V8 is told of outside it
// (external), and of resident memory beyond what SQLite's page cache and V8's own sizing account
// for; and, read every 10 s after the warm-up, no upward trend of that resident memory.
//
// How memory is read. Under this load RSS is a sawtooth of tens of MB between collections, and the
// pages a collection frees leave the process some 100 ms after gc() returns. The check before this
// one read VmRSS from outside, after a collection but with the clients running, and wanted two
// readings within 20%: the V8 pages resident in such readings of one server ranged over 57-89 MB,
// so it failed with no leak (CI: +26.9%). Each reading is now taken with every client paused
// between two sessions (no request in flight, none of their sessions open), by gc-probe.cjs in the
// server: two full collections, 300 ms, then /proc/self/smaps_rollup and process.memoryUsage().
//
// What resident memory may grow by (/proc/PID/smaps at each reading, runs of 60 s and 180 s): V8's
// heap pages (but for 1-2 MB of compiled code), glibc's thread arenas (7, a few MB in all) and the
// file-backed mappings (48 MB) are flat after the warm-up. The main malloc arena ([heap]) grows, by
// SQLite's page cache: the soak adds about one 4 KiB page to the database per session, a page
// written stays cached, and the cache stops at SQLITE_CACHE_KIB (src/store/sqlite-open.ts). Then
// the arena is flat: run with a 2,000 KiB cache, it was full by 87 s and moved by 32 kB from 87 s
// to 172 s (about 1,200 sessions). So resident memory may grow by the most the cache can have grown
// by, from the database's page counts, plus what V8 committed more (heapTotal; its live part is the
// heap check), plus a slack.

const SECONDS = Number(process.env.KEYWARDEN_SOAK_SECONDS ?? 60);
const CLIENTS = 16;
const GATEWAYS = 4;
/** Seconds between two readings of memory after a collection (the series BENCHMARKS.md shows). */
const READING_SECONDS = 10;
// A quarter of the run, at most 20 s: the young generation is at its 32 MB by then.
const WARMUP_SECONDS = Math.min(20, Math.max(2, Math.round(SECONDS / 4)));
// Main-arena bytes per byte of cached page: SQLite's page header, malloc's, and the holes the
// arena keeps between cached pages. Measured: 5.2 kB of [heap] per 4 KiB page the database grew
// (1.27x, a 180-s run), and 20.8 MB in all once a 16,000 KiB cache was full (1.30x).
const CACHE_OVERHEAD = 1.3;
// Growth allowed beyond that, from 60-s and 180-s runs on a 2-core machine shared with other jobs
// (130-710 tool calls/s): the heap after a collection grew by 0.4-1.5 MB, nearly all of it code the
// JIT compiled (a heap snapshot diff: +1,444 code objects, +525 kB); external memory by 0 kB;
// resident memory beyond the cache and V8 by -1.3 to +1.3 MB. Injected leaks are far beyond these:
// a Map keeping every session grew the heap by 81.7 MB in a 60-s run (about 75 kB per session), and
// a prepared statement kept per key looked up by id grew resident memory 14.9 MB beyond (the heap
// 1.3 MB).
const HEAP_SLACK_KB = 4 * 1024;
const EXTERNAL_SLACK_KB = 1024;
const RSS_SLACK_KB = 8 * 1024;
// The trend of the readings after the warm-up (least squares over all of them, projected over
// their span) may rise by at most this: the 10-minute series of BENCHMARKS.md moved within it.
const TREND_SLACK_KB = 4 * 1024;

const temp = makeTempDir();
let server: HttpServerProcess | undefined;
afterAll(async () => {
  await server?.stop("SIGKILL");
  temp.cleanup();
});

const GC_PROBE = fileURLToPath(new URL("./gc-probe.cjs", import.meta.url));

interface Memory {
  rssKb: number;
  heapUsedKb: number;
  /** What V8 has committed for its heap, and of that for the young generation. */
  heapTotalKb: number;
  newSpaceKb: number;
  /** process.memoryUsage().external: memory outside the V8 heap that V8 is told of (array buffers included). */
  externalKb: number;
  arrayBuffersKb: number;
  /** The database's size in pages (WAL included) when read, for the page cache's bound. */
  dbPages: number;
}

/** Memory of the server after a full collection (gc-probe.cjs), and the database's size then. */
async function memoryAfterGc(server: HttpServerProcess, dbPath: string): Promise<Memory> {
  const before = server.stderr().length;
  server.child.kill("SIGUSR2");
  for (let waited = 0; waited < 10_000; waited += 20) {
    const line = /\{"gcProbe":(\{[^}]*\})\}/.exec(server.stderr().slice(before));
    if (line) {
      const probe = JSON.parse(line[1]!) as { rssKb: number; heapUsed: number; heapTotal: number; newSpace: number; external: number; arrayBuffers: number };
      return {
        rssKb: probe.rssKb,
        heapUsedKb: Math.round(probe.heapUsed / 1024),
        heapTotalKb: Math.round(probe.heapTotal / 1024),
        newSpaceKb: Math.round(probe.newSpace / 1024),
        externalKb: Math.round(probe.external / 1024),
        arrayBuffersKb: Math.round(probe.arrayBuffers / 1024),
        dbPages: databasePages(dbPath),
      };
    }
    await sleep(20);
  }
  throw new Error("the server did not answer the memory probe");
}

let pageSize = 4096;
function databasePages(dbPath: string): number {
  const reader = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    pageSize = reader.pragma("page_size", { simple: true }) as number;
    return reader.pragma("page_count", { simple: true }) as number;
  } finally {
    reader.close();
  }
}

/** The most memory SQLite's page cache holds (kB) for a database of `pages` pages. */
const cacheKb = (pages: number) => Math.min(SQLITE_CACHE_KIB, (Math.max(0, pages) * pageSize) / 1024) * CACHE_OVERHEAD;

describe("soak", () => {
  it(`${CLIENTS} clients opening sessions, calling tools and closing for ${SECONDS} s: no failure, no session left, no memory growth`, async () => {
    const dbPath = join(temp.dir, "soak.db");
    const keys = await mintKeys(
      dbPath,
      Array.from({ length: CLIENTS }, (_, i) => ({ user: `soak-${i}`, name: `soak client ${i}`, scopes: ["tools:read", "tools:execute"] })),
    );
    // The gateways' own key, the keys they ask about (some revoked before the start), and keys
    // that were never stored (well formed: each is a store read, then a negative answer).
    const gatewayKey = (await mintKeys(dbPath, [{ user: "soak-gateway", name: "gateway", scopes: ["keys:verify"] }]))[0]!;
    const asked = await mintKeys(
      dbPath,
      Array.from({ length: 120 }, (_, i) => ({ user: `soak-verified-${i % 30}`, name: `verified ${i}`, scopes: ["orders:read"] })),
    );
    const revokedKeys = asked.splice(100);
    await revokeKeys(dbPath, revokedKeys);
    server = await spawnHttpServer(["--db", dbPath, "--log-level", "info"], {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require ${GC_PROBE}`.trim(),
    });
    const pid = server.child.pid!;
    // Pages there before the server started need not be in its cache at the warm-up reading.
    const pagesAtStart = databasePages(dbPath);

    const failures: string[] = [];
    const calls: Record<string, number> = {};
    let sessions = 0;
    const started = Date.now();
    const deadline = started + SECONDS * 1000;

    const expectOk = (name: string, outcome: ToolOutcome) => {
      calls[name] = (calls[name] ?? 0) + 1;
      if (!outcome.ok) failures.push(`${name}: ${outcome.raw.slice(0, 300)}`);
      return outcome.body;
    };

    // Readings are taken with every client paused between two sessions (or done): see the top.
    let pause: Promise<void> | undefined;
    let idle = 0;
    const paused = async <T>(read: () => Promise<T>): Promise<T> => {
      let resume!: () => void;
      pause = new Promise((resolve) => (resume = resolve));
      while (idle < CLIENTS + GATEWAYS) await sleep(10);
      try {
        return await read();
      } finally {
        pause = undefined;
        resume();
      }
    };

    const client = async (i: number) => {
      const key = keys[i]!;
      while (Date.now() < deadline) {
        if (pause) {
          idle++;
          await pause;
          idle--;
          continue;
        }
        try {
          const { client, transport } = await connectHttp(server!.url, key.key, `soak/${i}`);
          sessions++;
          const who = expectOk("whoami", await call(client, "whoami"));
          if (who.user_name !== `soak-${i}`) failures.push(`whoami answered ${JSON.stringify(who)}`);
          expectOk("list_api_keys", await call(client, "list_api_keys", { status: "all", limit: 20 }));
          const created = expectOk("create_api_key", await call(client, "create_api_key", { name: `soak ${i}.${sessions}` })) as { id: string; key: string };
          expectOk("get_api_key", await call(client, "get_api_key", { id: created.id }));
          const verified = expectOk("verify_api_key", await call(client, "verify_api_key", { key: created.key }));
          if (verified.valid !== true) failures.push(`a new key did not verify: ${JSON.stringify(verified)}`);
          expectOk("update_api_key", await call(client, "update_api_key", { id: created.id, description: "soaked" }));
          const rotated = expectOk("rotate_api_key", await call(client, "rotate_api_key", { id: created.id, grace_period_seconds: 0 })) as { id: string };
          expectOk("revoke_api_key", await call(client, "revoke_api_key", { id: rotated.id }));
          expectOk("list_key_events", await call(client, "list_key_events", { key_id: created.id, limit: 10 }));
          await transport.terminateSession();
          await client.close();
        } catch (error) {
          failures.push(`client ${i}: ${(error as Error).message}`);
          await sleep(100);
        }
      }
      idle++;
    };

    // A gateway: one verification after another, on a kept-alive connection, each answer checked.
    let verifications = 0;
    const verifyUrl = `${server.base}/v1/keys/verify`;
    const gateway = async (i: number) => {
      for (let n = 0; Date.now() < deadline; n++) {
        if (pause) {
          idle++;
          await pause;
          idle--;
          continue;
        }
        const pick = n % 10;
        const [key, expected] =
          pick < 6
            ? [asked[(n * 7 + i) % asked.length]!.key, "valid"]
            : pick < 8
              ? [revokedKeys[(n + i) % revokedKeys.length]!.key, "revoked"]
              : pick < 9
                ? [generateToken().token, "not_found"]
                : ["kw_not-a-key", "malformed"];
        try {
          const response = await fetch(verifyUrl, {
            method: "POST",
            headers: { authorization: `Bearer ${gatewayKey.key}`, "content-type": "application/json" },
            body: JSON.stringify({ key, required_scopes: ["orders:read"] }),
          });
          const answer = (await response.json()) as { code?: string };
          verifications++;
          if (response.status !== 200 || answer.code !== expected) failures.push(`gateway ${i}: ${response.status} ${JSON.stringify(answer)}, expected ${expected}`);
        } catch (error) {
          failures.push(`gateway ${i}: ${(error as Error).message}`);
          await sleep(100);
        }
      }
      idle++;
    };

    // Resident memory once a second while the clients run (for the log), and after a collection
    // every READING_SECONDS (the first at the end of the warm-up) and once the clients are done.
    const samples: number[] = [];
    const readings: { at: number; memory: Memory }[] = [];
    const sampler = (async () => {
      let next = WARMUP_SECONDS;
      while (Date.now() < deadline) {
        samples.push(residentKb(pid));
        if (Date.now() - started >= next * 1000 && deadline - Date.now() > 2000) {
          const memory = await paused(() => memoryAfterGc(server!, dbPath));
          readings.push({ at: Math.round((Date.now() - started) / 1000), memory });
          next += READING_SECONDS;
        }
        await sleep(1000);
      }
    })();
    await Promise.all([...Array.from({ length: CLIENTS }, (_, i) => client(i)), ...Array.from({ length: GATEWAYS }, (_, i) => gateway(i)), sampler]);
    const end = await paused(() => memoryAfterGc(server!, dbPath));
    readings.push({ at: Math.round((Date.now() - started) / 1000), memory: end });
    const warm = readings[0]!.memory;
    const elapsed = (Date.now() - started) / 1000;
    const totalCalls = Object.values(calls).reduce((a, b) => a + b, 0);

    // Sessions by the server's own log: every one opened was closed.
    const log = server.stderr();
    const opened = [...log.matchAll(/"session":"([^"]+)"[^\n]*"msg":"session opened"/g)].map((m) => m[1]);
    const closed = new Set([...log.matchAll(/"session":"([^"]+)"[^\n]*"msg":"session closed"/g)].map((m) => m[1]));
    const leftOpen = opened.filter((id) => !closed.has(id));

    // Stopping, the server says how many sessions it still had.
    expect(await server.stop("SIGTERM")).toBe(0);
    const stopping = /"sessions":(\d+)[^\n]*"msg":"stopping/.exec(server.stderr());

    // What the page cache may have grown by: at most to the whole database (or its bound) at the
    // end, from at least every page written since the server started (or its bound) at warm-up.
    const cacheGrowthKb = Math.round(cacheKb(end.dbPages) - cacheKb(warm.dbPages - pagesAtStart));
    // Each reading's resident memory beyond what the page cache (at most the whole database, or its
    // bound) and V8's committed heap hold: the series whose trend must be flat.
    const beyond = readings.map(({ at, memory }) => ({ at, kb: memory.rssKb - cacheKb(memory.dbPages) - memory.heapTotalKb }));
    const trendKb = projectedTrendKb(beyond);
    const v8GrowthKb = Math.max(0, end.heapTotalKb - warm.heapTotalKb);
    const rssGrowthKb = end.rssKb - warm.rssKb;
    const show = (m: Memory) =>
      `RSS ${m.rssKb} kB, heap ${m.heapUsedKb} kB used of ${m.heapTotalKb} (young ${m.newSpaceKb}), external ${m.externalKb} kB (array buffers ${m.arrayBuffersKb} kB), database ${m.dbPages} pages`;
    console.log(
      `${elapsed.toFixed(0)} s, ${CLIENTS} clients: ${sessions} sessions, ${totalCalls} tool calls (${(totalCalls / elapsed).toFixed(0)}/s), ` +
        `${failures.length} failures; after a collection, clients paused: after ${WARMUP_SECONDS} s warm-up ${show(warm!)}; ` +
        `at the end ${show(end)}; RSS ${rssGrowthKb >= 0 ? "+" : ""}${rssGrowthKb} kB (${((end.rssKb / warm.rssKb - 1) * 100).toFixed(1)}%), ` +
        `of which the page cache may be ${cacheGrowthKb} kB and V8's heap ${v8GrowthKb} kB: ${rssGrowthKb - cacheGrowthKb - v8GrowthKb} kB beyond; ` +
        `heap used ${end.heapUsedKb - warm.heapUsedKb} kB, external ${end.externalKb - warm.externalKb} kB; ` +
        `${verifications} gateway verifications (${(verifications / elapsed).toFixed(0)}/s); ` +
        `every ${READING_SECONDS} s after a collection (s: RSS MB / beyond kB): ${readings.map(({ at, memory }, i) => `${at}: ${(memory.rssKb / 1024).toFixed(1)} / ${Math.round(beyond[i]!.kb)}`).join(", ")}; ` +
        `trend of beyond over the run ${trendKb >= 0 ? "+" : ""}${Math.round(trendKb)} kB; ` +
        `RSS every second ${samples.map((kb) => Math.round(kb / 1024)).join(" ")} MB`,
    );
    expect(failures.slice(0, 5), `${failures.length} failed calls`).toEqual([]);
    expect(sessions).toBeGreaterThan(CLIENTS * 2);
    expect(opened.length).toBe(sessions);
    expect(leftOpen).toEqual([]);
    expect(stopping?.[1]).toBe("0");
    expect(end.heapUsedKb - warm.heapUsedKb, "V8 heap growth (kB) after a collection").toBeLessThanOrEqual(HEAP_SLACK_KB);
    expect(end.externalKb - warm.externalKb, "external memory growth (kB)").toBeLessThanOrEqual(EXTERNAL_SLACK_KB);
    expect(rssGrowthKb - cacheGrowthKb - v8GrowthKb, "resident memory growth (kB) beyond the page cache and V8's heap").toBeLessThanOrEqual(RSS_SLACK_KB);
    expect(trendKb, "trend of resident memory beyond the page cache and V8's heap, over the readings (kB)").toBeLessThanOrEqual(TREND_SLACK_KB);
    expect(verifications).toBeGreaterThan(GATEWAYS * 100);
    expect(log.split("\n").filter((line) => /"level":(50|60)|MaxListeners|Unhandled/.test(line)).slice(0, 3)).toEqual([]);
    // Longer runs (KEYWARDEN_SOAK_SECONDS) get their length plus the set-up and the readings.
  }, Math.max(240_000, (SECONDS + 120) * 1000));
});

/** The least-squares line through the readings, as its rise (kB) from the first reading to the last. */
function projectedTrendKb(points: { at: number; kb: number }[]): number {
  if (points.length < 2) return 0;
  const meanAt = points.reduce((sum, p) => sum + p.at, 0) / points.length;
  const meanKb = points.reduce((sum, p) => sum + p.kb, 0) / points.length;
  const covariance = points.reduce((sum, p) => sum + (p.at - meanAt) * (p.kb - meanKb), 0);
  const variance = points.reduce((sum, p) => sum + (p.at - meanAt) ** 2, 0);
  return variance === 0 ? 0 : (covariance / variance) * (points.at(-1)!.at - points[0]!.at);
}

/** Revokes these keys straight in the store, as an admin (the built library). */
async function revokeKeys(db: string, keys: MintedKey[]): Promise<void> {
  const store = await openBuiltStore(db);
  const { KeyService } = await import("../../dist/index.js");
  try {
    const service = new KeyService({ store });
    const admin = await service.localPrincipal({ userName: "soak-admin", transport: "cli", isAdmin: true });
    for (const key of keys) await service.revokeApiKey(admin, { id: key.id, reason: "soak" });
  } finally {
    await store.close();
  }
}
