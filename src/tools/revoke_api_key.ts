import * as z from "zod";
import { keyStopConfirmation } from "./confirm.js";
import { apiKeyRecordSchema, NAME_LENGTH } from "./records.js";
import { nameRule, withRule } from "./rules.js";
import { defineTool } from "./tool.js";

export const revokeApiKeyInput = z
  .strictObject({
    id: z.string().describe("Key id (key_…)."),
    reason: withRule(z.string().describe(`Why, ${NAME_LENGTH}; kept in the record and audit log.`), nameRule).optional(),
  })
  .describe("The key to revoke.");

export const revokeApiKeyTool = defineTool({
  name: "revoke_api_key",
  title: "Revoke API key",
  description:
    "Revoke a key for good: refused everywhere from now on, even in a rotation grace; a predecessor " +
    "still in its grace stops too. Revoking again returns it unchanged. The user may be asked: " +
    "confirmation_declined changes nothing. forbidden: a key with scopes you lack.",
  group: "API Keys",
  inputSchema: revokeApiKeyInput,
  outputSchema: apiKeyRecordSchema,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  scope: "tools:execute",
  handler: (input, context) =>
    context.service.revokeApiKey(
      context.principal,
      input,
      keyStopConfirmation(
        context,
        (key) =>
          `Revoke the API key "${key.name}" (${key.key_prefix}, scopes ${key.scopes.join(", ")})? ` +
          "It stops working everywhere at once, and this cannot be undone.",
      ),
    ),
});
