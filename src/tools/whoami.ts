import * as z from "zod";
import { transportSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const whoamiInput = z.strictObject({}).describe("Input schema for the whoami tool: no arguments.");

export const whoamiOutput = z
  .strictObject({
    user_id: z.string().describe("The acting user's id (usr_…); keys you create belong to this user."),
    user_name: z.string().describe("The acting user's name."),
    organization_id: z.string().describe("The acting user's organization (org_…)."),
    transport: transportSchema,
    is_admin: z.boolean().describe("True when you act as an admin: you see and change every user's keys and may create projects."),
    key_id: z.string().nullable().describe("The API key this session authenticated with, or null when none (stdio)."),
    scopes: z
      .array(z.string().describe("One scope name."))
      .nullable()
      .describe("The scopes of that key, or null when no key restricts this session."),
  })
  .describe("Structured result returned by the whoami tool.");

export const whoamiTool = defineTool({
  name: "whoami",
  title: "Who am I",
  description:
    "Show who this session acts as: the user, organization, transport, whether it is an admin, and " +
    "the authenticating API key's id and scopes (null over stdio). Use it to know whose keys the " +
    "other tools will list and create. Takes no arguments and never fails.",
  group: "API Keys",
  inputSchema: whoamiInput,
  outputSchema: whoamiOutput,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (_input, { service, principal }) => service.whoami(principal),
});
