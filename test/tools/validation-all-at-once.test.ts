import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { allTools } from "../../src/tools/index.js";
import { connectClient, openHarness, tableCounts, type Harness } from "../helpers/harness.js";

interface FieldError {
  key: string;
  message: string;
  value?: unknown;
}

let harness: Harness;
let client: Client;
beforeAll(async () => {
  // An admin may call every tool, so each answer is about its arguments, not its scope.
  harness = await openHarness({ isAdmin: true });
  client = await connectClient(harness.service, harness.principal);
});
afterAll(async () => {
  await client.close();
  await harness.close();
});

async function fieldErrors(name: string, args: Record<string, unknown>): Promise<FieldError[]> {
  const result = await client.callTool({ name, arguments: args });
  expect(result.isError, name).toBe(true);
  const body = JSON.parse((result.content as { text: string }[])[0]!.text) as { error: { code: string; errors: FieldError[] } };
  expect(body.error.code, name).toBe("validation_error");
  return body.error.errors;
}

// For every tool: an unknown field, and every one of its fields wrong at once, mistyped or refused
// by a rule of the service (README, Tools: one entry per offending field, unknown fields included).
const EVERY_FIELD_WRONG: Record<string, { args: Record<string, unknown>; expected: FieldError[] }> = {
  create_api_key: {
    args: { name: " ", project_reference: 7, expires_at: "31/12/2026", bogus: 1 },
    expected: [
      { key: "name", message: "must not be empty", value: " " },
      { key: "project_reference", message: "expected string", value: 7 },
      { key: "expires_at", message: "must be an ISO 8601 date-time with a UTC offset, e.g. 2027-01-31T12:00:00Z", value: "31/12/2026" },
      { key: "bogus", message: "unknown field" },
    ],
  },
  list_api_keys: {
    args: { project_reference: [], status: "gone", limit: 0, cursor: "zz", bogus: 1 },
    expected: [
      { key: "project_reference", message: "expected string", value: "array of 0" },
      { key: "status", message: expect.stringContaining("expected one of") } as FieldError,
      { key: "limit", message: "must be an integer from 1 to 100", value: 0 },
      { key: "cursor", message: expect.any(String), value: "zz" } as FieldError,
      { key: "bogus", message: "unknown field" },
    ],
  },
  get_api_key: {
    args: { id: 1, key_prefix: 2, bogus: 1 },
    expected: [
      { key: "id", message: "expected string", value: 1 },
      { key: "key_prefix", message: "expected string", value: 2 },
      { key: "bogus", message: "unknown field" },
    ],
  },
  update_api_key: {
    args: { id: 1, name: "", description: "", scopes: ["NOT A SCOPE"], expires_at: "tomorrow", bogus: 1 },
    expected: [
      { key: "id", message: "expected string", value: 1 },
      { key: "name", message: "must not be empty", value: "" },
      { key: "description", message: "must not be empty; pass null to clear the description", value: "" },
      { key: "scopes", message: expect.any(String), value: expect.anything() } as FieldError,
      { key: "expires_at", message: expect.stringContaining("ISO 8601"), value: "tomorrow" } as FieldError,
      { key: "bogus", message: "unknown field" },
    ],
  },
  rotate_api_key: {
    args: { id: 1, grace_period_seconds: -1, bogus: 1 },
    expected: [
      { key: "id", message: "expected string", value: 1 },
      { key: "grace_period_seconds", message: "must be an integer from 0 to 2592000", value: -1 },
      { key: "bogus", message: "unknown field" },
    ],
  },
  revoke_api_key: {
    args: { id: 1, reason: "", bogus: 1 },
    expected: [
      { key: "id", message: "expected string", value: 1 },
      { key: "reason", message: "must not be empty", value: "" },
      { key: "bogus", message: "unknown field" },
    ],
  },
  verify_api_key: {
    args: { key: 1, required_scopes: ["NOT A SCOPE"], bogus: 1 },
    expected: [
      { key: "key", message: "expected string", value: 1 },
      // No value echoed: a caller may have put a token here.
      { key: "required_scopes", message: expect.any(String) } as FieldError,
      { key: "bogus", message: "unknown field" },
    ],
  },
  whoami: {
    args: { bogus: 1, user: "bob" },
    expected: [
      { key: "bogus", message: "unknown field" },
      { key: "user", message: "unknown field" },
    ],
  },
  list_projects: {
    args: { bogus: 1 },
    expected: [{ key: "bogus", message: "unknown field" }],
  },
  create_project: {
    args: { slug: 1, name: "", default_scopes: ["NOT A SCOPE"], bogus: 1 },
    expected: [
      { key: "slug", message: "expected string", value: 1 },
      { key: "name", message: "must not be empty", value: "" },
      { key: "default_scopes", message: expect.any(String), value: expect.anything() } as FieldError,
      { key: "bogus", message: "unknown field" },
    ],
  },
  list_key_events: {
    args: { key_id: 1, limit: 101, cursor: "zz", bogus: 1 },
    expected: [
      { key: "key_id", message: "expected string", value: 1 },
      { key: "limit", message: "must be an integer from 1 to 100", value: 101 },
      { key: "cursor", message: expect.any(String), value: "zz" } as FieldError,
      { key: "bogus", message: "unknown field" },
    ],
  },
};

describe("a validation error names every bad field at once", () => {
  it("covers every tool", () => {
    expect(Object.keys(EVERY_FIELD_WRONG).sort()).toEqual(allTools.map((tool) => tool.name).sort());
  });

  for (const [name, { args, expected }] of Object.entries(EVERY_FIELD_WRONG)) {
    it(`${name}: unknown and invalid fields together, and nothing written`, async () => {
      const before = await harness.tableCounts();
      const errors = await fieldErrors(name, args);
      expect(errors).toEqual(expected);
      if (name === "verify_api_key") expect(errors.find((error) => error.key === "required_scopes")).not.toHaveProperty("value");
      expect(await harness.tableCounts()).toEqual(before);
    });
  }

  it("still names the fields only the service can judge (its clock and policy) beside the rest, when the arguments are well-formed", async () => {
    const before = await harness.tableCounts();
    expect(await fieldErrors("create_api_key", { name: "", expires_at: "2001-01-01T00:00:00Z" })).toEqual([
      { key: "name", message: "must not be empty", value: "" },
      { key: "expires_at", message: "must be in the future", value: "2001-01-01T00:00:00Z" },
    ]);
    // The service stops at a bad limit before it reads the cursor; the rule names the cursor too.
    expect((await fieldErrors("list_api_keys", { limit: 0, cursor: "zz" })).map((error) => error.key)).toEqual(["limit", "cursor"]);
    expect(await harness.tableCounts()).toEqual(before);
  });
});
