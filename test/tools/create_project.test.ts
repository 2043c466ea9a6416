import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { callError, callOk, errorKeys, openWorld, type World } from "../helpers/lifecycle.js";

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(async () => {
  await world.close();
});

describe("create_project", () => {
  it("creates a project for an admin; its keys get its default scopes", async () => {
    const project = await callOk<{ id: string }>(world.rootClient, "create_project", {
      slug: "billing-api",
      name: " Billing API ",
      default_scopes: ["invoices:read", "invoices:write", "invoices:read"],
    });
    expect(project).toEqual({
      id: expect.stringMatching(/^prj_[0-9A-Za-z]{20}$/),
      organization_id: world.root.organizationId,
      slug: "billing-api",
      name: "Billing API",
      default_scopes: ["invoices:read", "invoices:write"],
      created_at: "2026-06-01T12:00:00.000Z",
    });
    const key = await callOk<{ scopes: string[]; project_id: string }>(world.aliceClient, "create_api_key", {
      name: "billing",
      project_reference: "billing-api",
    });
    expect(key).toMatchObject({ project_id: project.id, scopes: ["invoices:read", "invoices:write"] });
    const [event] = await callOk<{ events: { event_type: string; key_id: string | null; detail: unknown }[] }>(world.rootClient, "list_key_events").then(
      (page) => page.events,
    );
    expect(event).toMatchObject({ event_type: "project.created", key_id: null, detail: { project_id: project.id, slug: "billing-api" } });
  });

  it("uses the server's user-level default scopes when none are given", async () => {
    const project = await callOk<{ default_scopes: string[] }>(world.rootClient, "create_project", { slug: "p", name: "P" });
    expect(project.default_scopes).toEqual(["tools:read", "tools:execute"]);
  });

  it("is forbidden to a non-admin, says how to become one, and writes only the call.denied event", async () => {
    const before = await world.harness.tableCounts();
    const error = await callError(world.aliceClient, "create_project", { slug: "mine", name: "Mine" });
    expect(error.code).toBe("forbidden");
    expect(error.message).toBe("create_project is for admins: start keywarden with --admin or KEYWARDEN_ADMIN=1 to act as one");
    expect(await world.harness.tableCounts()).toEqual({ ...before, key_events: before.key_events! + 1 });
    const events = await world.harness.store.listKeyEvents({ organizationId: world.alice.organizationId, keyId: null, ownerUserId: null, after: null, limit: 1000 });
    const last = events.at(-1)!.event;
    expect({ event_type: last.event_type, detail: last.detail }).toEqual({ event_type: "call.denied", detail: { tool: "create_project", needed_scope: "admin" } });
  });

  it("answers conflict for a slug that is taken", async () => {
    await callOk(world.rootClient, "create_project", { slug: "dup", name: "One" });
    const error = await callError(world.rootClient, "create_project", { slug: "dup", name: "Two" });
    expect(error).toMatchObject({ code: "conflict", errors: [{ key: "slug", message: "already_exists", value: "dup" }] });
  });

  it.each([
    [{ slug: "Bad Slug", name: "x" }, ["slug"]],
    [{ slug: "-lead", name: "x" }, ["slug"]],
    [{ slug: "a".repeat(64), name: "x" }, ["slug"]],
    [{ slug: "ok", name: "" }, ["name"]],
    [{ slug: "ok", name: "x", default_scopes: [] }, ["default_scopes"]],
    [{ slug: "ok", name: "x", default_scopes: ["No Spaces"] }, ["default_scopes"]],
    [{ slug: "ok" }, ["name"]],
    [{ slug: "ok", name: "x", owner: "me" }, ["owner"]],
  ])("refuses %j with a validation_error naming %j", async (args, keys) => {
    const error = await callError(world.rootClient, "create_project", args);
    expect(error.code).toBe("validation_error");
    expect(errorKeys(error)).toEqual(keys);
  });
});
