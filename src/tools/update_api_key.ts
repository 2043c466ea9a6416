import * as z from "zod";
import { DESCRIPTION_MAX_LENGTH, SCOPES_MAX_COUNT } from "../service/validation.js";
import { apiKeyRecordSchema, EXPIRY_FORM, NAME_LENGTH, scopeList } from "./records.js";
import { descriptionRule, expiryFormRule, nameRule, scopesRule, withRule } from "./rules.js";
import { defineTool } from "./tool.js";

export const updateApiKeyInput = z
  .strictObject({
    id: z.string().describe("Key id (key_…)."),
    name: withRule(z.string().describe(`${NAME_LENGTH}.`), nameRule).optional(),
    description: withRule(
      z.string().nullable().describe(`1-${DESCRIPTION_MAX_LENGTH} characters; null clears it.`),
      descriptionRule,
    ).optional(),
    // Who may add a scope or extend an expiry is said once, in the tool's description (forbidden).
    scopes: withRule(scopeList(`1-${SCOPES_MAX_COUNT} scopes.`), scopesRule).optional(),
    expires_at: withRule(z.string().describe(`${EXPIRY_FORM}.`), expiryFormRule).optional(),
  })
  .describe("The key and at least one change.");

export const updateApiKeyTool = defineTool({
  name: "update_api_key",
  title: "Update API key",
  description:
    "Change a key's name, description, scopes or expiry; the key keeps working. forbidden: adding a " +
    "scope or a later expiry without admin, or a key with scopes you lack. conflict: expiry of a revoked, " +
    "expired or rotated key.",
  group: "API Keys",
  inputSchema: updateApiKeyInput,
  outputSchema: apiKeyRecordSchema,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  scope: "tools:execute",
  handler: (input, { service, principal }) => service.updateApiKey(principal, input),
});
