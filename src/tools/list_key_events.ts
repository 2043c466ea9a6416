import * as z from "zod";
import { cursorSchema, keyEventSchema, nextCursorSchema, pageLimitSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const listKeyEventsInput = z
  .strictObject({
    key_id: z.string().describe("Only events of this key (key_…); omit for every event you may see.").optional(),
    limit: pageLimitSchema,
    cursor: cursorSchema,
  })
  .describe("Input schema for the list_key_events tool.");

export const listKeyEventsOutput = z
  .strictObject({
    events: z.array(keyEventSchema).describe("One page of audit events, oldest first."),
    next_cursor: nextCursorSchema,
  })
  .describe("Structured result returned by the list_key_events tool.");

export const listKeyEventsTool = defineTool({
  name: "list_key_events",
  title: "List key events",
  description:
    "Read the audit log, oldest first, one page at a time: every create, update, rotate and revoke " +
    "with who did it, over which transport, when, and what changed (detail). You see events of your " +
    "own keys; an admin sees every event of the organization. When next_cursor is not null, call " +
    "again with cursor set to it. Errors: validation_error for a limit outside 1-100 or a cursor this " +
    "tool did not return; not_found for a key_id that is unknown or not yours.",
  group: "Audit",
  inputSchema: listKeyEventsInput,
  outputSchema: listKeyEventsOutput,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (input, { service, principal }) => service.listKeyEvents(principal, input),
});
