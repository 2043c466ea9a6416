// The write deciders are pure: rows, input, principal and now in; a plan or a refusal out. Tested
// here on hand-made rows; test/store/contract.ts shows a store applies what they plan.
import { describe, expect, it } from "vitest";
import { decideCreate } from "../../src/service/create.js";
import type { ServiceError } from "../../src/service/errors.js";
import type { Principal } from "../../src/service/principal.js";
import { decideRevoke } from "../../src/service/revoke.js";
import { decideRotate, type RotateDecisionInput } from "../../src/service/rotate.js";
import { decideUpdate } from "../../src/service/update.js";
import type { ApiKeyRow, CurrentRows, Decision } from "../../src/store/types.js";

const NOW = "2026-06-01T12:00:00.000Z";
const at = (seconds: number): string => new Date(Date.parse(NOW) + seconds * 1000).toISOString();

const alice: Principal = {
  userId: "usr_alice",
  userName: "alice",
  organizationId: "org_1",
  transport: "stdio",
  keyId: null,
  scopes: null,
  isAdmin: false,
  clientAddress: null,
};
const admin: Principal = { ...alice, userId: "usr_admin", userName: "root", isAdmin: true };
/** Alice acting with a key that holds only tools:read. */
const aliceReadOnly: Principal = { ...alice, transport: "http", keyId: "key_acting", scopes: ["tools:read"], clientAddress: "203.0.113.9" };

function key(id: string, fields: Partial<ApiKeyRow> = {}): ApiKeyRow {
  return {
    id,
    organization_id: "org_1",
    user_id: "usr_alice",
    project_id: null,
    name: "ci",
    description: "for CI",
    key_prefix: `kw_${id.slice(4).padEnd(12, "0")}`,
    key_hash: new Uint8Array(32),
    hash_algorithm: "sha256",
    scopes: ["tools:read", "tools:execute"],
    created_at: at(-86_400),
    created_by_user_id: "usr_alice",
    created_by_key_id: null,
    expires_at: at(86_400),
    last_used_at: null,
    last_used_ip: null,
    last_used_user_agent: null,
    revoked_at: null,
    revoked_reason: null,
    rotated_from: null,
    replaced_by: null,
    ...fields,
  };
}

const rows = (keys: ApiKeyRow[], activeKeys: number | null = null): CurrentRows => ({ keys: new Map(keys.map((k) => [k.id, k])), activeKeys });

function refusalOf<T>(decision: Decision<T, ServiceError>): { code: string; field: string | undefined; message: string | undefined } {
  expect(decision.ok).toBe(false);
  const { refusal } = decision as { refusal: ServiceError };
  return { code: refusal.code, field: refusal.errors[0]?.key, message: refusal.errors[0]?.message };
}

function planOf<T>(decision: Decision<T, ServiceError>) {
  if (!decision.ok) throw new Error(`refused: ${decision.refusal.message}`);
  return decision;
}

describe("decideCreate", () => {
  const fresh = key("key_new");
  it("inserts the key with its key.created event below the cap", () => {
    const decision = planOf(decideCreate(rows([], 4), { key: fresh, maxActiveKeys: 5 }, alice, NOW));
    expect(decision.result).toBe(fresh);
    expect(decision.plan).toEqual({
      insertKeys: [fresh],
      updateKeys: [],
      events: [
        {
          organization_id: "org_1",
          key_id: "key_new",
          event_type: "key.created",
          actor_user_id: "usr_alice",
          actor_key_id: null,
          transport: "stdio",
          client_address: null,
          occurred_at: NOW,
          detail: { name: "ci", project_id: null, scopes: ["tools:read", "tools:execute"], expires_at: at(86_400) },
        },
      ],
    });
  });

  it("throws without the owner's count rather than skip the cap", () => {
    expect(() => decideCreate(rows([]), { key: fresh, maxActiveKeys: 5 }, alice, NOW)).toThrow(/activeKeysOf/);
  });

  it("refuses at the cap with max_keys_reached, naming the count and the limit", () => {
    const decision = decideCreate(rows([], 5), { key: fresh, maxActiveKeys: 5 }, alice, NOW);
    expect(refusalOf(decision)).toEqual({ code: "max_keys_reached", field: "limit", message: "max_keys_reached" });
    expect((decision as { refusal: ServiceError }).refusal.message).toContain("already holds 5 active keys");
  });
});

