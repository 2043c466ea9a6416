import * as z from "zod";
import type { KeyService } from "../service/service.js";
import type { Principal } from "../service/principal.js";
import type { ConfirmationAnswer } from "../service/types.js";

/**
 * The scope a key needs to see and call a tool (README, Tools): declared by each tool, never
 * inferred from its annotations, which are hints for the client's UI. `admin` implies the others.
 */
export type ToolScope = "tools:read" | "tools:execute" | "admin";

export interface ToolContext {
  service: KeyService;
  principal: Principal;
  /**
   * Asks the person behind the client to confirm a step that stops a working key (MCP
   * elicitation). Resolves "accepted" when they accept, or at once when the client declared no
   * elicitation capability (its own approval of a destructive tool stands); "declined" when they
   * decline or cancel; "cannot_ask" at once when the server never learned what the client can do
   * (src/server.ts); rejects when no answer comes. Absent where there is nobody to ask (in process).
   */
  confirm?: (message: string) => Promise<ConfirmationAnswer>;
  /** The call's cancellation (the client gave up: notifications/cancelled, or its time-out). */
  signal?: AbortSignal;
  /** Whether a principal may call this tool (its scope), set by callTool: checked again after a confirmation's answer. */
  mayCall?: (principal: Principal) => boolean;
  /**
   * Ends this call's SSE stream before its result (polling, as the MCP Streamable HTTP transport
   * allows): the client resumes with Last-Event-ID and gets the result from the session's event
   * store. Absent when the client cannot resume (older protocol, no stream).
   */
  closeStream?: () => void;
}

export interface ToolAnnotations {
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

export type ToolGroup = "API Keys" | "Projects" | "Audit";

/** One MCP tool: its contract (zod schemas, annotations) and a handler that calls the service. */
export interface ToolDefinition<Input extends z.ZodObject = z.ZodObject, Output extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  description: string;
  group: ToolGroup;
  inputSchema: Input;
  outputSchema: Output;
  annotations: ToolAnnotations;
  /**
   * Set only where the schemas are a published contract that declares its dialect: create_api_key's
   * (test/fixtures/spec) carry `"$schema": draft-07`, so its listing does too. The other tools' omit
   * it (see toolJsonSchemas).
   */
  schemaDialect?: "draft-07";
  /** Who may see and call it (tools/access.ts); a principal without it does not see it in tools/list. */
  scope: ToolScope;
  handler(input: z.output<Input>, context: ToolContext): Promise<z.input<Output>>;
}

/** Keeps the handler's types tied to its schemas while the registry holds tools of any shape. */
export function defineTool<Input extends z.ZodObject, Output extends z.ZodObject>(
  tool: ToolDefinition<Input, Output>,
): ToolDefinition {
  return tool as unknown as ToolDefinition;
}

/**
 * A tool's input and output JSON Schemas as tools/list shows them and schemas/ holds them. Without
 * a declared schemaDialect they carry no `$schema` (52 bytes each in every tools/list): MCP
 * 2025-11-25 reads a schema without one as JSON Schema 2020-12 (SEP-1613), and ours use only
 * keywords that mean the same in draft-07 and 2020-12 (DIALECT_NEUTRAL_KEYWORDS, checked by
 * test/tools/definitions.test.ts), so a client that assumes draft-07 instead (the SDK's default Ajv
 * validator does) reads them the same.
 */
export function toolJsonSchemas(tool: ToolDefinition): { input: Record<string, unknown>; output: Record<string, unknown> } {
  const declared = tool.schemaDialect === "draft-07";
  return { input: toJsonSchema(tool.inputSchema, { declared }), output: toJsonSchema(tool.outputSchema, { declared }) };
}

/**
 * Every keyword our schemas may use without declaring a dialect: each means the same in draft-07
 * and 2020-12. Not in it, for instance: `definitions` and `dependencies` (draft-07 only), array
 * `items` (a tuple in draft-07, an error in 2020-12), `$defs`, `prefixItems` (2020-12 only).
 */
export const DIALECT_NEUTRAL_KEYWORDS: ReadonlySet<string> = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "propertyNames",
  "items",
  "enum",
  "anyOf",
  "description",
]);

/**
 * A draft-07 JSON Schema (zod's draft-7 target), with its `$schema` declaration unless `declared`
 * is false. Keys are in the order of the published create_api_key schemas (description, then
 * $schema, last in each object), so that those two files come out byte for byte.
 */
export function toJsonSchema(schema: z.ZodType, { declared = true }: { declared?: boolean } = {}): Record<string, unknown> {
  const jsonSchema = lastKeysLast(z.toJSONSchema(schema, {
    target: "draft-7",
    override: ({ jsonSchema }) => {
      // z.number().int() adds the safe-integer bounds; they say nothing to a client, and the
      // real range of each integer is in its description and enforced by the service.
      if (jsonSchema.type === "integer") {
        if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
        if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      }
      // A nullable array as a type union, the way zod writes a nullable string (["string", "null"]),
      // not anyOf [array, null]: the same in draft-07 and 2020-12, 19 bytes shorter.
      const [value, none] = jsonSchema.anyOf ?? [];
      if (
        jsonSchema.anyOf?.length === 2 &&
        typeof value === "object" && value.type === "array" && Object.keys(value).every((keyword) => keyword === "type" || keyword === "items") &&
        typeof none === "object" && none.type === "null" && Object.keys(none).length === 1
      ) {
        delete jsonSchema.anyOf;
        Object.assign(jsonSchema, { type: ["array", "null"], items: value.items });
      }
    },
  })) as Record<string, unknown>;
  if (!declared) delete jsonSchema.$schema;
  return jsonSchema;
}

const LAST_KEYWORDS = ["description", "$schema"];
const SCHEMA_MAPS = new Set(["properties", "definitions", "patternProperties"]);
const SUBSCHEMAS = new Set(["items", "additionalProperties", "propertyNames", "not"]);
const SUBSCHEMA_LISTS = new Set(["anyOf", "oneOf", "allOf"]);

/** One schema with `description` and `$schema` moved last, at every depth (names in `properties` stay as they are). */
function lastKeysLast(schema: unknown): unknown {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return schema;
  const entries = Object.entries(schema).map(([keyword, value]): [string, unknown] => {
    if (SCHEMA_MAPS.has(keyword)) {
      return [keyword, Object.fromEntries(Object.entries(value as object).map(([name, child]) => [name, lastKeysLast(child)]))];
    }
    if (SUBSCHEMAS.has(keyword)) return [keyword, lastKeysLast(value)];
    if (SUBSCHEMA_LISTS.has(keyword)) return [keyword, (value as unknown[]).map(lastKeysLast)];
    return [keyword, value];
  });
  const last = (keyword: string) => LAST_KEYWORDS.indexOf(keyword);
  return Object.fromEntries([
    ...entries.filter(([keyword]) => last(keyword) < 0),
    ...LAST_KEYWORDS.flatMap((keyword) => entries.filter(([other]) => other === keyword)),
  ]);
}
