import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/service/principal.js";
import { holdsAnyScope, MCP_SCOPES, mayCallTool, VERIFY_ENDPOINT_SCOPES } from "../../src/tools/access.js";
import { createServer } from "../../src/server.js";
import { allTools } from "../../src/tools/index.js";
import { connectClient, openHarness } from "../helpers/harness.js";

const principal = (scopes: string[] | null, isAdmin = false): Principal => ({
  userId: "usr_x",
  userName: "x",
  organizationId: "org_x",
  transport: "http",
  keyId: scopes === null ? null : "key_x",
  scopes,
  isAdmin,
  clientAddress: null,
});

const callable = (p: Principal) => allTools.filter((tool) => mayCallTool(p, tool)).map((tool) => tool.name);

describe("tool access by scope", () => {
  it("lets tools:read call read-only tools, tools:execute the rest, admin everything", () => {
    expect(callable(principal(["tools:read"]))).toEqual(["list_api_keys", "get_api_key", "verify_api_key", "whoami", "list_projects", "list_key_events"]);
    expect(callable(principal(["tools:execute"]))).toEqual(["create_api_key", "update_api_key", "rotate_api_key", "revoke_api_key"]);
    expect(callable(principal(["tools:read", "tools:execute"]))).toHaveLength(allTools.length - 1); // all but create_project
    expect(callable(principal(["admin"], true))).toHaveLength(allTools.length);
    expect(callable(principal(["keys:verify", "orders:read"]))).toEqual([]);
  });

  it("takes each tool's scope from its definition, not from its readOnlyHint", () => {
    // verify_api_key records a key's last use (not read-only), yet checking a key is a reader's call.
    const verify = allTools.find((tool) => tool.name === "verify_api_key")!;
    expect(verify.annotations.readOnlyHint).toBe(false);
    expect(verify.scope).toBe("tools:read");
    expect(mayCallTool(principal(["tools:read"]), verify)).toBe(true);
    expect(mayCallTool(principal(["tools:execute"]), verify)).toBe(false);
    expect(Object.fromEntries(allTools.map((tool) => [tool.name, tool.scope]))).toEqual({
      create_api_key: "tools:execute",
      list_api_keys: "tools:read",
      get_api_key: "tools:read",
      update_api_key: "tools:execute",
      rotate_api_key: "tools:execute",
      revoke_api_key: "tools:execute",
      verify_api_key: "tools:read",
      whoami: "tools:read",
      list_projects: "tools:read",
      create_project: "admin",
      list_key_events: "tools:read",
    });
  });

  it("applies the same rule to a caller without a key (stdio): every tool but the admin-only ones, unless an admin", () => {
    expect(callable(principal(null))).toEqual(allTools.map((tool) => tool.name).filter((name) => name !== "create_project"));
    expect(callable(principal(null, true))).toHaveLength(allTools.length);
    expect(holdsAnyScope(principal(null), MCP_SCOPES)).toBe(true);
  });

  it("lets only keys with tools:read, tools:execute or admin reach MCP, and keys:verify or admin the verify endpoint", () => {
    expect(holdsAnyScope(principal(["keys:verify"]), MCP_SCOPES)).toBe(false);
    expect(holdsAnyScope(principal(["tools:execute"]), MCP_SCOPES)).toBe(true);
    expect(holdsAnyScope(principal(["keys:verify"]), VERIFY_ENDPOINT_SCOPES)).toBe(true);
    expect(holdsAnyScope(principal(["admin"], true), VERIFY_ENDPOINT_SCOPES)).toBe(true);
    expect(holdsAnyScope(principal(["tools:read", "tools:execute"]), VERIFY_ENDPOINT_SCOPES)).toBe(false);
  });

  it("filters tools/list and refuses a hidden tool with forbidden through a real MCP client", async () => {
    const harness = await openHarness();
    try {
      const reader = { ...harness.principal, keyId: "key_reader", scopes: ["tools:read"], transport: "http" as const };
      const client = await connectClient(harness.service, reader);
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name)).toEqual(["list_api_keys", "get_api_key", "verify_api_key", "whoami", "list_projects", "list_key_events"]);
      const result = await client.callTool({ name: "create_api_key", arguments: { name: "nope" } });
      expect(result.isError).toBe(true);
      expect(JSON.parse((result.content as { text: string }[])[0]!.text).error.code).toBe("forbidden");
      const events = await harness.store.listKeyEvents({ organizationId: reader.organizationId, keyId: null, ownerUserId: null, after: null, limit: 100 });
      expect(events.map(({ event }) => ({ event_type: event.event_type, actor_key_id: event.actor_key_id, detail: event.detail }))).toEqual([
        { event_type: "call.denied", actor_key_id: "key_reader", detail: { tool: "create_api_key", needed_scope: "tools:execute" } },
      ]);
      expect((await harness.tableCounts()).api_keys).toBe(0);
      await client.close();
    } finally {
      await harness.close();
    }
  });

  it("refuses createServer options without principalOf, naming what replaced 0.1's principal", async () => {
    const harness = await openHarness();
    try {
      expect(() => createServer({ service: harness.service, principal: harness.principal, version: "test" } as never)).toThrow(
        "createServer needs principalOf(request) => Principal; over stdio pass principalOf: () => principal",
      );
    } finally {
      await harness.close();
    }
  });
});
