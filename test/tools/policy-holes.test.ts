// Issue 9 (hardening): escalation and policy holes, each through a real MCP client, a real server
// and a real SQLite database. Every refusal is checked to have written nothing.
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterEach, describe, expect, it } from "vitest";
import type { Principal } from "../../src/service/principal.js";
import type { ApiKeyRecord } from "../../src/service/records.js";
import type { Policy } from "../../src/service/policy.js";
import { connectClient } from "../helpers/harness.js";
import { callError, callOk, DAY_MS, errorKeys, openWorld, type World } from "../helpers/lifecycle.js";

interface Created {
  id: string;
  key: string;
  key_prefix: string;
  scopes: string[];
  expires_at: string | null;
}

let world: World | undefined;
const extraClients: Client[] = [];
afterEach(async () => {
  await Promise.all(extraClients.splice(0).map((client) => client.close()));
  await world?.close();
  world = undefined;
});

async function open(policy: Partial<Policy> = {}): Promise<World> {
  world = await openWorld({ policy });
  return world;
}

/** An MCP client acting with one of `owner`'s keys, as over HTTP: its scopes are the key's. */
async function clientActingWith(w: World, owner: Principal, key: { id: string; scopes: string[] }): Promise<Client> {
  const principal: Principal = { ...owner, transport: "http", keyId: key.id, scopes: [...key.scopes], clientAddress: "127.0.0.1" };
  const client = await connectClient(w.harness.service, principal);
  extraClients.push(client);
  return client;
}

/** Refused with `code`, naming `keys`, and nothing written. */
async function expectRefused(w: World, client: Client, tool: string, args: Record<string, unknown>, code: string, keys: string[]) {
  const before = await w.harness.tableCounts();
  const error = await callError(client, tool, args);
  expect(error.code, error.message).toBe(code);
  expect(errorKeys(error)).toEqual(keys);
  expect(await w.harness.tableCounts()).toEqual(before);
  return error;
}

const verifyCode = async (w: World, token: string) => (await w.harness.service.verifyApiKey(token)).code;

