import * as z from "zod";
import { ServiceError, validationError } from "../service/errors.js";
import type { KeyService } from "../service/service.js";
import type { VerifyOptions, VerifyResult } from "../service/types.js";
import { nullableScopeList, scopeList } from "./records.js";
import { requiredScopesRule, withRule } from "./rules.js";
import { defineTool } from "./tool.js";

export const verifyApiKeyInput = z
  .strictObject({
    key: z.string().describe("The full key; never echoed or logged."),
    required_scopes: withRule(scopeList("Scopes the key must all hold (exact; admin implies none)."), requiredScopesRule).optional(),
  })
  .describe("The key to check.");

/**
 * service.verifyApiKey for the callers whose field is `required_scopes` (this tool, POST
 * /v1/keys/verify): the service names the option as its library callers pass it, requiredScopes,
 * and a refusal names the field the caller sent (call.ts merges it with this schema's own).
 */
export async function verifyForSnakeCaseCaller(service: KeyService, key: string, options: VerifyOptions): Promise<VerifyResult> {
  try {
    return await service.verifyApiKey(key, options);
  } catch (error) {
    if (!(error instanceof ServiceError) || error.code !== "validation_error") throw error;
    throw validationError(error.errors.map((field) => (field.key === "requiredScopes" ? { ...field, key: "required_scopes" } : field)));
  }
}

const nullable = (description: string) => z.string().nullable().describe(description);

export const verifyApiKeyOutput = z
  .strictObject({
    valid: z.boolean().describe("True only when code is valid."),
    code: z
      .enum(["valid", "malformed", "not_found", "revoked", "expired", "insufficient_scope"])
      .describe("malformed: not this server's, or a typo."),
    key_id: nullable("Key id (key_…)."),
    key_prefix: nullable("Key prefix."),
    user_id: nullable("Owner (usr_…)."),
    organization_id: nullable("Owner's organization (org_…)."),
    project_id: nullable("Project (prj_…); null: user-level key."),
    scopes: nullableScopeList("The key's scopes."),
    expires_at: nullable("Expiry, ISO 8601 UTC; null: never."),
  })
  .describe("The verdict, never the key. After code, null for an unknown key.");

export const verifyApiKeyTool = defineTool({
  name: "verify_api_key",
  title: "Verify API key",
  description:
    "Check a key minted here, and that it holds all required_scopes. A bad key is an answer (valid " +
    "false, its code), not an error. Records a valid key's last use.",
  group: "API Keys",
  inputSchema: verifyApiKeyInput,
  outputSchema: verifyApiKeyOutput,
  // Not read-only: a valid verification records the key's last use. Yet a tools:read key may call
  // it: checking a key changes no key's behaviour (README, Tools), and the scope is declared here,
  // not inferred from the hint.
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (input, { service }) => verifyForSnakeCaseCaller(service, input.key, { requiredScopes: input.required_scopes }),
});
