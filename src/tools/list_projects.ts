import * as z from "zod";
import { projectRecordSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const listProjectsInput = z.strictObject({}).describe("Input schema for the list_projects tool: no arguments.");

export const listProjectsOutput = z
  .strictObject({
    projects: z.array(projectRecordSchema).describe("Every project of the organization, by slug."),
  })
  .describe("Structured result returned by the list_projects tool.");

export const listProjectsTool = defineTool({
  name: "list_projects",
  title: "List projects",
  description:
    "List the organization's projects with their id, slug, name and default scopes. Pass a project's " +
    "id or slug as project_reference to create_api_key to make a key for it (it gets the project's " +
    "default scopes), or to list_api_keys to filter. Takes no arguments.",
  group: "Projects",
  inputSchema: listProjectsInput,
  outputSchema: listProjectsOutput,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: async (_input, { service, principal }) => ({ projects: await service.listProjects(principal) }),
});