describe("instants past 9999-12-31T23:59:59Z", () => {
  const noExpiry = { defaultExpiryDays: null, maxExpiryDays: null };

  it("refuses an expires_at past the bound, offsets that cross it and +010000 years, on create and update; the bound itself works and counts", async () => {
    const w = await open({ ...noExpiry, maxActiveKeysPerUser: 2 });
    const existing = await callOk<Created>(w.aliceClient, "create_api_key", { name: "existing" });
    for (const value of ["9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59.001Z", "9999-12-31T23:59:60Z"]) {
      for (const [tool, args] of [
        ["create_api_key", { name: "far" }],
        ["update_api_key", { id: existing.id }],
      ] as const) {
        const error = await expectRefused(w, w.aliceClient, tool, { ...args, expires_at: value }, "validation_error", ["expires_at"]);
        expect(error.errors[0]!.value).toBe(value);
      }
    }
    const crossing = await callError(w.aliceClient, "create_api_key", { name: "far", expires_at: "9999-12-31T23:59:59-00:01" });
    expect(crossing.errors).toEqual([{ key: "expires_at", message: "must be at most 9999-12-31T23:59:59Z", value: "9999-12-31T23:59:59-00:01" }]);
    const extended = await callError(w.aliceClient, "create_api_key", { name: "far", expires_at: "+010000-01-01T00:00:59.000Z" });
    expect(errorKeys(extended)).toEqual(["expires_at"]);

    // The bound is accepted, expressed in any offset, and such a key is active everywhere: in the
    // listing, in verification and in the cap (which it used to escape).
    const last = await callOk<Created>(w.aliceClient, "create_api_key", { name: "last", expires_at: "9999-12-31T23:00:59-00:59" });
    expect(last.expires_at).toBe("9999-12-31T23:59:59.000Z");
    expect(await verifyCode(w, last.key)).toBe("valid");
    const active = await callOk<{ keys: ApiKeyRecord[] }>(w.aliceClient, "list_api_keys", { status: "active" });
    // Same created_at: the listing orders them by their random ids.
    expect(active.keys.map((key) => `${key.name}:${key.status}`).sort()).toEqual(["existing:active", "last:active"]);
    await expectRefused(w, w.aliceClient, "create_api_key", { name: "third", expires_at: "9999-12-31T23:59:59Z" }, "max_keys_reached", ["limit"]);
    expect(await w.harness.store.countActiveKeys(w.alice.userId, w.harness.clock.current.toISOString())).toBe(2);
    expect((await w.harness.service.listUsers(w.root)).find((user) => user.name === "alice")?.active_keys).toBe(2);
  });

  it("refuses a default expiry that would pass the bound, naming expires_at", async () => {
    const w = await open({ defaultExpiryDays: 3_000_000, maxExpiryDays: null });
    const error = await expectRefused(w, w.aliceClient, "create_api_key", { name: "default" }, "validation_error", ["expires_at"]);
    expect(error.errors[0]!.message).toBe("would end after 9999-12-31T23:59:59Z, the latest instant keywarden stores");
    // An explicit, earlier expiry still works under that policy.
    const explicit = await callOk<Created>(w.aliceClient, "create_api_key", { name: "explicit", expires_at: "2030-01-01T00:00:00Z" });
    expect(explicit.expires_at).toBe("2030-01-01T00:00:00.000Z");
  });

  it("refuses a rotation grace that would pass the bound, and caps a successor's expiry at it", async () => {
    const w = await open(noExpiry);
    const lasting = await callOk<Created>(w.aliceClient, "create_api_key", { name: "lasting", expires_at: "9999-12-31T23:59:59Z" });
    // Its lifetime (about 7,970 years) counted from now would end past 9999: it ends at the bound.
    const successor = await callOk<Created & { previous_key_expires_at: string }>(w.aliceClient, "rotate_api_key", {
      id: lasting.id,
      grace_period_seconds: 60,
    });
    expect(successor.expires_at).toBe("9999-12-31T23:59:59.000Z");
    expect(await verifyCode(w, successor.key)).toBe("valid");

    w.harness.clock.current = new Date("9999-12-20T00:00:00.000Z");
    const late = await callOk<Created>(w.aliceClient, "create_api_key", { name: "late" });
    const error = await expectRefused(w, w.aliceClient, "rotate_api_key", { id: late.id, grace_period_seconds: 30 * 86_400 }, "validation_error", [
      "grace_period_seconds",
    ]);
    expect(error.errors[0]).toEqual({ key: "grace_period_seconds", message: "would end after 9999-12-31T23:59:59Z, the latest instant keywarden stores", value: 2_592_000 });
    const rotated = await callOk<{ previous_key_expires_at: string }>(w.aliceClient, "rotate_api_key", { id: late.id, grace_period_seconds: 86_400 });
    expect(rotated.previous_key_expires_at).toBe("9999-12-21T00:00:00.000Z");
  });
});

describe("admin is granted only by an admin", () => {
  it("leaves admin out of a project's defaults for a non-admin, and refuses when nothing else is left", async () => {
    const w = await open();
    await callOk(w.rootClient, "create_project", { slug: "ops", name: "Ops", default_scopes: ["admin", "ops:read"] });
    await callOk(w.rootClient, "create_project", { slug: "root-only", name: "Root only", default_scopes: ["admin"] });

    const mine = await callOk<Created>(w.aliceClient, "create_api_key", { name: "ops", project_reference: "ops" });
    expect(mine.scopes).toEqual(["ops:read"]);
    const error = await expectRefused(w, w.aliceClient, "create_api_key", { name: "root", project_reference: "root-only" }, "forbidden", ["scopes"]);
    expect(error.message).toMatch(/none of the scopes a new key here would get \(admin\)/);

    const roots = await callOk<Created>(w.rootClient, "create_api_key", { name: "ops", project_reference: "ops" });
    expect(roots.scopes).toEqual(["admin", "ops:read"]);
  });

  it("refuses a non-admin the rotation (and any other act) of an admin-scoped key it owns", async () => {
    const w = await open();
    // The operator minted alice an admin key (`keywarden admin create-key --user alice --scopes admin`).
    const operator = await w.harness.service.localPrincipal({ userName: "alice", transport: "cli", isAdmin: true });
    const adminKey = await w.harness.service.createApiKey(operator, { name: "alice admin", scopes: ["admin"] });

    const rotate = await expectRefused(w, w.aliceClient, "rotate_api_key", { id: adminKey.id, grace_period_seconds: 60 }, "forbidden", ["id"]);
    expect(rotate.errors).toEqual([{ key: "id", message: "missing scopes: admin", value: adminKey.id }]);
    expect(rotate.message).toMatch(/^you do not hold admin: you may rotate a key only when you hold every scope involved; admin is granted only by an admin/);
    await expectRefused(w, w.aliceClient, "update_api_key", { id: adminKey.id, name: "renamed" }, "forbidden", ["id"]);
    await expectRefused(w, w.aliceClient, "revoke_api_key", { id: adminKey.id }, "forbidden", ["id"]);
    expect((await w.harness.store.listKeys({ organizationId: w.alice.organizationId, userId: w.alice.userId, projectId: null, status: "all", now: w.harness.clock.current.toISOString(), after: null, limit: 10 })).map((key) => key.scopes)).toEqual([["admin"]]);

    // An admin may.
    const rotated = await callOk<Created>(w.rootClient, "rotate_api_key", { id: adminKey.id, grace_period_seconds: 60 });
    expect(rotated.scopes).toEqual(["admin"]);
  });
});

