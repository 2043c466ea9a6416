import * as z from "zod";
import { projectRecordSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const createProjectInput = z
  .strictObject({
    slug: z.string().describe("Unique slug: lowercase letters, digits and dashes, 1-63 characters, starting with a letter or digit."),
    name: z.string().describe("Display name, 1-255 characters."),
    default_scopes: z
      .array(z.string().describe("One scope name, e.g. tools:read."))
      .describe("Scopes of the project's new keys (default: the server's user-level default scopes).")
      .optional(),
  })
  .describe("Input schema for the create_project tool.");

export const createProjectTool = defineTool({
  name: "create_project",
  title: "Create project",
  description:
    "Create a project (admin only), so that keys can be created for it with create_api_key " +
    "project_reference set to its id or slug; those keys get its default_scopes. Returns the " +
    "project. Errors: forbidden when you are not an admin; validation_error naming a bad slug, name " +
    "or scope; conflict when the slug is taken.",
  group: "Projects",
  inputSchema: createProjectInput,
  outputSchema: projectRecordSchema,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  scope: "admin",
  handler: (input, { service, principal }) => service.createProject(principal, input),
});
