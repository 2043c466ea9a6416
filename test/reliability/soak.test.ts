import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";
import { call, connectHttp, mintKeys, residentKb, sleep, type ToolOutcome } from "./support.js";

// Soak: 16 concurrent clients, for KEYWARDEN_SOAK_SECONDS (60 by default), each in a loop: open a
// session (the SDK's Streamable HTTP client with its own bearer key), call tools, close the
// session. Zero failed calls; no session left open at the end (by the server's own session log
// and by the count it reports when stopped); resident memory (VmRSS) at the end within 20% of the
// memory after warm-up.
//
// Under this load the server's RSS is a sawtooth of 40-50 MB between collections, so two readings
// at random moments differ by more than 20% with no leak at all. Both readings are therefore taken
// right after a full collection, which gc-probe.cjs (preloaded into the server) runs on SIGUSR2.

const SECONDS = Number(process.env.KEYWARDEN_SOAK_SECONDS ?? 60);
const CLIENTS = 16;
// A quarter of the run, at most 20 s: long enough for the allocator to settle (the heap itself is flat from the start).
const WARMUP_SECONDS = Math.min(20, Math.max(2, Math.round(SECONDS / 4)));
const temp = makeTempDir();
let server: HttpServerProcess | undefined;
afterAll(async () => {
  await server?.stop("SIGKILL");
  temp.cleanup();
});

const GC_PROBE = fileURLToPath(new URL("./gc-probe.cjs", import.meta.url));

/** Resident memory right after a full collection in the server (and its heap, for the log). */
async function memoryAfterGc(server: HttpServerProcess): Promise<{ rssKb: number; heapUsedKb: number }> {
  const before = server.stderr().length;
  server.child.kill("SIGUSR2");
  for (let waited = 0; waited < 10_000; waited += 20) {
    const line = /\{"gcProbe":(\{[^}]*\})\}/.exec(server.stderr().slice(before));
    if (line) {
      const probe = JSON.parse(line[1]!) as { heapUsed: number };
      return { rssKb: residentKb(server.child.pid!), heapUsedKb: Math.round(probe.heapUsed / 1024) };
    }
    await sleep(20);
  }
  throw new Error("the server did not answer the memory probe");
}


describe("soak", () => {
  it(`${CLIENTS} clients opening sessions, calling tools and closing for ${SECONDS} s: no failure, no session left, no memory growth`, async () => {
    const dbPath = join(temp.dir, "soak.db");
    const keys = await mintKeys(
      dbPath,
      Array.from({ length: CLIENTS }, (_, i) => ({ user: `soak-${i}`, name: `soak client ${i}`, scopes: ["tools:read", "tools:execute"] })),
    );
    server = await spawnHttpServer(["--db", dbPath, "--log-level", "info"], {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require ${GC_PROBE}`.trim(),
    });
    const pid = server.child.pid!;

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

    const client = async (i: number) => {
      const key = keys[i]!;
      while (Date.now() < deadline) {
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
    };

    // Resident memory once a second while the clients run (for the log), and after a collection
    // at the end of the warm-up and at the end of the run, both under full load.
    const samples: number[] = [];
    let warm: { rssKb: number; heapUsedKb: number } | undefined;
    let end: { rssKb: number; heapUsedKb: number } | undefined;
    const sampler = (async () => {
      while (Date.now() < deadline - 1500) {
        samples.push(residentKb(pid));
        if (!warm && Date.now() - started >= WARMUP_SECONDS * 1000) warm = await memoryAfterGc(server!);
        await sleep(1000);
      }
      end = await memoryAfterGc(server!);
    })();
    await Promise.all([...Array.from({ length: CLIENTS }, (_, i) => client(i)), sampler]);
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

    console.log(
      `${elapsed.toFixed(0)} s, ${CLIENTS} clients: ${sessions} sessions, ${totalCalls} tool calls (${(totalCalls / elapsed).toFixed(0)}/s), ` +
        `${failures.length} failures; after a collection: RSS after ${WARMUP_SECONDS} s warm-up ${warm!.rssKb} kB (heap ${warm!.heapUsedKb} kB), ` +
        `at the end ${end!.rssKb} kB (heap ${end!.heapUsedKb} kB): ${((end!.rssKb / warm!.rssKb - 1) * 100).toFixed(1)}%; ` +
        `RSS every second ${samples.map((kb) => Math.round(kb / 1024)).join(" ")} MB`,
    );
    expect(failures.slice(0, 5), `${failures.length} failed calls`).toEqual([]);
    expect(sessions).toBeGreaterThan(CLIENTS * 2);
    expect(opened.length).toBe(sessions);
    expect(leftOpen).toEqual([]);
    expect(stopping?.[1]).toBe("0");
    expect(end!.rssKb).toBeLessThanOrEqual(warm!.rssKb * 1.2);
    expect(log.split("\n").filter((line) => /"level":(50|60)|MaxListeners|Unhandled/.test(line)).slice(0, 3)).toEqual([]);
  });
});