describe("a key cannot keep itself alive, nor act on a stronger key", () => {
  it("refuses to move a key's expiry later unless the caller is an admin; earlier is fine", async () => {
    const w = await open();
    const key = await callOk<Created>(w.aliceClient, "create_api_key", { name: "self" });
    const acting = await clientActingWith(w, w.alice, key);
    const inDays = (days: number) => new Date(w.harness.clock.current.getTime() + days * DAY_MS).toISOString();

    const error = await expectRefused(w, acting, "update_api_key", { id: key.id, expires_at: inDays(365) }, "forbidden", ["expires_at"]);
    expect(error.message).toMatch(/^only an admin may lengthen a key's life: .* is later than the key's expiry /);
    expect(error.errors).toEqual([{ key: "expires_at", message: "lengthens_key_life", value: inDays(365) }]);

    expect((await callOk<ApiKeyRecord>(acting, "update_api_key", { id: key.id, expires_at: inDays(30) })).expires_at).toBe(inDays(30));
    // Again, and again: once shortened, the same key cannot win the time back, nor can its user.
    await expectRefused(w, acting, "update_api_key", { id: key.id, expires_at: inDays(60) }, "forbidden", ["expires_at"]);
    await expectRefused(w, w.aliceClient, "update_api_key", { id: key.id, expires_at: inDays(31) }, "forbidden", ["expires_at"]);
    expect((await callOk<ApiKeyRecord>(w.rootClient, "update_api_key", { id: key.id, expires_at: inDays(365) })).expires_at).toBe(inDays(365));
  });

  it("lets a key update, rotate or revoke another key of its user only when it holds every scope of that key", async () => {
    const w = await open();
    const weak = await w.harness.service.createApiKey(w.alice, { name: "weak", scopes: ["tools:execute"] });
    const strong = await callOk<Created>(w.aliceClient, "create_api_key", { name: "strong" });
    expect(strong.scopes).toEqual(["tools:read", "tools:execute"]);
    const weakClient = await clientActingWith(w, w.alice, weak);
    const earlier = new Date(w.harness.clock.current.getTime() + DAY_MS).toISOString();

    for (const [tool, args] of [
      ["update_api_key", { id: strong.id, name: "mine now" }],
      ["update_api_key", { id: strong.id, scopes: ["tools:execute"] }],
      ["update_api_key", { id: strong.id, expires_at: earlier }],
      ["rotate_api_key", { id: strong.id, grace_period_seconds: 60 }],
      ["revoke_api_key", { id: strong.id }],
    ] as const) {
      const error = await expectRefused(w, weakClient, tool, args, "forbidden", ["id"]);
      expect(error.errors[0]!.message).toBe("missing scopes: tools:read");
    }
    expect(await verifyCode(w, strong.key)).toBe("valid");

    // The stronger key may act on the weaker one, and a key on itself.
    const strongClient = await clientActingWith(w, w.alice, strong);
    expect((await callOk<ApiKeyRecord>(strongClient, "update_api_key", { id: weak.id, name: "weak, renamed" })).name).toBe("weak, renamed");
    expect((await callOk<ApiKeyRecord>(weakClient, "update_api_key", { id: weak.id, description: "narrow" })).description).toBe("narrow");
    expect((await callOk<ApiKeyRecord>(strongClient, "revoke_api_key", { id: weak.id })).status).toBe("revoked");
  });
});

