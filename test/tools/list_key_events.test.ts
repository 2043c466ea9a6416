import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KeyEventRecord } from "../../src/service/records.js";
import { callError, callOk, errorKeys, expectNoSecrets, openWorld, type World } from "../helpers/lifecycle.js";

interface Page {
  events: KeyEventRecord[];
  next_cursor: string | null;
}
interface Created {
  id: string;
  key: string;
}

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(async () => {
  await world.close();
});

async function walk(client = world.aliceClient, args: Record<string, unknown> = {}, limit = 2): Promise<KeyEventRecord[]> {
  const events: KeyEventRecord[] = [];
  let cursor: string | null = null;
  do {
    const page: Page = await callOk<Page>(client, "list_key_events", { ...args, limit, ...(cursor ? { cursor } : {}) });
    expect(page.events.length).toBeLessThanOrEqual(limit);
    events.push(...page.events);
    cursor = page.next_cursor;
  } while (cursor);
  return events;
}

describe("list_key_events", () => {
  it("shows every step of a key's life in order, with actor, transport and detail, and no secret", async () => {
    const key = await callOk<Created>(world.aliceClient, "create_api_key", { name: "svc" });
    await callOk(world.aliceClient, "update_api_key", { id: key.id, name: "service" });
    const rotated = await callOk<Created>(world.aliceClient, "rotate_api_key", { id: key.id, grace_period_seconds: 60 });
    await callOk(world.aliceClient, "revoke_api_key", { id: key.id, reason: "done" });
    await callOk(world.aliceClient, "verify_api_key", { key: rotated.key });

    const events = await walk();
    expect(events.map((event) => [event.event_type, event.key_id])).toEqual([
      ["key.created", key.id],
      ["key.updated", key.id],
      ["key.rotated", key.id],
      ["key.rotated", rotated.id],
      ["key.revoked", key.id],
    ]);
    for (const event of events) {
      expect(event).toMatchObject({ actor_user_id: world.alice.userId, actor_key_id: null, transport: "stdio", client_address: null });
      expect(event.id).toMatch(/^evt_/);
      expect(event.occurred_at).toBe("2026-06-01T12:00:00.000Z");
    }
    expect(events[0]!.detail).toEqual({ name: "svc", project_id: null, scopes: ["tools:read", "tools:execute"], expires_at: "2026-08-30T12:00:00.000Z" });
    expect(events[1]!.detail).toEqual({ changed: ["name"], from: { name: "svc" }, to: { name: "service" } });
    expect(events[4]!.detail).toEqual({ reason: "done" });
    expectNoSecrets(events, [key.key, rotated.key]);

    // Filtered to one key.
    expect((await walk(world.aliceClient, { key_id: rotated.id })).map((event) => event.event_type)).toEqual(["key.rotated"]);
  });

  it("shows a user only the events of their own keys; an admin sees every event", async () => {
    const alices = await callOk<Created>(world.aliceClient, "create_api_key", { name: "a" });
    const bobs = await callOk<Created>(world.bobClient, "create_api_key", { name: "b" });
    await callOk(world.rootClient, "create_project", { slug: "p", name: "P" });
    // An admin acting on bob's key: the event is bob's to see.
    await callOk(world.rootClient, "revoke_api_key", { id: bobs.id });

    expect((await walk(world.aliceClient)).map((event) => event.key_id)).toEqual([alices.id]);
    expect((await walk(world.bobClient)).map((event) => [event.event_type, event.actor_user_id])).toEqual([
      ["key.created", world.bob.userId],
      ["key.revoked", world.root.userId],
    ]);
    expect((await walk(world.rootClient)).map((event) => event.event_type)).toEqual(["key.created", "key.created", "project.created", "key.revoked"]);
  });

  it("answers not_found for another user's key_id or an unknown one", async () => {
    const bobs = await callOk<Created>(world.bobClient, "create_api_key", { name: "b" });
    for (const id of [bobs.id, "key_doesnotexist000000"]) {
      const error = await callError(world.aliceClient, "list_key_events", { key_id: id });
      expect(error.code).toBe("not_found");
      expect(errorKeys(error)).toEqual(["key_id"]);
    }
    expect((await callOk<Page>(world.rootClient, "list_key_events", { key_id: bobs.id })).events).toHaveLength(1);
  });

  it("pages with limit, cursor and a null next_cursor at the end", async () => {
    for (let i = 0; i < 3; i++) {
      await callOk(world.aliceClient, "create_api_key", { name: `k${i}` });
      world.harness.clock.advance(1000);
    }
    const first = await callOk<Page>(world.aliceClient, "list_key_events", { limit: 2 });
    expect(first.events).toHaveLength(2);
    expect(first.next_cursor).not.toBeNull();
    const second = await callOk<Page>(world.aliceClient, "list_key_events", { limit: 2, cursor: first.next_cursor });
    expect(second.events).toHaveLength(1);
    expect(second.next_cursor).toBeNull();
    expect([...first.events, ...second.events].map((event) => event.detail.name)).toEqual(["k0", "k1", "k2"]);
    expect((await callOk<Page>(world.aliceClient, "list_key_events", { limit: 3 })).next_cursor).toBeNull();
  });

  it("refuses a key listing's cursor, a tampered cursor and a bad limit", async () => {
    for (let i = 0; i < 2; i++) await callOk(world.aliceClient, "create_api_key", { name: `k${i}` });
    const keysCursor = (await callOk<{ next_cursor: string }>(world.aliceClient, "list_api_keys", { limit: 1 })).next_cursor;
    const eventsCursor = (await callOk<Page>(world.aliceClient, "list_key_events", { limit: 1 })).next_cursor!;
    const payload = JSON.parse(Buffer.from(eventsCursor, "base64url").toString()) as Record<string, unknown>;
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    for (const cursor of [keysCursor, encode({ ...payload, s: -1 }), encode({ ...payload, s: "1" }), encode({ ...payload, a: 0 }), "%%%"]) {
      const error = await callError(world.aliceClient, "list_key_events", { cursor });
      expect(error.code).toBe("validation_error");
      expect(errorKeys(error)).toEqual(["cursor"]);
    }
    for (const limit of [0, 101, 2.5]) {
      const error = await callError(world.aliceClient, "list_key_events", { limit });
      expect(errorKeys(error)).toEqual(["limit"]);
    }
    expect(errorKeys(await callError(world.aliceClient, "list_key_events", { event_type: "key.created" }))).toEqual(["event_type"]);
  });
});