describe("decideUpdate", () => {
  const current = key("key_a");
  const update = (changes: Parameters<typeof decideUpdate>[1]["changes"], principal = alice, keys = [current]) =>
    decideUpdate(rows(keys), { id: "key_a", changes }, principal, NOW);

  it("answers not_found for a missing key and for another user's key (not for an admin)", () => {
    expect(refusalOf(update({ name: "x" }, alice, []))).toMatchObject({ code: "not_found", field: "id" });
    const bobs = key("key_a", { user_id: "usr_bob" });
    expect(refusalOf(update({ name: "x" }, alice, [bobs]))).toMatchObject({ code: "not_found" });
    expect(refusalOf(update({ name: "x" }, { ...admin, organizationId: "org_2" }, [bobs]))).toMatchObject({ code: "not_found" });
    expect(planOf(update({ name: "x" }, admin, [bobs])).result.name).toBe("x");
  });

  it("moves an expiry only on an active key that no rotation replaced", () => {
    expect(refusalOf(update({ expires_at: at(60) }, alice, [key("key_a", { replaced_by: "key_b" })]))).toEqual({ code: "conflict", field: "expires_at", message: "key_rotated" });
    expect(refusalOf(update({ expires_at: at(60) }, alice, [key("key_a", { revoked_at: at(-1) })]))).toEqual({ code: "conflict", field: "expires_at", message: "key_not_active" });
    expect(refusalOf(update({ expires_at: at(60) }, alice, [key("key_a", { expires_at: NOW })]))).toEqual({ code: "conflict", field: "expires_at", message: "key_not_active" });
    // Other fields of a revoked key may still change.
    expect(planOf(update({ name: "old" }, alice, [key("key_a", { revoked_at: at(-1) })])).result.name).toBe("old");
  });

  it("narrows scopes for anyone, widens them for an admin only", () => {
    expect(refusalOf(update({ scopes: ["tools:read", "admin"] }))).toEqual({ code: "forbidden", field: "scopes", message: "not on the key: admin" });
    expect(planOf(update({ scopes: ["tools:read"] })).result.scopes).toEqual(["tools:read"]);
    expect(planOf(update({ scopes: ["tools:read", "orders:write"] }, admin)).result.scopes).toEqual(["tools:read", "orders:write"]);
  });

  it("lets a key act only on keys whose every scope it holds", () => {
    expect(refusalOf(update({ name: "x" }, aliceReadOnly))).toEqual({ code: "forbidden", field: "id", message: "missing scopes: tools:execute" });
    expect(planOf(update({ name: "x" }, aliceReadOnly, [key("key_a", { scopes: ["tools:read"] })])).result.name).toBe("x");
  });

  it("lets only an admin lengthen a key's life", () => {
    expect(refusalOf(update({ expires_at: at(90_000) }))).toEqual({ code: "forbidden", field: "expires_at", message: "lengthens_key_life" });
    expect(planOf(update({ expires_at: at(60) })).result.expires_at).toBe(at(60));
    expect(planOf(update({ expires_at: at(90_000) }, admin)).result.expires_at).toBe(at(90_000));
    // A key without expiry: any expiry shortens it.
    expect(planOf(update({ expires_at: at(60) }, alice, [key("key_a", { expires_at: null })])).result.expires_at).toBe(at(60));
  });

  it("writes only what really changes, with one event naming it (from/to except for the description)", () => {
    const decision = planOf(update({ name: "ci", description: "new text", scopes: ["tools:read"] }));
    expect(decision.plan.insertKeys).toEqual([]);
    expect(decision.plan.updateKeys).toEqual([{ id: "key_a", set: { description: "new text", scopes: ["tools:read"] } }]);
    expect(decision.plan.events.map((e) => [e.key_id, e.event_type, e.detail])).toEqual([
      ["key_a", "key.updated", { changed: ["description", "scopes"], from: { scopes: ["tools:read", "tools:execute"] }, to: { scopes: ["tools:read"] } }],
    ]);
    expect(decision.result).toEqual({ ...current, description: "new text", scopes: ["tools:read"] });
  });

  it("writes nothing, not even an event, when nothing changes", () => {
    const decision = planOf(update({ name: "ci", scopes: ["tools:read", "tools:execute"] }));
    expect(decision.plan).toEqual({ insertKeys: [], updateKeys: [], events: [] });
    expect(decision.result).toBe(current);
  });
});

