import * as z from "zod";
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
    "grace period ends the grace period now. Errors: validation_error for a bad reason; not_found " +
    "for an unknown id or another user's key.",
  group: "API Keys",
  inputSchema: revokeApiKeyInput,
  outputSchema: apiKeyRecordSchema,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  handler: (input, { service, principal }) => service.revokeApiKey(principal, input),
});
