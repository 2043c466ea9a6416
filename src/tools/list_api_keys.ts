import * as z from "zod";
import { KEY_STATUS_FILTERS } from "../service/validation.js";
import { apiKeyRecordSchema, cursorSchema, nextCursorSchema, pageLimitSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const listApiKeysInput = z
  .strictObject({
    project_reference: z.string().describe("Only this project's keys (id or slug).").optional(),
    status: z.enum(KEY_STATUS_FILTERS).describe("Default active; all: any status.").optional(),
    limit: pageLimitSchema,
    cursor: cursorSchema("keys"),
  })
  .describe("Filters and paging.");

export const listApiKeysOutput = z
  .strictObject({
    keys: z.array(apiKeyRecordSchema).describe("Key records, oldest first."),
    next_cursor: nextCursorSchema,
  })
  .describe("One page of keys.");

export const listApiKeysTool = defineTool({
  name: "list_api_keys",
  title: "List API keys",
  description:
    "List key records: yours, or every user's for an admin. While next_cursor is not null, pass it as " +
    "cursor. not_found: unknown project_reference.",
  group: "API Keys",
  inputSchema: listApiKeysInput,
  outputSchema: listApiKeysOutput,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (input, { service, principal }) => service.listApiKeys(principal, input),
});
