import * as z from "zod";
import { keyStopConfirmation } from "./confirm.js";
import { apiKeyRecordSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const revokeApiKeyInput = z
  .strictObject({
    id: z.string().describe("The id (key_…) of the key to revoke."),
    reason: z.string().describe("Why the key is revoked, 1-255 characters; kept in the record and the audit log.").optional(),
  })
  .describe("Input schema for the revoke_api_key tool.");

export const revokeApiKeyTool = defineTool({
  name: "revoke_api_key",
  title: "Revoke API key",
  description:
    "Revoke a key: from now on it is refused everywhere, and this cannot be undone. Returns the " +
    "record with status revoked. Revoking an already revoked key is not an error: the record comes " +
    "back unchanged (the first revocation time and reason stay). Revoking a key in its rotation " +
    "grace period ends the grace period now. A client that supports elicitation is asked to have " +
    "the user confirm first. Errors: validation_error for a bad reason; not_found for an unknown id " +
    "or another user's key; forbidden when you do not hold every scope of the key (the message names " +
    "the missing ones); confirmation_declined when the user says no (nothing is changed).",
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
