import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import * as z from "zod";
import { allTools } from "../../src/tools/index.js";
import { DIALECT_NEUTRAL_KEYWORDS, toJsonSchema, toolJsonSchemas } from "../../src/tools/tool.js";
import { connectClient, openHarness, type Harness } from "../helpers/harness.js";

type Schema = Record<string, unknown>;

/**
 * Every problem with a schema, found by walking it recursively: a property or array item without
 * a description, an object that allows unknown properties, and (for outputs) an optional field.
 */
export function schemaProblems(schema: Schema, { output }: { output: boolean }, path = "$"): string[] {
  const problems: string[] = [];
  const properties = schema.properties as Record<string, Schema> | undefined;
  if (schema.type === "object" || properties) {
    if (properties && schema.additionalProperties !== false) problems.push(`${path}: additionalProperties is not false`);
    if (!properties && (schema.additionalProperties === undefined || schema.additionalProperties === true)) {
      problems.push(`${path}: an open object without a described value schema`);
    }
    for (const [name, property] of Object.entries(properties ?? {})) {
      if (typeof property.description !== "string" || property.description.trim().length === 0) {
        problems.push(`${path}.${name}: no description`);
      }
      problems.push(...schemaProblems(property, { output }, `${path}.${name}`));
    }
    if (output) {
      const required = new Set((schema.required as string[] | undefined) ?? []);
      for (const name of Object.keys(properties ?? {})) if (!required.has(name)) problems.push(`${path}.${name}: not required in an output`);
    }
    const values = schema.additionalProperties;
    if (values && typeof values === "object") {
      if (typeof (values as Schema).description !== "string") problems.push(`${path}.*: no description`);
      problems.push(...schemaProblems(values as Schema, { output }, `${path}.*`));
    }
  }
  if (schema.items && typeof schema.items === "object") {
    const items = schema.items as Schema;
    // An array of objects is described by the object schema's own description.
    if (typeof items.description !== "string") problems.push(`${path}[]: no description`);
    problems.push(...schemaProblems(items, { output }, `${path}[]`));
  }
  for (const keyword of ["anyOf", "oneOf", "allOf"] as const) {
    for (const [index, member] of ((schema[keyword] as Schema[] | undefined) ?? []).entries()) {
      problems.push(...schemaProblems(member, { output }, `${path}<${keyword}${index}>`));
    }
  }
  return problems;
}

/** Every keyword a schema uses, at any depth (property names are not keywords). */
function schemaKeywords(schema: Schema): string[] {
  const found = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== "object") return;
    for (const [keyword, value] of Object.entries(node)) {
      found.add(keyword);
      if (keyword === "properties") Object.values(value as object).forEach(walk);
      else if (keyword !== "enum" && keyword !== "required") walk(value);
    }
  };
  walk(schema);
  return [...found];
}

/** The paths of `items` given as an array (a tuple in draft-07, an error in 2020-12). */
function arrayItems(schema: Schema, path = "$"): string[] {
  const found = Array.isArray(schema.items) ? [path] : [];
  for (const [name, child] of Object.entries((schema.properties as Record<string, Schema> | undefined) ?? {})) found.push(...arrayItems(child, `${path}.${name}`));
  for (const keyword of ["items", "additionalProperties"] as const) {
    const child = schema[keyword];
    if (child && typeof child === "object" && !Array.isArray(child)) found.push(...arrayItems(child as Schema, path));
  }
  for (const member of (schema.anyOf as Schema[] | undefined) ?? []) found.push(...arrayItems(member, path));
  return found;
}

