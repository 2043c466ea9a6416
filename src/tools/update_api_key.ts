import * as z from "zod";
import { apiKeyRecordSchema, scopeList } from "./records.js";
import { descriptionRule, expiryFormRule, nameRule, scopesRule, withRule } from "./rules.js";
import { defineTool } from "./tool.js";

export const updateApiKeyInput = z
  .strictObject({
    id: z.string().describe("Key id (key_…)."),
    name: withRule(z.string().describe("1-255 characters."), nameRule).optional(),
    description: withRule(z.string().nullable().describe("1-1000 characters; null clears it."), descriptionRule).optional(),
    scopes: withRule(scopeList("1-50 scopes; only an admin may add any."), scopesRule).optional(),
    expires_at: withRule(
      z.string().describe("ISO 8601 with offset, in the future, within the server's maximum; later only for an admin."),
      expiryFormRule,
    ).optional(),
  })
  .describe("The key and at least one change.");

export const updateApiKeyTool = defineTool({
  name: "update_api_key",
  title: "Update API key",
  description:
    "Change a key's name, description, scopes or expiry; the key keeps working. forbidden: adding a " +
    "scope, a key with scopes you lack, or a later expiry without admin. conflict: expiry of a revoked, " +
    "expired or rotated key.",
  group: "API Keys",
  inputSchema: updateApiKeyInput,
  outputSchema: apiKeyRecordSchema,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  scope: "tools:execute",
  handler: (input, { service, principal }) => service.updateApiKey(principal, input),
});
