import * as z from "zod";
import { defineTool } from "./tool.js";

export const verifyApiKeyInput = z
  .strictObject({
    key: z.string().describe("The full API key to check, e.g. kw_…; it is never echoed back or logged."),
    required_scopes: z
      .array(z.string().describe("One scope name the key must hold, e.g. tools:read."))
      .describe("Scopes the key must all hold for valid to be true (exact names; admin does not imply others). Default: none.")
      .optional(),
  })
  .describe("Input schema for the verify_api_key tool.");

const nullable = (description: string) => z.string().nullable().describe(description);

export const verifyApiKeyOutput = z
  .strictObject({
    valid: z.boolean().describe("True only when code is valid: the key may be accepted."),
    code: z
      .enum(["valid", "malformed", "not_found", "revoked", "expired", "insufficient_scope"])
      .describe(
        "valid; malformed (not a key of this server, or a typo: the checksum fails); not_found (well-formed but unknown); " +
          "revoked; expired; insufficient_scope (a required scope is missing).",
      ),
    key_id: nullable("The key's id, for a known key (revoked, expired, insufficient_scope, valid); else null."),
    key_prefix: nullable("The key's prefix, for a known key; else null."),
    user_id: nullable("The key's owner, for a known key; else null."),
    organization_id: nullable("The owner's organization, for a known key; else null."),
    project_id: nullable("The key's project, for a known project key; null for a user-level or unknown key."),
    scopes: z
      .array(z.string().describe("One scope name."))
      .nullable()
      .describe("The key's scopes, for a known key; else null."),
    expires_at: nullable("The key's expiry (ISO 8601 UTC), for a known key that expires; else null."),
  })
  .describe("Structured result returned by the verify_api_key tool. It never contains the key.");

export const verifyApiKeyTool = defineTool({
  name: "verify_api_key",
  title: "Verify API key",
  description:
    "Check an API key minted by this server: is it well-formed, known, not revoked, not expired, and " +
    "does it hold every required_scopes entry? Always answers with valid and a code (valid, malformed, " +
    "not_found, revoked, expired, insufficient_scope); a bad key is a normal answer, not an error. For " +
    "a known key it also returns its id, prefix, owner, project, scopes and expiry. The key is never " +
    "echoed. A valid verification records the key's last use time; nothing else changes. Errors: " +
    "validation_error only for a malformed request (e.g. an invalid scope name in required_scopes).",
  group: "API Keys",
  inputSchema: verifyApiKeyInput,
  outputSchema: verifyApiKeyOutput,
  // Not read-only: a valid verification records the key's last use. Yet a tools:read key may call
  // it: checking a key changes no key's behaviour (README, Tools), and the scope is declared here,
  // not inferred from the hint.
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (input, { service }) => service.verifyApiKey(input.key, { requiredScopes: input.required_scopes }),
});
