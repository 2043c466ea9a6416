import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ServiceError } from "../../src/service/errors.js";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import { KeyService } from "../../src/service/service.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import { openSqliteHarness, tableCounts, type Harness } from "../helpers/harness.js";

let harness: Harness<SqliteKeyStore>;
beforeEach(async () => {
  harness = await openSqliteHarness();
});
afterEach(async () => {
  await harness.close();
});

/** What the database says about the successors of one key: there must be exactly one. */
function successorsOf(store: SqliteKeyStore, oldId: string) {
  const successors = store.db.prepare<[string], { id: string }>("SELECT id FROM api_keys WHERE rotated_from = ?").all(oldId);
  const old = store.db.prepare<[string], { replaced_by: string | null }>("SELECT replaced_by FROM api_keys WHERE id = ?").get(oldId)!;
  const events = store.db
    .prepare<[], { key_id: string }>("SELECT key_id FROM key_events WHERE event_type = 'key.rotated' ORDER BY key_id")
    .all();
  return { successors: successors.map((row) => row.id), replacedBy: old.replaced_by, rotatedEvents: events.map((row) => row.key_id) };
}

function tally(results: PromiseSettledResult<{ id: string }>[]) {
  const winners = results.filter((result): result is PromiseFulfilledResult<{ id: string }> => result.status === "fulfilled");
  const reasons = results
    .filter((result): result is PromiseRejectedResult => result.status === "rejected")
    .map((result) => (result.reason instanceof ServiceError ? `${result.reason.code}:${result.reason.errors[0]?.message}` : String(result.reason)));
  return { winners: winners.map((result) => result.value.id), reasons };
}

describe("concurrent rotations of one key", () => {
  it.each([0, 3600])("leave exactly one successor: 50 at once on one service (grace %i)", async (grace) => {
    const old = await harness.service.createApiKey(harness.principal, { name: "hot" });
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => harness.service.rotateApiKey(harness.principal, { id: old.id, grace_period_seconds: grace })),
    );
    const { winners, reasons } = tally(results);
    expect(winners).toHaveLength(1);
    expect(reasons).toEqual(Array(49).fill("conflict:already_rotated"));
    expect(successorsOf(harness.store, old.id)).toEqual({
      successors: winners,
      replacedBy: winners[0],
      rotatedEvents: [old.id, winners[0]!].sort(),
    });
    expect(tableCounts(harness.store).api_keys).toBe(2);
  });

  it("leave exactly one successor: 50 at once from two connections to the same file", async () => {
    const old = await harness.service.createApiKey(harness.principal, { name: "hot" });
    const second = SqliteKeyStore.open({ path: harness.dbPath });
    try {
      const other = new KeyService({ store: second, clock: harness.clock.now, config: { policy: DEFAULT_POLICY, keyBrand: "kw" } });
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? harness.service : other).rotateApiKey(harness.principal, { id: old.id })),
      );
      const { winners, reasons } = tally(results);
      expect(winners).toHaveLength(1);
      expect(reasons).toEqual(Array(49).fill("conflict:already_rotated"));
      expect(successorsOf(harness.store, old.id).successors).toEqual(winners);
      expect(successorsOf(second, old.id).replacedBy).toBe(winners[0]);
    } finally {
      await second.close();
    }
  });

  it("leave exactly one successor: 48 at once from four processes", async () => {
    const entry = join(process.cwd(), "dist", "index.js");
    expect(existsSync(entry), "dist/index.js is missing: run npm run build before the tests").toBe(true);
    // Child processes use the real clock: mint the key with it too.
    const realClock = new KeyService({ store: harness.store });
    const old = await realClock.createApiKey(harness.principal, { name: "hot" });
    const startAt = Date.now() + 1500;
    const script = `
      import { KeyService, SqliteKeyStore } from ${JSON.stringify(pathToFileURL(entry).href)};
      const store = SqliteKeyStore.open({ path: ${JSON.stringify(harness.dbPath)}, busyTimeoutMs: 20000 });
      const service = new KeyService({ store });
      const principal = await service.localPrincipal({ userName: "alice", transport: "library", isAdmin: false });
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, ${startAt} - Date.now())));
      const results = await Promise.allSettled(Array.from({ length: 12 }, () => service.rotateApiKey(principal, { id: ${JSON.stringify(old.id)} })));
      process.stdout.write(JSON.stringify(results.map((r) => r.status === "fulfilled" ? "ok" : r.reason.code + ":" + (r.reason.errors?.[0]?.message ?? r.reason.message))));
      await store.close();
    `;
    const run = () =>
      new Promise<string[]>((resolve, reject) => {
        const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (chunk) => (out += chunk));
        child.stderr.on("data", (chunk) => (err += chunk));
        child.on("error", reject);
        child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out) as string[]) : reject(new Error(`child exited ${code}: ${err}`))));
      });
    const outcomes = (await Promise.all([run(), run(), run(), run()])).flat();
    expect(outcomes).toHaveLength(48);
    expect(outcomes.filter((outcome) => outcome === "ok")).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome !== "ok")).toEqual(Array(47).fill("conflict:already_rotated"));
    const { successors, replacedBy } = successorsOf(harness.store, old.id);
    expect(successors).toHaveLength(1);
    expect(replacedBy).toBe(successors[0]);
  }, 60_000);
});
