import * as z from "zod";
import { nullableScopeList, transportSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const whoamiInput = z.strictObject({}).describe("No arguments.");

export const whoamiOutput = z
  .strictObject({
    user_id: z.string().describe("Acting user (usr_…)."),
    user_name: z.string().describe("Their name."),
    organization_id: z.string().describe("Organization (org_…)."),
    transport: transportSchema,
    is_admin: z.boolean().describe("Acts on every user's keys; may create projects."),
    key_id: z.string().nullable().describe("Authenticating key; null: none (stdio)."),
    scopes: nullableScopeList("Its scopes; null: no key restricts you."),
  })
  .describe("Who this session acts as.");

export const whoamiTool = defineTool({
  name: "whoami",
  title: "Who am I",
  description:
    "Show who this session acts as: the user whose keys the other tools list and create, organization, " +
    "transport, admin or not, and the key's id and scopes.",
  group: "API Keys",
  inputSchema: whoamiInput,
  outputSchema: whoamiOutput,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (_input, { service, principal }) => service.whoami(principal),
});
