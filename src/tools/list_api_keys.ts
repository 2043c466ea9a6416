import * as z from "zod";
import { KEY_STATUS_FILTERS } from "../service/validation.js";
import { apiKeyRecordSchema, cursorSchema, nextCursorSchema, pageLimitSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const listApiKeysInput = z
  .strictObject({
    project_reference: z
      .string()
      .describe("Only keys of this project, by id (prj_…) or slug; omit for keys of any project and user-level keys.")
      .optional(),
    status: z
      .enum(KEY_STATUS_FILTERS)
      .describe("Only keys with this status (default active); all lists every key.")
      .optional(),
    limit: pageLimitSchema,
    cursor: cursorSchema,
  })
  .describe("Input schema for the list_api_keys tool.");

export const listApiKeysOutput = z
  .strictObject({
    keys: z.array(apiKeyRecordSchema).describe("One page of key records, oldest first."),
    next_cursor: nextCursorSchema,
  })
  .describe("Structured result returned by the list_api_keys tool.");

export const listApiKeysTool = defineTool({
  name: "list_api_keys",
  title: "List API keys",
  description:
    "List API key records, oldest first, one page at a time: your own keys, or every key of the " +
    "organization for an admin. Filter by project_reference (id or slug) and status (active by " +
    "default; revoked, expired or all). Records show key_prefix, scopes, status and expiry but " +
    "never the key itself. When next_cursor is not null, call again with cursor set to it for the " +
    "next page. Errors: validation_error for a limit outside 1-100 or a cursor this tool did not " +
    "return; not_found for an unknown project_reference.",
  group: "API Keys",
  inputSchema: listApiKeysInput,
  outputSchema: listApiKeysOutput,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (input, { service, principal }) => service.listApiKeys(principal, input),
});
