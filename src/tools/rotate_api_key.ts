import * as z from "zod";
import { DAY_MS, GRACE_PERIOD_DEFAULT_SECONDS, GRACE_PERIOD_MAX_SECONDS } from "../service/validation.js";
import { keyStopConfirmation } from "./confirm.js";
import { createApiKeyOutput } from "./create_api_key.js";
import { graceRule, withRule } from "./rules.js";
import { defineTool } from "./tool.js";

export const rotateApiKeyInput = z
  .strictObject({
    id: z.string().describe("Key id (key_…)."),
    grace_period_seconds: withRule(
      z.number().int().describe(
        `Seconds the old key keeps working (one overlap per chain), 0-${GRACE_PERIOD_MAX_SECONDS} ` +
          `(${(GRACE_PERIOD_MAX_SECONDS * 1000) / DAY_MS} days); default ${GRACE_PERIOD_DEFAULT_SECONDS}.`,
      ),
      graceRule,
    ).optional(),
  })
  .describe("The key to replace.");

const created = createApiKeyOutput.shape;

/**
 * create_api_key's fields, the same schemas in the same order (README, Tools), each described in
 * keywarden's words rather than the spec's generic ones ("The key associated with this tool
 * result."), which only create_api_key must keep: 265 bytes less in tools/list. Then the old
 * key's end.
 */
export const rotateApiKeyOutput = createApiKeyOutput
  .extend({
    id: created.id.describe("New key id (key_…)."),
    project_id: created.project_id.describe("Project (prj_…); null: user-level."),
    user_id: created.user_id.describe("Owner (usr_…)."),
    name: created.name.describe("Display name."),
    key: created.key.describe("The new key, in full."),
    key_prefix: created.key_prefix.describe("Safe to show."),
    expires_at: created.expires_at.describe("Expiry; null: never."),
    created_at: created.created_at.describe("Creation time."),
    scopes: z.array(created.scopes.element.describe("A scope.")).describe("Scopes granted."),
    previous_key_id: z.string().describe("The replaced key's id."),
    previous_key_expires_at: z.string().describe("When it stops working."),
  })
  .describe("The new key as create_api_key returns it, and the old key's end. Times: ISO 8601 UTC.");

export const rotateApiKeyTool = defineTool({
  name: "rotate_api_key",
  title: "Rotate API key",
  description:
    "Replace a key with one of the same owner, project, name, description and scopes, shown only " +
    "here: store it now. Its lifetime is the old one's from now if an admin rotates, else it ends when " +
    "the old key would. No key-limit check. conflict: not active or already rotated. Grace 0 may ask " +
    "the user: confirmation_declined changes nothing.",
  group: "API Keys",
  inputSchema: rotateApiKeyInput,
  outputSchema: rotateApiKeyOutput,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  scope: "tools:execute",
  handler: (input, context) =>
    context.service.rotateApiKey(
      context.principal,
      input,
      keyStopConfirmation(
        context,
        (key) =>
          `Rotate the API key "${key.name}" (${key.key_prefix})? The old key stops working at once; ` +
          "decline and pass grace_period_seconds to keep it working while clients switch.",
      ),
    ),
});
