import * as z from "zod";
import { NAME_LENGTH, projectRecordSchema, scopeList } from "./records.js";
import { nameRule, scopesRule, withRule } from "./rules.js";
import { defineTool } from "./tool.js";

export const createProjectInput = z
  .strictObject({
    slug: z.string().describe("Unique; 1-63 of a-z, 0-9 and -, not starting with -."),
    name: withRule(z.string().describe(`${NAME_LENGTH}.`), nameRule),
    default_scopes: withRule(scopeList("Scopes of its new keys; default: the user-level defaults."), scopesRule).optional(),
  })
  .describe("The new project.");

export const createProjectTool = defineTool({
  name: "create_project",
  title: "Create project",
  description:
    "Create a project (admin only): create_api_key with project_reference set to its id or slug then " +
    "makes keys with its default_scopes. conflict: the slug is taken.",
  group: "Projects",
  inputSchema: createProjectInput,
  outputSchema: projectRecordSchema,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  scope: "admin",
  handler: (input, { service, principal }) => service.createProject(principal, input),
});
