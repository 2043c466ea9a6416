import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { callOk } from "../helpers/lifecycle.js";
import { connectHttpClient, mintKey, rawRequest, spawnHttpServer, type CreatedKey, type HttpServerProcess } from "../helpers/http.js";
import { initialize, inSession, openGetStream, type SseStream } from "../helpers/inprocess.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";
import { runCli } from "../helpers/spawn.js";
import { makeTempDir } from "../helpers/harness.js";
import { HEARTBEAT_STALE_MS } from "../../src/store/postgres.js";

// Two `keywarden serve` processes on one PostgreSQL database (README, "Running several instances"):
// a key revoked, narrowed or whose expiry is moved earlier through A (an MCP tool) or by another
// process (`keywarden admin revoke-key`) is refused by B on its next verify and its next /mcp
// request, and B's open stream for it ends. B polls every 60 s here: a stream that ends within
// the 10 s these tests wait was ended by the key-change notification, not by the poll.

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const POLL_MS_OFF = "60000";
/** Far below B's poll interval, far above what a notification takes (BENCHMARKS.md, "Key changes across instances"). */
const WAIT_MS = 10_000;

const READ_EXECUTE = "tools:read,tools:execute";

interface World {
  url: string;
  a: HttpServerProcess;
  b: HttpServerProcess;
  admin: CreatedKey;
  gateway: CreatedKey;
  /** alice's key that holds a session and a GET stream on B. */
  target: CreatedKey;
  /** alice's other key, which covers the target's scopes (an owner may narrow, revoke, shorten it). */
  owner: CreatedKey;
  stream: SseStream;
  sessionId: string;
}

async function spawn(args: string[], env: Record<string, string> = {}): Promise<HttpServerProcess> {
  const server = await spawnHttpServer(args, env);
  cleanups.push(() => server.stop());
  return server;
}

/** The JSON log lines of a process with `msg` equal to `message`. */
function logLines(server: HttpServerProcess, message: string): Record<string, unknown>[] {
  return server
    .stderr()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === message);
}

async function twoInstances(bArgs: string[] = ["--key-watch-interval", POLL_MS_OFF], targetExtra: string[] = []): Promise<World> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const admin = mintKey(db.url, "ops", "bootstrap", "admin");
  const gateway = mintKey(db.url, "ops", "gateway", "keys:verify");
  const target = mintKey(db.url, "alice", "agent", READ_EXECUTE, targetExtra);
  const owner = mintKey(db.url, "alice", "alice's own", READ_EXECUTE);
  const [a, b] = await Promise.all([spawn(["--db", db.url]), spawn(["--db", db.url, ...bArgs])]);
  const { status, sessionId } = await initialize(b.url, target.key);
  expect(status).toBe(200);
  const stream = openGetStream(b.url, target.key, sessionId!);
  cleanups.push(() => stream.abort());
  expect(await stream.status).toBe(200);
  return { url: db.url, a, b, admin, gateway, target, owner, stream, sessionId: sessionId! };
}

