import * as z from "zod";
import { apiKeyRecordSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const getApiKeyInput = z
  .strictObject({
    id: z.string().describe("The key's id (key_…). Give exactly one of id and key_prefix.").optional(),
    key_prefix: z
      .string()
      .describe("The key's prefix, e.g. kw_3kTn9QwE2xYz (the start of the token). Give exactly one of id and key_prefix.")
      .optional(),
  })
  .describe("Input schema for the get_api_key tool.");

export const getApiKeyTool = defineTool({
  name: "get_api_key",
  title: "Get API key",
  description:
    "Get one API key record by its id or by its key_prefix (exactly one of the two). Use key_prefix " +
    "to identify a key seen in a log or config: the prefix is the start of the token. The record " +
    "shows status, scopes, expiry, last use and rotation links, never the key itself. Errors: " +
    "validation_error when both or neither of id and key_prefix are given; not_found when no key " +
    "you may see matches (another user's key answers not_found too).",
  group: "API Keys",
  inputSchema: getApiKeyInput,
  outputSchema: apiKeyRecordSchema,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (input, { service, principal }) => service.getApiKey(principal, input),
});
