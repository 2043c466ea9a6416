import * as z from "zod";
import { cursorSchema, keyEventSchema, nextCursorSchema, pageLimitSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const listKeyEventsInput = z
  .strictObject({
    key_id: z.string().describe("Only this key's events (key_…).").optional(),
    limit: pageLimitSchema,
    cursor: cursorSchema("events"),
  })
  .describe("Filter and paging.");

export const listKeyEventsOutput = z
  .strictObject({
    events: z.array(keyEventSchema).describe("Events, oldest first."),
    next_cursor: nextCursorSchema,
  })
  .describe("One page of events.");

export const listKeyEventsTool = defineTool({
  name: "list_key_events",
  title: "List key events",
  description:
    "Read the audit log: key changes, failed authentications and denied calls. Yours, or all for an " +
    "admin. While next_cursor is not null, pass it as cursor.",
  group: "Audit",
  inputSchema: listKeyEventsInput,
  outputSchema: listKeyEventsOutput,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: (input, { service, principal }) => service.listKeyEvents(principal, input),
});
