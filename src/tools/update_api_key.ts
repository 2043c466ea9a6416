import * as z from "zod";
import { apiKeyRecordSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const updateApiKeyInput = z
  .strictObject({
    id: z.string().describe("The id (key_…) of the key to change."),
    name: z.string().describe("New display name, 1-255 characters.").optional(),
    description: z
      .string()
      .nullable()
      .describe("New description, 1-1000 characters; null clears it.")
      .optional(),
    scopes: z
      .array(z.string().describe("One scope name, e.g. tools:read."))
      .describe("The key's new scopes (1-50). Without admin rights they must be a subset of the current ones: scopes can only be narrowed.")
      .optional(),
    expires_at: z
      .string()
      .describe(
        "New expiry: an ISO 8601 date-time with offset, in the future, within the server's maximum and at most 9999-12-31T23:59:59Z. " +
          "Only an admin may move it later than the key's current expiry. Only for an active, not rotated key.",
      )
      .optional(),
  })
  .describe("Input schema for the update_api_key tool.");

export const updateApiKeyTool = defineTool({
  name: "update_api_key",
  title: "Update API key",
  description:
    "Change a key's name, description, scopes or expiry; give id and at least one of them. The key " +
    "itself does not change and keeps working. Scopes can only be narrowed unless you are an admin; " +
    "narrowing cannot be undone by the same user. Returns the updated record (never the key). Errors: " +
    "validation_error naming the bad field; not_found for an unknown id or another user's key; " +
    "forbidden when scopes would add a scope the key does not have, when you do not hold every scope " +
    "of the key, or when a non-admin moves expires_at later (only an admin may lengthen a key's " +
    "life); conflict when moving the expiry " +
    "of a revoked, expired or rotated key.",
  group: "API Keys",
  inputSchema: updateApiKeyInput,
  outputSchema: apiKeyRecordSchema,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  scope: "tools:execute",
  handler: (input, { service, principal }) => service.updateApiKey(principal, input),
});