describe("one overlap per rotation chain", () => {
  it("ends the predecessor's grace when its successor is rotated: cap + 1 working keys, not cap + rotations", async () => {
    const w = await open({ maxActiveKeysPerUser: 5 });
    const tokens: string[] = [];
    let newest: Created | undefined;
    for (let i = 0; i < 5; i++) {
      newest = await callOk<Created>(w.aliceClient, "create_api_key", { name: `k${i}` });
      tokens.push(newest.key);
    }
    const chain = [newest!.id];
    for (let i = 0; i < 10; i++) {
      newest = await callOk<Created>(w.aliceClient, "rotate_api_key", { id: newest!.id, grace_period_seconds: 30 * 86_400 });
      tokens.push(newest.key);
      chain.push(newest.id);
    }
    const codes = await Promise.all(tokens.map((token) => verifyCode(w, token)));
    expect(codes.filter((code) => code === "valid")).toHaveLength(6);
    // The four untouched keys, the chain's head and its one predecessor in grace.
    expect(codes).toEqual([...Array(4).fill("valid"), ...Array(9).fill("expired"), "valid", "valid"]);
    const active = await callOk<{ keys: ApiKeyRecord[] }>(w.aliceClient, "list_api_keys", { status: "active" });
    expect(active.keys).toHaveLength(6);

    // The ended grace is in the audit log, on the key whose grace ended.
    const now = w.harness.clock.current.toISOString();
    const ended = (await w.harness.store.listEvents(chain[0]!)).filter((event) => event.event_type === "key.grace_ended");
    expect(ended).toHaveLength(1);
    expect(ended[0]!.detail).toEqual({
      rotated_key_id: chain[1],
      new_key_id: chain[2],
      from: { expires_at: new Date(Date.parse(now) + 30 * DAY_MS).toISOString() },
      to: { expires_at: now },
    });
    expect((await callOk<ApiKeyRecord>(w.aliceClient, "get_api_key", { id: chain[0]! })).status).toBe("expired");
  });

  it("ends the predecessor's grace when its successor is revoked: create, rotate with grace, revoke the successor never piles up keys", async () => {
    const w = await open({ maxActiveKeysPerUser: 2 });
    const predecessors: Created[] = [];
    for (let i = 0; i < 8; i++) {
      const created = await callOk<Created>(w.aliceClient, "create_api_key", { name: `c${i}` });
      const successor = await callOk<Created>(w.aliceClient, "rotate_api_key", { id: created.id, grace_period_seconds: 30 * 86_400 });
      await callOk(w.aliceClient, "revoke_api_key", { id: successor.id });
      predecessors.push(created);
    }
    // Each predecessor stopped with its successor: none is left working outside the cap.
    expect(await Promise.all(predecessors.map((key) => verifyCode(w, key.key)))).toEqual(Array(8).fill("expired"));
    const active = await callOk<{ keys: ApiKeyRecord[] }>(w.aliceClient, "list_api_keys", { status: "active" });
    expect(active.keys).toHaveLength(0);
    const ended = (await w.harness.store.listEvents(predecessors[0]!.id)).filter((event) => event.event_type === "key.grace_ended");
    expect(ended.map((event) => Object.keys(event.detail).sort())).toEqual([["from", "revoked_key_id", "to"]]);
  });

  it("ends the predecessor's grace no later than its successor's new expiry", async () => {
    const w = await open({ maxActiveKeysPerUser: 2 });
    const created = await callOk<Created>(w.aliceClient, "create_api_key", { name: "c" });
    const successor = await callOk<Created>(w.aliceClient, "rotate_api_key", { id: created.id, grace_period_seconds: 30 * 86_400 });
    const soon = new Date(w.harness.clock.current.getTime() + 3_600_000).toISOString();
    await callOk(w.aliceClient, "update_api_key", { id: successor.id, expires_at: soon });
    expect((await callOk<ApiKeyRecord>(w.aliceClient, "get_api_key", { id: created.id })).expires_at).toBe(soon);
    w.harness.clock.advance(2 * 3_600_000);
    expect(await verifyCode(w, created.key)).toBe("expired");
    expect(await verifyCode(w, successor.key)).toBe("expired");
  });
});
