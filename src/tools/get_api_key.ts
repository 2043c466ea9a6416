import * as z from "zod";
import { apiKeyRecordSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const getApiKeyInput = z
  .strictObject({
    id: z.string().describe("Key id (key_…).").optional(),
    key_prefix: z.string().describe("Key prefix, e.g. kw_3kTn9QwE2xYz.").optional(),
  })
  .describe("Exactly one of id and key_prefix.");

export const getApiKeyTool = defineTool({
  name: "get_api_key",
  title: "Get API key",
  description:
    "Get one key record by id or key_prefix, e.g. for a key seen in a log; never the key itself. Another " +
    "user's key is not_found.",
  group: "API Keys",
  inputSchema: getApiKeyInput,
  outputSchema: apiKeyRecordSchema,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (input, { service, principal }) => service.getApiKey(principal, input),
});
