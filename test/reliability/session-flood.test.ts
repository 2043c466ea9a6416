import { afterAll, describe, expect, it } from "vitest";
import { initialize, inSession, openGetStream, startInProcess, type InProcessServer, type SseStream } from "../helpers/inprocess.js";
import { runCli } from "../helpers/spawn.js";
import { connectHttp, pool } from "./support.js";

// Denial of service through sessions (README, "Sessions"): one key with only tools:read opens
// sessions, each with a GET stream, without end and never sends DELETE. Another user's real MCP
// clients (initialize, a tool call, close() without DELETE, as most clients do) must never be
// refused; the flooding key never holds more than its per-key limit; and once the key is revoked
// by another process (`keywarden admin revoke-key`), every one of its streams ends.
//
// --max-sessions is set below the flood's size so that the flood would fill the table in this
// short run (the old code answered every other user 503 once it was full).

const FLOOD_SESSIONS = 300;
const MAX_SESSIONS = 100;
const PER_KEY = 10;

let kw: InProcessServer | undefined;
afterAll(async () => {
  await kw?.close();
});

describe("one key flooding sessions with GET streams", () => {
  it(`${FLOOD_SESSIONS} sessions with streams from one key never stop another user's initialize; revoking the key ends its streams`, async () => {
    kw = await startInProcess({ maxSessions: MAX_SESSIONS, maxSessionsPerKey: PER_KEY, keyWatchIntervalMs: 250 });
    const server = kw;
    const flooder = await server.mint("flooder", ["tools:read"], "mallory");
    const user = await server.mint("user", ["tools:read", "tools:execute"], "alice");

    const streams: SseStream[] = [];
    const floodStatuses: number[] = [];
    let largestTable = 0;
    let flooding = true;
    const flood = pool(
      Array.from({ length: FLOOD_SESSIONS }, (_, i) => i),
      16,
      async () => {
        const opened = await initialize(server.url, flooder.key);
        floodStatuses.push(opened.status);
        if (opened.sessionId === undefined) return;
        const stream = openGetStream(server.url, flooder.key, opened.sessionId);
        streams.push(stream);
        // A stream of a session already evicted by a later initialize gets 404 and ends: both count.
        await stream.status;
        largestTable = Math.max(largestTable, server.server.sessionCount());
      },
    ).finally(() => (flooding = false));

    // The other user: real clients, one after another, for as long as the flood runs.
    const userOutcomes: string[] = [];
    while (flooding || userOutcomes.length < 5) {
      try {
        const { client } = await connectHttp(server.url, user.key, "victim/1.0");
        const listed = await client.listTools();
        userOutcomes.push(listed.tools.some((tool) => tool.name === "whoami") ? "ok" : "no tools");
        await client.close(); // no DELETE, as the SDK's close() does
      } catch (error) {
        userOutcomes.push(`failed: ${(error as Error).message}`);
      }
      largestTable = Math.max(largestTable, server.server.sessionCount());
    }
    await flood;

    expect(userOutcomes.filter((outcome) => outcome !== "ok")).toStrictEqual([]);
    expect(floodStatuses.filter((status) => status !== 200)).toStrictEqual([]);
    // Neither key ever held more than its limit: the table never came near --max-sessions.
    expect(largestTable).toBeLessThanOrEqual(2 * PER_KEY);
    expect(server.server.sessionCount()).toBeLessThanOrEqual(2 * PER_KEY);

    // Revoked by another process on the same database: every stream of the key ends.
    const revoked = runCli(["admin", "revoke-key", flooder.id, "--db", server.dbPath, "--reason", "flooding"]);
    expect(revoked.status, revoked.stderr).toBe(0);
    await Promise.all(streams.map((stream) => stream.ended));
    expect(streams.length).toBe(FLOOD_SESSIONS);
    const whys = [...server.closedSessions().values()];
    expect(whys.filter((why) => why === "revoked").length).toBeGreaterThan(0);
    expect(whys.filter((why) => why === "revoked").length).toBeLessThanOrEqual(PER_KEY);

    // The other user is still served, and the flooder is refused.
    const after = await initialize(server.url, user.key);
    expect(after.status).toBe(200);
    expect(await inSession(server.url, user.key, after.sessionId!)).toBe(200);
    expect((await initialize(server.url, flooder.key)).status).toBe(401);
  });
});
