import * as z from "zod";
import { EXPIRY_FORM } from "./records.js";
import { expiryFormRule, nameRule, withRule } from "./rules.js";
import { defineTool } from "./tool.js";

// The schemas are the published contract (test/fixtures/spec) to the letter: the name and date rules live in
// the service, because keywords such as minLength or format are not in the spec.
export const createApiKeyInput = z
  .strictObject({
    name: withRule(z.string().describe("Name for the API key"), nameRule),
    project_reference: z.string().describe("Project ID or slug (optional for user-level key)").optional(),
    expires_at: withRule(z.string().describe("Expiration date in ISO 8601 format"), expiryFormRule).optional(),
  })
  .describe("Input schema for the create_api_key tool.");

export const createApiKeyOutput = z
  .strictObject({
    id: z.string().describe("Unique identifier for the returned record."),
    project_id: z.string().nullable().describe("Project identifier associated with this result."),
    user_id: z.string().describe("The user id associated with this tool result."),
    name: z.string().describe("Human-readable name for the returned record."),
    key: z.string().describe("The key associated with this tool result."),
    key_prefix: z.string().describe("The key prefix associated with this tool result."),
    expires_at: z.string().nullable().describe("The expires at associated with this tool result."),
    created_at: z.string().describe("Creation timestamp in ISO 8601 format."),
    scopes: z
      .array(z.string().describe("One scope item associated with this tool result."))
      .describe("List of scopes associated with this tool result."),
  })
  .describe("Structured result returned by the create_api_key tool.");

export const createApiKeyTool = defineTool({
  name: "create_api_key",
  title: "Create API key",
  description:
    "Create an API key, user-level or for a project, with its default scopes. The key is shown only " +
    `here: store it now. expires_at: ${EXPIRY_FORM} (default: its period). max_keys_reached: too many ` +
    "active keys.",
  group: "API Keys",
  inputSchema: createApiKeyInput,
  outputSchema: createApiKeyOutput,
  schemaDialect: "draft-07",
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  scope: "tools:execute",
  handler: (input, { service, principal }) => service.createApiKey(principal, input),
});
