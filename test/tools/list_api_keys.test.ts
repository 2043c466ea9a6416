import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ApiKeyRecord } from "../../src/service/records.js";
import { callError, callOk, DAY_MS, errorKeys, expectNoSecrets, openWorld, type World } from "../helpers/lifecycle.js";

interface Page {
  keys: ApiKeyRecord[];
  next_cursor: string | null;
}
interface Created {
  id: string;
  key: string;
  key_prefix: string;
}

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(async () => {
  await world.close();
});

async function create(client = world.aliceClient, args: Record<string, unknown> = {}): Promise<Created> {
  const created = await callOk<Created>(client, "create_api_key", { name: "key", ...args });
  world.harness.clock.advance(1000);
  return created;
}

describe("list_api_keys", () => {
  it("lists the caller's active keys oldest first, with every record field and no secret", async () => {
    const first = await create(world.aliceClient, { name: "first" });
    const second = await create(world.aliceClient, { name: "second" });
    const bobs = await create(world.bobClient, { name: "bob's" });

    const page = await callOk<Page>(world.aliceClient, "list_api_keys");
    expect(page.next_cursor).toBeNull();
    expect(page.keys.map((key) => key.id)).toEqual([first.id, second.id]);
    expect(page.keys[0]).toEqual({
      id: first.id,
      project_id: null,
      user_id: world.alice.userId,
      organization_id: world.alice.organizationId,
      name: "first",
      description: null,
      key_prefix: first.key_prefix,
      scopes: ["tools:read", "tools:execute"],
      status: "active",
      created_at: "2026-06-01T12:00:00.000Z",
      created_by: { user_id: world.alice.userId, key_id: null },
      expires_at: "2026-08-30T12:00:00.000Z",
      last_used_at: null,
      last_used_ip: null,
      last_used_user_agent: null,
      revoked_at: null,
      revoked_reason: null,
      rotated_from: null,
      replaced_by: null,
    });
    expectNoSecrets(page, [first.key, second.key, bobs.key]);
  });

  it("lets an admin see every user's keys", async () => {
    const alices = await create(world.aliceClient);
    const bobs = await create(world.bobClient);
    const page = await callOk<Page>(world.rootClient, "list_api_keys");
    expect(page.keys.map((key) => [key.id, key.user_id])).toEqual([
      [alices.id, world.alice.userId],
      [bobs.id, world.bob.userId],
    ]);
  });

  it("filters by status: active by default, revoked, expired, all", async () => {
    const active = await create();
    const revoked = await create();
    const expiring = await create(world.aliceClient, {
      expires_at: new Date(world.harness.clock.current.getTime() + 60_000).toISOString(),
    });
    await callOk(world.aliceClient, "revoke_api_key", { id: revoked.id });
    world.harness.clock.advance(61_000);

    const ids = async (status?: string) =>
      (await callOk<Page>(world.aliceClient, "list_api_keys", status ? { status } : {})).keys.map((key) => [key.id, key.status]);
    expect(await ids()).toEqual([[active.id, "active"]]);
    expect(await ids("active")).toEqual([[active.id, "active"]]);
    expect(await ids("revoked")).toEqual([[revoked.id, "revoked"]]);
    expect(await ids("expired")).toEqual([[expiring.id, "expired"]]);
    expect(await ids("all")).toEqual([
      [active.id, "active"],
      [revoked.id, "revoked"],
      [expiring.id, "expired"],
    ]);
  });

  it("filters by project, by slug or by id, and answers not_found for an unknown project", async () => {
    const project = await callOk<{ id: string }>(world.rootClient, "create_project", { slug: "billing", name: "Billing" });
    const userLevel = await create();
    const inProject = await create(world.aliceClient, { project_reference: "billing" });
    for (const reference of ["billing", project.id]) {
      const page = await callOk<Page>(world.aliceClient, "list_api_keys", { project_reference: reference });
      expect(page.keys.map((key) => key.id)).toEqual([inProject.id]);
      expect(page.keys[0]!.project_id).toBe(project.id);
    }
    expect((await callOk<Page>(world.aliceClient, "list_api_keys")).keys.map((key) => key.id)).toEqual([userLevel.id, inProject.id]);

    const error = await callError(world.aliceClient, "list_api_keys", { project_reference: "nope" });
    expect(error.code).toBe("not_found");
    expect(error.errors).toEqual([{ key: "project_reference", message: "not_found", value: "nope" }]);
  });

  it("pages with limit and an opaque next_cursor, null on the last page", async () => {
    const created = [];
    for (let i = 0; i < 5; i++) created.push(await create(world.aliceClient, { name: `k${i}` }));
    const seen: string[] = [];
    let cursor: string | null = null;
    const pageSizes: number[] = [];
    do {
      const page: Page = await callOk<Page>(world.aliceClient, "list_api_keys", { limit: 2, ...(cursor ? { cursor } : {}) });
      pageSizes.push(page.keys.length);
      seen.push(...page.keys.map((key) => key.id));
      cursor = page.next_cursor;
      if (cursor) expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    } while (cursor);
    expect(pageSizes).toEqual([2, 2, 1]);
    expect(seen).toEqual(created.map((key) => key.id));

    // A page that ends exactly at the last key has no next cursor.
    const exact = await callOk<Page>(world.aliceClient, "list_api_keys", { limit: 5 });
    expect(exact.keys).toHaveLength(5);
    expect(exact.next_cursor).toBeNull();
    // Default page size is 50.
    expect((await callOk<Page>(world.aliceClient, "list_api_keys")).keys).toHaveLength(5);
  });

  it("keeps paging in order when many keys share one created_at (ties broken by id)", async () => {
    // The cap is 5 per user; several users give one instant many keys.
    const ids: string[] = [];
    for (const name of ["u1", "u2", "u3"]) {
      const principal = await world.harness.service.localPrincipal({ userName: name, transport: "stdio", isAdmin: false });
      for (let i = 0; i < 4; i++) ids.push((await world.harness.service.createApiKey(principal, { name: `${name}-${i}` })).id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Page = await callOk<Page>(world.rootClient, "list_api_keys", { limit: 5, ...(cursor ? { cursor } : {}) });
      seen.push(...page.keys.map((key) => key.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].sort());
  });

  it.each([
    [{ limit: 0 }, "limit", "must be an integer from 1 to 100"],
    [{ limit: 101 }, "limit", "must be an integer from 1 to 100"],
    [{ limit: 1.5 }, "limit", "expected int"],
    [{ limit: "10" }, "limit", "expected number"],
    [{ status: "gone" }, "status", undefined],
    [{ project_reference: 7 }, "project_reference", "expected string"],
    [{ cursor: "not a cursor!" }, "cursor", "is not a cursor returned by this listing; start again without a cursor"],
    [{ owner: "bob" }, "owner", "unknown field"],
  ])("refuses %j with a validation_error naming %s", async (args, key, message) => {
    const error = await callError(world.aliceClient, "list_api_keys", args);
    expect(error.code).toBe("validation_error");
    expect(errorKeys(error)).toEqual([key]);
    if (message) expect(error.errors[0]!.message).toBe(message);
  });

  it("refuses tampered cursors and cursors of another listing, without a crash or a write", async () => {
    for (let i = 0; i < 3; i++) await create();
    const page = await callOk<Page>(world.aliceClient, "list_api_keys", { limit: 1 });
    const cursor = page.next_cursor!;
    const payload = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Record<string, unknown>;
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const events = await callOk<{ next_cursor: string | null }>(world.aliceClient, "list_key_events", { limit: 1 });
    const before = await world.harness.tableCounts();
    for (const bad of [
      cursor.slice(0, -2),
      `${cursor}x`,
      encode({ ...payload, a: "yesterday" }),
      encode({ ...payload, i: "'; DROP TABLE api_keys; --" }),
      encode({ ...payload, extra: 1 }),
      encode([payload]),
      encode("just a string"),
      events.next_cursor!,
      "",
      "x".repeat(600),
    ]) {
      const error = await callError(world.aliceClient, "list_api_keys", { cursor: bad });
      expect(error.code, bad).toBe("validation_error");
      expect(errorKeys(error)).toEqual(["cursor"]);
    }
    expect(await world.harness.tableCounts()).toEqual(before);
    // The genuine cursor still works.
    expect((await callOk<Page>(world.aliceClient, "list_api_keys", { cursor, limit: 1 })).keys).toHaveLength(1);
  });

  it("shows a key's status as of now, so a key expires in listings without any write", async () => {
    const key = await create(world.aliceClient, { expires_at: new Date(world.harness.clock.current.getTime() + DAY_MS).toISOString() });
    expect((await callOk<Page>(world.aliceClient, "list_api_keys", { status: "all" })).keys[0]!.status).toBe("active");
    world.harness.clock.advance(DAY_MS);
    const page = await callOk<Page>(world.aliceClient, "list_api_keys", { status: "all" });
    expect(page.keys.map((record) => [record.id, record.status])).toEqual([[key.id, "expired"]]);
  });
});
