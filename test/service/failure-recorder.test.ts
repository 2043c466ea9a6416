import { afterEach, describe, expect, it, vi } from "vitest";
import { generateToken } from "../../src/keys/token.js";
import { BufferedFailureRecorder } from "../../src/service/failure-recorder.js";
import type { RequestOrigin } from "../../src/service/types.js";
import { openSqliteHarness, secretOf, type Harness } from "../helpers/harness.js";
import type { SqliteKeyStore } from "../../src/store/sqlite.js";

const origin: RequestOrigin = { transport: "http", clientAddress: "203.0.113.7", userAgent: "probe/1" };
let harness: Harness<SqliteKeyStore>;
afterEach(() => harness?.close());

const failedRows = (h: Harness<SqliteKeyStore>) =>
  (h.store.db.prepare("SELECT organization_id, key_id, client_address, occurred_at, detail FROM key_events WHERE event_type = 'auth.failed' ORDER BY rowid").all() as {
    organization_id: string;
    key_id: string | null;
    client_address: string | null;
    occurred_at: string;
    detail: string;
  }[]).map((row) => ({ ...row, detail: JSON.parse(row.detail) as Record<string, unknown> }));

describe("BufferedFailureRecorder", () => {
  it("holds failures until a flush, then writes them in one transaction, with what it could not hold as a count", async () => {
    harness = await openSqliteHarness();
    const { store, principal } = harness;
    const recorder = new BufferedFailureRecorder(store, { intervalMs: 60_000, maxPending: 3 });
    const appendEvents = vi.spyOn(store, "appendEvents");
    const unknown = generateToken("kw");
    for (let i = 0; i < 5; i++) {
      recorder.record({
        refusal: { ok: false, reason: "not_found", keyId: null, keyPrefix: unknown.keyPrefix, organizationId: null },
        origin,
        detail: { path: "/mcp", attempt: i },
        at: `2026-06-01T12:00:0${i}.000Z`,
      });
    }
    recorder.count("http", "2026-06-01T12:00:09.000Z");
    expect([recorder.pendingCount, recorder.unrecordedCount]).toEqual([3, 3]);
    expect(failedRows(harness)).toEqual([]);

    await recorder.flush();
    expect(appendEvents).toHaveBeenCalledTimes(1);
    expect(failedRows(harness)).toEqual([
      ...[0, 1, 2].map((i) => ({
        organization_id: principal.organizationId,
        key_id: null,
        client_address: "203.0.113.7",
        occurred_at: `2026-06-01T12:00:0${i}.000Z`,
        detail: { reason: "not_found", key_prefix: unknown.keyPrefix, user_agent: "probe/1", path: "/mcp", attempt: i },
      })),
      {
        organization_id: principal.organizationId,
        key_id: null,
        client_address: null,
        occurred_at: "2026-06-01T12:00:09.000Z",
        detail: { reason: "not_recorded", count: 3, buffer_full: 2, over_limit: 1 },
      },
    ]);
    expect(JSON.stringify(failedRows(harness))).not.toContain(secretOf(unknown.token));
    expect([recorder.pendingCount, recorder.unrecordedCount]).toEqual([0, 0]);
    await recorder.flush(); // nothing pending: nothing written
    expect(appendEvents).toHaveBeenCalledTimes(1);
    await recorder.close();
  });

  it("counts a batch whose write failed instead of holding it again, and writes the count with the next batch", async () => {
    harness = await openSqliteHarness();
    const { store } = harness;
    const errors: unknown[] = [];
    const recorder = new BufferedFailureRecorder(store, { intervalMs: 60_000, maxPending: 10, onError: (error) => errors.push(error) });
    const failure = (at: string) => ({
      refusal: { ok: false as const, reason: "malformed" as const, keyId: null, keyPrefix: null, organizationId: null },
      origin,
      detail: {},
      at,
    });
    recorder.record(failure("2026-06-01T12:00:00.000Z"));
    recorder.record(failure("2026-06-01T12:00:01.000Z"));
    vi.spyOn(store, "appendEvents").mockRejectedValueOnce(new Error("disk full"));
    await expect(recorder.flush()).rejects.toThrow("disk full");
    expect([recorder.pendingCount, recorder.unrecordedCount]).toEqual([0, 2]);

    recorder.record(failure("2026-06-01T12:00:02.000Z"));
    await recorder.close();
    expect(failedRows(harness).map((row) => row.detail)).toEqual([
      { reason: "malformed", key_prefix: null, user_agent: "probe/1" },
      { reason: "not_recorded", count: 2, buffer_full: 2, over_limit: 0 },
    ]);
  });

  it("writes on its own after the interval, and at once after close", async () => {
    harness = await openSqliteHarness();
    const { store } = harness;
    const recorder = new BufferedFailureRecorder(store, { intervalMs: 20 });
    const failure = { refusal: { ok: false as const, reason: "missing" as const, keyId: null, keyPrefix: null, organizationId: null }, origin, detail: {}, at: "2026-06-01T12:00:00.000Z" };
    recorder.record(failure);
    for (let i = 0; i < 100 && failedRows(harness).length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(failedRows(harness)).toHaveLength(1);
    await recorder.close();
    await recorder.record(failure);
    expect(failedRows(harness)).toHaveLength(2);
  });
});
