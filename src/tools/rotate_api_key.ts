import * as z from "zod";
import { keyStopConfirmation } from "./confirm.js";
import { createApiKeyOutput } from "./create_api_key.js";
import { graceRule, withRule } from "./rules.js";
import { defineTool } from "./tool.js";

export const rotateApiKeyInput = z
  .strictObject({
    id: z.string().describe("Key id (key_…)."),
    grace_period_seconds: withRule(
      z.number().int().describe("Seconds the old key keeps working, 0-2592000 (30 days); default 0."),
      graceRule,
    ).optional(),
  })
  .describe("The key to replace.");

export const rotateApiKeyOutput = createApiKeyOutput
  .extend({
    previous_key_id: z.string().describe("The replaced key's id."),
    previous_key_expires_at: z.string().describe("When it stops working, ISO 8601 UTC."),
  })
  .describe("The new key as create_api_key returns it, and the old key's end.");

export const rotateApiKeyTool = defineTool({
  name: "rotate_api_key",
  title: "Rotate API key",
  description:
    "Replace a key with one of the same owner, project, name, description and scopes, shown only " +
    "here: store it now. Its lifetime is the old one's from now if an admin rotates, else it ends when " +
    "the old key would. The old key works grace_period_seconds more (one overlap per chain). No " +
    "key-limit check. conflict: not active or already rotated. Grace 0 may ask the user: " +
    "confirmation_declined changes nothing.",
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