describe("decideRotate", () => {
  const old = key("key_old");
  const successor = key("key_new", { rotated_from: "key_old", created_at: NOW, expires_at: at(2 * 86_400) });
  const input = (fields: Partial<RotateDecisionInput> = {}): RotateDecisionInput => ({
    id: "key_old",
    successor,
    expected: old,
    graceSeconds: 0,
    graceUntil: NOW,
    ...fields,
  });
  const rotate = (keys: ApiKeyRow[], fields: Partial<RotateDecisionInput> = {}, principal = alice) => decideRotate(rows(keys), input(fields), principal, NOW);

  it("refuses a missing or invisible key, then replaced before revoked or expired, then a changed one", () => {
    expect(refusalOf(rotate([]))).toMatchObject({ code: "not_found" });
    expect(refusalOf(rotate([key("key_old", { user_id: "usr_bob" })]))).toMatchObject({ code: "not_found" });
    expect(refusalOf(rotate([key("key_old", { replaced_by: "key_x", revoked_at: at(-5) })]))).toEqual({ code: "conflict", field: "id", message: "already_rotated" });
    expect(refusalOf(rotate([key("key_old", { revoked_at: at(-5) })]))).toEqual({ code: "conflict", field: "id", message: "revoked" });
    expect(refusalOf(rotate([key("key_old", { expires_at: NOW })]))).toEqual({ code: "conflict", field: "id", message: "expired" });
    // Narrowed since the successor was built: minting from the stale read would undo it.
    expect(refusalOf(rotate([key("key_old", { scopes: ["tools:read"] })]))).toEqual({ code: "conflict", field: "id", message: "changed" });
    expect(refusalOf(rotate([old], {}, aliceReadOnly))).toEqual({ code: "forbidden", field: "id", message: "missing scopes: tools:execute" });
  });

  it("without grace revokes the old key now, its expiry untouched, and links both", () => {
    const decision = planOf(rotate([old]));
    expect(decision.plan.insertKeys).toEqual([successor]);
    expect(decision.plan.updateKeys).toEqual([
      { id: "key_old", set: { replaced_by: "key_new", expires_at: old.expires_at, revoked_at: NOW, revoked_reason: "rotated" } },
    ]);
    const detail = {
      previous_key_id: "key_old",
      new_key_id: "key_new",
      grace_period_seconds: 0,
      new_key_expires_at: successor.expires_at,
      previous_key_expires_at: NOW,
      previous_key_revoked: true,
    };
    expect(decision.plan.events.map((e) => [e.key_id, e.event_type, e.detail])).toEqual([
      ["key_old", "key.rotated", detail],
      ["key_new", "key.rotated", detail],
    ]);
    expect(decision.result).toEqual({ oldKey: { ...old, replaced_by: "key_new", revoked_at: NOW, revoked_reason: "rotated" }, newKey: successor });
  });

  it("with grace lets the old key expire at the end of it, or at its own expiry when sooner", () => {
    const graced = planOf(rotate([old], { graceSeconds: 600, graceUntil: at(600) }));
    expect(graced.plan.updateKeys[0]!.set).toEqual({ replaced_by: "key_new", expires_at: at(600), revoked_at: null, revoked_reason: null });
    expect(graced.plan.events[0]!.detail).toMatchObject({ grace_period_seconds: 600, previous_key_expires_at: at(600), previous_key_revoked: false });
    const soon = key("key_old", { expires_at: at(100) });
    const sooner = planOf(rotate([soon], { expected: soon, graceSeconds: 600, graceUntil: at(600) }));
    expect(sooner.plan.updateKeys[0]!.set.expires_at).toBe(at(100));
    const never = key("key_old", { expires_at: null });
    expect(planOf(rotate([never], { expected: never, graceSeconds: 600, graceUntil: at(600) })).plan.updateKeys[0]!.set.expires_at).toBe(at(600));
  });

  it("ends a predecessor's grace now while it still works, and leaves one that no longer works alone", () => {
    const middle = key("key_old", { rotated_from: "key_first" });
    const inGrace = key("key_first", { replaced_by: "key_old", expires_at: at(300) });
    const decision = planOf(rotate([middle, inGrace], { expected: middle, graceSeconds: 600, graceUntil: at(600) }));
    expect(decision.plan.updateKeys.map((u) => [u.id, u.set])).toEqual([
      ["key_old", { replaced_by: "key_new", expires_at: at(600), revoked_at: null, revoked_reason: null }],
      ["key_first", { expires_at: NOW }],
    ]);
    expect(decision.plan.events.at(-1)).toMatchObject({
      key_id: "key_first",
      event_type: "key.grace_ended",
      detail: { rotated_key_id: "key_old", new_key_id: "key_new", from: { expires_at: at(300) }, to: { expires_at: NOW } },
    });
    for (const gone of [key("key_first", { replaced_by: "key_old", revoked_at: at(-1) }), key("key_first", { replaced_by: "key_old", expires_at: at(-1) })]) {
      const alone = planOf(rotate([middle, gone], { expected: middle }));
      expect(alone.plan.updateKeys.map((u) => u.id)).toEqual(["key_old"]);
      expect(alone.plan.events.map((e) => e.event_type)).toEqual(["key.rotated", "key.rotated"]);
    }
  });
});

