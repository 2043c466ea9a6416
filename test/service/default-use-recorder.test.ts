import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultUseRecorder, verifyApiKey } from "../../src/index.js";
import { KeyService } from "../../src/service/service.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import { openSqliteHarness, type Harness } from "../helpers/harness.js";

let harness: Harness<SqliteKeyStore>;
beforeEach(async () => {
  harness = await openSqliteHarness();
});
afterEach(async () => {
  await harness.close();
});

const lastUses = (store: SqliteKeyStore) =>
  store.db.prepare<[], { key_id: string; last_used_at: string }>("SELECT key_id, last_used_at FROM key_usage").all();

describe("verifyApiKey(store, token): the library's default last-use recorder", () => {
  it("batches last use per store: nothing written per call, one recorder per store, written by store.close()", async () => {
    // verifyApiKey(store, …) judges expiry by the real clock: mint with the real clock too.
    const created = await new KeyService({ store: harness.store }).createApiKey(harness.principal, { name: "k" });
    for (let i = 0; i < 3; i++) expect((await verifyApiKey(harness.store, created.key)).code).toBe("valid");

    const recorder = defaultUseRecorder(harness.store);
    expect(recorder.pendingCount).toBe(1);
    expect(lastUses(harness.store)).toEqual([]);
    // One per store, whatever the options: another pepper or brand shares it.
    expect((await verifyApiKey(harness.store, created.key, { requiredScopes: ["tools:read"] })).code).toBe("valid");
    expect(defaultUseRecorder(harness.store)).toBe(recorder);
    const other = SqliteKeyStore.open({ path: ":memory:" });
    expect(defaultUseRecorder(other)).not.toBe(recorder);
    await other.close();

    await harness.store.close();
    const reopened = SqliteKeyStore.open({ path: harness.dbPath });
    try {
      expect(lastUses(reopened)).toEqual([{ key_id: created.id, last_used_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) }]);
    } finally {
      await reopened.close();
    }
  });

  it("writes on flush() too, and does not record a use of an invalid token", async () => {
    const created = await new KeyService({ store: harness.store }).createApiKey(harness.principal, { name: "k" });
    // Another last character (1 in 62 tokens ends in "x": that was this test's own flake).
    const mistyped = `${created.key.slice(0, -1)}${created.key.endsWith("x") ? "y" : "x"}`;
    expect((await verifyApiKey(harness.store, mistyped)).valid).toBe(false);
    expect(defaultUseRecorder(harness.store).pendingCount).toBe(0);
    expect((await verifyApiKey(harness.store, created.key)).code).toBe("valid");
    await defaultUseRecorder(harness.store).flush();
    expect(lastUses(harness.store).map((row) => row.key_id)).toEqual([created.id]);
  });
});
