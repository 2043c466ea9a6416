import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { expect } from "vitest";
import { callOk } from "./lifecycle.js";

// One admin's session through every tool keywarden has, each checked on its values: what the tests
// of `serve --stateless` behind a balancer run, in process and spawned.

export const ALL_TOOL_NAMES = [
  "create_api_key",
  "create_project",
  "get_api_key",
  "list_api_keys",
  "list_key_events",
  "list_projects",
  "revoke_api_key",
  "rotate_api_key",
  "update_api_key",
  "verify_api_key",
  "whoami",
];

interface Created {
  id: string;
  key: string;
  key_prefix: string;
  project_id: string | null;
  scopes: string[];
}

/**
 * tools/list, then every tool, as the admin whose key is `adminKeyId`. The revocation is of a key
 * whose rotation grace another rotation ended: it stops nothing, so no confirmation is needed
 * (README, Confirmation), which a server without sessions cannot ask for. Returns the names called.
 */
export async function callEveryTool(client: Client, adminKeyId: string, slug = "web"): Promise<string[]> {
  const called: string[] = [];
  const ok = async <T>(name: string, args: Record<string, unknown> = {}): Promise<T> => {
    called.push(name);
    return callOk<T>(client, name, args);
  };
  expect((await client.listTools()).tools.map((tool) => tool.name).sort()).toEqual(ALL_TOOL_NAMES);

  expect(await ok("whoami")).toMatchObject({ transport: "http", is_admin: true, key_id: adminKeyId, scopes: ["admin"] });
  const project = await ok<{ id: string }>("create_project", { slug, name: "Web app", default_scopes: ["web:read", "web:write"] });
  expect(project).toMatchObject({ slug, default_scopes: ["web:read", "web:write"] });
  expect((await ok<{ projects: { slug: string }[] }>("list_projects")).projects.map((entry) => entry.slug)).toContain(slug);

  const created = await ok<Created>("create_api_key", { name: "frontend", project_reference: slug });
  expect(created).toMatchObject({ project_id: project.id, scopes: ["web:read", "web:write"], key: expect.stringMatching(/^kw_/) });
  const listed = await ok<{ keys: { id: string }[] }>("list_api_keys", { project_reference: slug });
  expect(listed.keys.map((key) => key.id)).toEqual([created.id]);
  expect(await ok("get_api_key", { key_prefix: created.key_prefix })).toMatchObject({ id: created.id, name: "frontend", status: "active" });
  expect(await ok("update_api_key", { id: created.id, description: "behind the balancer", scopes: ["web:read"] })).toMatchObject({
    id: created.id,
    description: "behind the balancer",
    scopes: ["web:read"],
  });
  expect(await ok("verify_api_key", { key: created.key, required_scopes: ["web:read"] })).toMatchObject({ valid: true, code: "valid", key_id: created.id });

  // A rotation with a grace stops nothing now; a second one ends the first one's grace.
  const successor = await ok<Created & { previous_key_id: string }>("rotate_api_key", { id: created.id, grace_period_seconds: 600 });
  expect(successor).toMatchObject({ previous_key_id: created.id, scopes: ["web:read"] });
  const third = await ok<Created & { previous_key_id: string }>("rotate_api_key", { id: successor.id, grace_period_seconds: 600 });
  expect(third.previous_key_id).toBe(successor.id);
  expect(await ok("verify_api_key", { key: created.key })).toMatchObject({ valid: false, code: "expired", key_id: created.id });
  expect(await ok("revoke_api_key", { id: created.id, reason: "retired" })).toMatchObject({ id: created.id, status: "revoked", revoked_reason: "retired" });
  expect(await ok("verify_api_key", { key: created.key })).toMatchObject({ valid: false, code: "revoked" });
  expect(await ok("verify_api_key", { key: third.key })).toMatchObject({ valid: true, key_id: third.id });

  const events = await ok<{ events: { event_type: string; actor_key_id: string | null }[] }>("list_key_events", { key_id: created.id });
  expect(events.events.map((event) => event.event_type)).toEqual(["key.created", "key.updated", "key.rotated", "key.grace_ended", "key.revoked"]);
  expect(events.events.every((event) => event.actor_key_id === adminKeyId)).toBe(true);
  return called;
}