describe("decideRevoke", () => {
  const current = key("key_a");
  const revoke = (keys: ApiKeyRow[], principal = alice, reason: string | null = "leaked") => decideRevoke(rows(keys), { id: "key_a", reason }, principal, NOW);

  it("revokes now with the reason and one key.revoked event by the acting principal", () => {
    const readable = key("key_a", { scopes: ["tools:read"] });
    const decision = planOf(revoke([readable], aliceReadOnly, null));
    expect(decision.plan).toEqual({
      insertKeys: [],
      updateKeys: [{ id: "key_a", set: { revoked_at: NOW, revoked_reason: null } }],
      events: [
        {
          organization_id: "org_1",
          key_id: "key_a",
          event_type: "key.revoked",
          actor_user_id: "usr_alice",
          actor_key_id: "key_acting",
          transport: "http",
          client_address: "203.0.113.9",
          occurred_at: NOW,
          detail: { reason: null },
        },
      ],
    });
    expect(decision.result).toEqual({ key: { ...readable, revoked_at: NOW, revoked_reason: null }, changed: true });
  });

  it("keeps the first revocation: a second changes nothing and writes no event", () => {
    const revoked = key("key_a", { revoked_at: at(-60), revoked_reason: "first" });
    const decision = planOf(revoke([revoked]));
    expect(decision.plan).toEqual({ insertKeys: [], updateKeys: [], events: [] });
    expect(decision.result).toEqual({ key: revoked, changed: false });
  });

  it("refuses a missing or invisible key, and a weaker key, revoked or not", () => {
    expect(refusalOf(revoke([]))).toMatchObject({ code: "not_found", field: "id" });
    expect(refusalOf(revoke([key("key_a", { user_id: "usr_bob" })]))).toMatchObject({ code: "not_found" });
    expect(refusalOf(revoke([current], aliceReadOnly))).toEqual({ code: "forbidden", field: "id", message: "missing scopes: tools:execute" });
    expect(refusalOf(revoke([key("key_a", { revoked_at: at(-1) })], aliceReadOnly))).toMatchObject({ code: "forbidden" });
    expect(planOf(revoke([key("key_a", { user_id: "usr_bob" })], admin)).result.changed).toBe(true);
  });
});