/** B's answer to the gateway about the target key. */
async function verifyThroughB(world: World, requiredScopes?: string[]): Promise<{ valid: boolean; code: string }> {
  const response = await rawRequest(`${world.b.base}/v1/keys/verify`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${world.gateway.key}` },
    body: JSON.stringify({ key: world.target.key, ...(requiredScopes ? { required_scopes: requiredScopes } : {}) }),
  });
  expect(response.status).toBe(200);
  return response.json() as { valid: boolean; code: string };
}

/** Calls a tool on A with `key`; resolves when A has answered, that is after its change committed. */
async function callThroughA(world: World, key: string, name: string, args: Record<string, unknown>): Promise<void> {
  const { client } = await connectHttpClient(world.a.url, key);
  cleanups.push(() => client.close());
  await callOk(client, name, args);
}

/** "ended" when B ends the stream within WAIT_MS, else "still open". */
async function streamOutcome(stream: SseStream): Promise<"ended" | "still open"> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    stream.ended.then(() => "ended" as const),
    new Promise<"still open">((resolve) => (timer = setTimeout(() => resolve("still open"), WAIT_MS))),
  ]);
  clearTimeout(timer);
  return outcome;
}

/**
 * The `why` of B's "session closed" line for this session. Its stderr may reach the test after the
 * stream's end does: waits for the line (up to WAIT_MS).
 */
async function closedWhy(server: HttpServerProcess, sessionId: string): Promise<unknown> {
  for (const deadline = Date.now() + WAIT_MS; ; await new Promise((resolve) => setTimeout(resolve, 20))) {
    const line = logLines(server, "session closed").find((entry) => entry.session === sessionId.slice(0, 8));
    if (line !== undefined || Date.now() > deadline) return line?.why;
  }
}

const RELISTENED = "key-change notifications: listening again after a lost connection; re-checking every session's key";

describe.skipIf(!PG_URL)("two keywarden serve on one PostgreSQL database", () => {
  it("revoked through A (revoke_api_key, an admin's key): B's verify says revoked, its /mcp refuses the key, its stream ends", async () => {
    const world = await twoInstances();
    expect(logLines(world.b, "keywarden http server listening")[0]).toMatchObject({ key_notifications: true });
    expect(await verifyThroughB(world)).toMatchObject({ valid: true, code: "valid" });

    await callThroughA(world, world.admin.key, "revoke_api_key", { id: world.target.id, reason: "leaked" });
    const answered = Date.now();
    // B's verification cache holds the key until B hears the notification (README, "Verification
    // cache": milliseconds, 1 s at worst): B refuses it from then on, within that bound.
    let verdict = await verifyThroughB(world);
    while (verdict.code === "valid" && Date.now() - answered < HEARTBEAT_STALE_MS) verdict = await verifyThroughB(world);
    expect(verdict).toMatchObject({ valid: false, code: "revoked" });
    expect(await verifyThroughB(world)).toMatchObject({ valid: false, code: "revoked" });
    expect(await inSession(world.b.url, world.target.key, world.sessionId)).toBe(401);
    expect((await initialize(world.b.url, world.target.key)).status).toBe(401);
    expect(await streamOutcome(world.stream)).toBe("ended");
    expect(await closedWhy(world.b, world.sessionId)).toBe("revoked");
  });

  it("revoked by a third process (keywarden admin revoke-key): B's stream ends and B refuses the key", async () => {
    const world = await twoInstances();
    const revoked = runCli(["admin", "revoke-key", world.target.id, "--db", world.url, "--reason", "leaked"]);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(await streamOutcome(world.stream)).toBe("ended");
    expect(await closedWhy(world.b, world.sessionId)).toBe("revoked");
    expect(await verifyThroughB(world)).toMatchObject({ valid: false, code: "revoked" });
    expect(await inSession(world.b.url, world.target.key, world.sessionId)).toBe(401);
  });

  it("narrowed through A (update_api_key scopes, the owner's other key): B's stream ends, its verify refuses the lost scope, the old session gets 404", async () => {
    const world = await twoInstances();
    await callThroughA(world, world.owner.key, "update_api_key", { id: world.target.id, scopes: ["tools:read"] });
    // The stream first: a request on the session would close it too (SessionTable.admits).
    expect(await streamOutcome(world.stream)).toBe("ended");
    expect(await closedWhy(world.b, world.sessionId)).toBe("scopes_changed");
    expect(await verifyThroughB(world, ["tools:execute"])).toMatchObject({ valid: false, code: "insufficient_scope" });
    expect(await verifyThroughB(world, ["tools:read"])).toMatchObject({ valid: true, code: "valid" });
    expect(await inSession(world.b.url, world.target.key, world.sessionId)).toBe(404);
    // The key still works, with its new scopes, in a new session.
    expect((await initialize(world.b.url, world.target.key)).status).toBe(200);
  });

  it("expiry moved earlier through A (update_api_key expires_at, 1.5 s ahead): B's stream ends at that instant, then B refuses the key", async () => {
    const world = await twoInstances();
    const expiresAt = new Date(Date.now() + 1500);
    await callThroughA(world, world.owner.key, "update_api_key", { id: world.target.id, expires_at: expiresAt.toISOString() });
    expect(await streamOutcome(world.stream)).toBe("ended");
    // Not before the new expiry: a key works until the instant it expires (README, Authentication).
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt.getTime());
    expect(await closedWhy(world.b, world.sessionId)).toBe("expired");
    expect(await verifyThroughB(world)).toMatchObject({ valid: false, code: "expired" });
    expect(await inSession(world.b.url, world.target.key, world.sessionId)).toBe(401);
  });

  it("with B's listening connection cut (pg_terminate_backend), B listens again, re-checks every session's key, and hears the next change", async () => {
    const world = await twoInstances();
    const sql = postgres(world.url, { max: 1, onnotice: () => undefined });
    cleanups.push(() => sql.end());
    const cut = await sql`SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity
      WHERE application_name = 'keywarden key changes' AND datname = current_database()`;
    // A's and B's listeners.
    expect(cut.map((row) => row.cut)).toEqual([true, true]);
    for (const deadline = Date.now() + WAIT_MS; logLines(world.b, RELISTENED).length === 0 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(logLines(world.b, RELISTENED)).toHaveLength(1);
    await callThroughA(world, world.admin.key, "revoke_api_key", { id: world.target.id });
    expect(await streamOutcome(world.stream)).toBe("ended");
    expect(await closedWhy(world.b, world.sessionId)).toBe("revoked");
  });

  it("with notifications off on B (--no-key-notifications), the periodic watch still ends the stream; requests are refused at once either way", async () => {
    const world = await twoInstances(["--no-key-notifications", "--key-watch-interval", "500"]);
    expect(logLines(world.b, "keywarden http server listening")[0]).toMatchObject({ key_notifications: false });
    const sql = postgres(world.url, { max: 1, onnotice: () => undefined });
    cleanups.push(() => sql.end());
    // Only A listens.
    const listeners = await sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'keywarden key changes' AND datname = current_database()`;
    expect(listeners[0]!.n).toBe(1);

    await callThroughA(world, world.admin.key, "revoke_api_key", { id: world.target.id });
    expect(await verifyThroughB(world)).toMatchObject({ valid: false, code: "revoked" });
    expect(await inSession(world.b.url, world.target.key, world.sessionId)).toBe(401);
    expect(await streamOutcome(world.stream)).toBe("ended");
    expect(await closedWhy(world.b, world.sessionId)).toBe("revoked");
  });
});

describe("keywarden serve on SQLite", () => {
  it("has no key-change notifications: sessions follow changes by the periodic watch, as before", async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const server = await spawn(["--db", `${dir}/keywarden.db`]);
    expect(logLines(server, "keywarden http server listening")[0]).toMatchObject({ key_notifications: false });
    expect(logLines(server, "key-change notifications unavailable: sessions follow changes made elsewhere by the periodic key watch only")).toEqual([]);
  });
});