const EXPECTED = {
  create_api_key: { group: "API Keys", readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  list_api_keys: { group: "API Keys", readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  get_api_key: { group: "API Keys", readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  update_api_key: { group: "API Keys", readOnlyHint: false, destructiveHint: true, idempotentHint: true },
  rotate_api_key: { group: "API Keys", readOnlyHint: false, destructiveHint: true, idempotentHint: false },
  revoke_api_key: { group: "API Keys", readOnlyHint: false, destructiveHint: true, idempotentHint: true },
  verify_api_key: { group: "API Keys", readOnlyHint: false, destructiveHint: false, idempotentHint: true },
  whoami: { group: "API Keys", readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  list_projects: { group: "Projects", readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  create_project: { group: "Projects", readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  list_key_events: { group: "Audit", readOnlyHint: true, destructiveHint: false, idempotentHint: true },
} as const;

let harness: Harness;
let client: Client;
beforeAll(async () => {
  // An admin: it is shown every tool (a non-admin is not shown create_project, tools/access.ts).
  harness = await openHarness({ isAdmin: true });
  client = await connectClient(harness.service, harness.principal);
});
afterAll(async () => {
  await client.close();
  await harness.close();
});

describe("tool definitions", () => {
  it("serves every tool of the README's Tools table, in the registry's order", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(Object.keys(EXPECTED));
    expect(allTools.map((tool) => tool.name)).toEqual(Object.keys(EXPECTED));
  });

  it("gives each tool a title, a group, all four annotation hints, a useful description and both schemas", async () => {
    const { tools } = await client.listTools();
    for (const tool of tools) {
      const expected = EXPECTED[tool.name as keyof typeof EXPECTED];
      expect(tool.name).toMatch(/^[a-z]+(_[a-z]+)*$/);
      expect(tool.title, tool.name).toMatch(/\S/);
      expect(tool.description?.length ?? 0, tool.name).toBeGreaterThan(120);
      expect(tool._meta, tool.name).toEqual({ "keywarden/group": expected.group });
      // The title once, where clients read it first (server.ts, toolListing).
      expect(tool.annotations, tool.name).toEqual({
        readOnlyHint: expected.readOnlyHint,
        destructiveHint: expected.destructiveHint,
        idempotentHint: expected.idempotentHint,
        openWorldHint: false,
      });
      expect(tool.inputSchema.type, tool.name).toBe("object");
      expect(tool.outputSchema?.type, tool.name).toBe("object");
    }
  });

  it("declares a dialect only in create_api_key's schemas, and the others use only keywords that mean the same in draft-07 and 2020-12", async () => {
    // MCP 2025-11-25 reads a schema without $schema as 2020-12; the SDK's default validator (Ajv) as draft-07.
    const { tools } = await client.listTools();
    for (const tool of tools) {
      for (const schema of [tool.inputSchema, tool.outputSchema] as Schema[]) {
        if (tool.name === "create_api_key") {
          expect(schema.$schema, tool.name).toBe("http://json-schema.org/draft-07/schema#");
          continue;
        }
        expect(schema, tool.name).not.toHaveProperty("$schema");
        const other = schemaKeywords(schema).filter((keyword) => !DIALECT_NEUTRAL_KEYWORDS.has(keyword));
        expect(other, tool.name).toEqual([]);
        expect(arrayItems(schema), `${tool.name}: items as an array is a tuple in draft-07 only`).toEqual([]);
      }
    }
  });

  it("has a keyword walker that sees nested keywords and array-form items", () => {
    const schema = { type: "object", properties: { a: { type: "array", items: [{ type: "string" }], definitions: {} } }, dependencies: {} };
    expect(schemaKeywords(schema).sort()).toEqual(["definitions", "dependencies", "items", "properties", "type"]);
    expect(arrayItems(schema)).toEqual(["$.a"]);
  });

  it("describes every field, closes every object and requires every output field, at any depth", async () => {
    const { tools } = await client.listTools();
    for (const tool of tools) {
      expect(schemaProblems(tool.inputSchema as Schema, { output: false }), `${tool.name} input`).toEqual([]);
      expect(schemaProblems(tool.outputSchema as Schema, { output: true }), `${tool.name} output`).toEqual([]);
      expect(typeof (tool.inputSchema as Schema).description, tool.name).toBe("string");
      expect(typeof (tool.outputSchema as Schema).description, tool.name).toBe("string");
    }
  });

  it("has a checker that does catch each kind of problem", () => {
    const check = (schema: z.ZodType, output = true) => schemaProblems(toJsonSchema(schema), { output });
    expect(check(z.strictObject({ a: z.string() }))).toEqual(["$.a: no description"]);
    expect(check(z.looseObject({ a: z.string().describe("a") }))).toEqual(["$: additionalProperties is not false", "$.*: no description"]);
    expect(check(z.strictObject({ a: z.string().describe("a").optional() }))).toEqual(["$.a: not required in an output"]);
    expect(check(z.strictObject({ a: z.string().describe("a").optional() }), false)).toEqual([]);
    expect(check(z.strictObject({ a: z.array(z.string()).describe("a") }))).toEqual(["$.a[]: no description"]);
    expect(check(z.strictObject({ a: z.strictObject({ b: z.number() }).nullable().describe("a") }))).toEqual(["$.a<anyOf0>.b: no description"]);
    expect(check(z.strictObject({ a: z.record(z.string(), z.unknown()).describe("a") }))).toEqual(["$.a.*: no description"]);
  });

  it("matches the checked-in schemas/ files (what npm run schemas:check guards)", () => {
    for (const tool of allTools) {
      for (const [kind, schema] of Object.entries(toolJsonSchemas(tool))) {
        const file = readFileSync(join(process.cwd(), "schemas", `${tool.name}.${kind}.schema.json`), "utf8");
        expect(JSON.parse(file), `${tool.name}.${kind}`).toEqual(schema);
      }
    }
  });

  it("keeps create_api_key's schemas exactly the external contract, byte for byte, in schemas/ and in tools/list", async () => {
    const listed = (await client.listTools()).tools.find((tool) => tool.name === "create_api_key")!;
    for (const kind of ["input", "output"] as const) {
      const spec = readFileSync(join(process.cwd(), "test/fixtures/spec", `create_api_key.${kind}.schema.json`), "utf8");
      expect(readFileSync(join(process.cwd(), "schemas", `create_api_key.${kind}.schema.json`), "utf8")).toBe(spec);
      expect(`${JSON.stringify(kind === "input" ? listed.inputSchema : listed.outputSchema, null, 2)}\n`).toBe(spec);
    }
  });

  it("returns rotate_api_key's output as exactly create_api_key's fields plus the two previous_key fields", () => {
    // The same fields, types and order; rotate describes them in its own words (rotate_api_key.ts).
    const withoutDescriptions = (schema: z.ZodType) =>
      JSON.parse(JSON.stringify(toJsonSchema(schema), (keyword, value) => (keyword === "description" ? undefined : value))) as Schema;
    const create = withoutDescriptions(allTools.find((tool) => tool.name === "create_api_key")!.outputSchema);
    const rotate = withoutDescriptions(allTools.find((tool) => tool.name === "rotate_api_key")!.outputSchema);
    expect(rotate.properties).toEqual({
      ...(create.properties as Schema),
      previous_key_id: { type: "string" },
      previous_key_expires_at: { type: "string" },
    });
    expect(Object.keys(rotate.properties as Schema)).toEqual([...Object.keys(create.properties as Schema), "previous_key_id", "previous_key_expires_at"]);
    expect(rotate.required).toEqual([...(create.required as string[]), "previous_key_id", "previous_key_expires_at"]);
  });
});
