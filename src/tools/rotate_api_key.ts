import * as z from "zod";
import { keyStopConfirmation } from "./confirm.js";
import { createApiKeyOutput } from "./create_api_key.js";
import { defineTool } from "./tool.js";

export const rotateApiKeyInput = z
  .strictObject({
    id: z.string().describe("The id (key_…) of the key to replace."),
    grace_period_seconds: z
      .number()
      .int()
      .describe(
        "How long the old key keeps working, in seconds, 0 to 2592000 (30 days). Default 0: the old key is revoked at once. " +
          "Pass e.g. 3600 to give deployments an hour to switch to the new key.",
      )
      .optional(),
  })
  .describe("Input schema for the rotate_api_key tool.");

export const rotateApiKeyOutput = createApiKeyOutput
  .extend({
    previous_key_id: z.string().describe("The id of the key that was replaced."),
    previous_key_expires_at: z
      .string()
      .describe("When the replaced key stops being accepted, ISO 8601 UTC: the end of the grace period, or now when it was revoked at once."),
  })
  .describe("Structured result returned by the rotate_api_key tool: the new key, as create_api_key returns it, and the fate of the old one.");

export const rotateApiKeyTool = defineTool({
  name: "rotate_api_key",
  title: "Rotate API key",
  description:
    "Replace a key with a new one that has the same owner, project, name, description and scopes, " +
    "and the same lifetime counted from now (capped at the server's maximum). The new key's full " +
    "value is returned only in this response: store it now. The old key keeps working for " +
    "grace_period_seconds (default 0: revoked at once) and both are linked (replaced_by / " +
    "rotated_from). Rotation does not count against the active-key limit: it replaces, it does not " +
    "add. Rotating a key whose predecessor is still in its grace period ends that grace now: one " +
    "overlap per chain. With grace 0 a client that supports elicitation is asked to have the user confirm first. " +
    "Errors: validation_error for a grace period outside 0-2592000; not_found for an unknown id " +
    "or another user's key; forbidden when you do not hold every scope of the key; conflict when the key is revoked, expired or already rotated (rotate its " +
    "successor instead); confirmation_declined when the user says no (nothing is changed).",
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
