import * as z from "zod";
import { projectRecordSchema } from "./records.js";
import { defineTool } from "./tool.js";

export const listProjectsInput = z.strictObject({}).describe("No arguments.");

export const listProjectsOutput = z
  .strictObject({
    projects: z.array(projectRecordSchema).describe("All projects, by slug."),
  })
  .describe("The organization's projects.");

export const listProjectsTool = defineTool({
  name: "list_projects",
  title: "List projects",
  description:
    "List the organization's projects. Pass an id or slug as project_reference to create_api_key (the " +
    "key gets its default scopes) or list_api_keys.",
  group: "Projects",
  inputSchema: listProjectsInput,
  outputSchema: listProjectsOutput,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  scope: "tools:read",
  handler: async (_input, { service, principal }) => ({ projects: await service.listProjects(principal) }),
});
