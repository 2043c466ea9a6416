// keywarden admin create-project | list-projects | list-users
import type { Command } from "commander";
import { parseList } from "../config/parsers.js";
import { adminCommand, withAdminApp, type AdminOptions } from "./admin.js";
import { lines, print, projectCreatedLine, projectLine, userLine } from "./format.js";
import { effectiveOptions } from "./options.js";

export function addCreateProject(admin: Command): void {
  adminCommand(admin, "create-project")
    .description("create a project, so that project-scoped keys can be made")
    .requiredOption("--slug <slug>", "unique slug, ^[a-z0-9][a-z0-9-]{0,62}$")
    .requiredOption("--name <name>", "display name")
    .option("--scopes <a,b>", "default scopes of the project's keys (default: the user-level defaults)")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<AdminOptions & { slug: string; name: string; scopes?: string }>(command);
      return withAdminApp(options, { slug: "--slug", name: "--name", default_scopes: "--scopes" }, async ({ service }, principal) => {
        // The service checks the scopes (and refuses an empty list), naming --scopes.
        const project = await service.createProject(principal, { slug: options.slug, name: options.name, default_scopes: parseList(options.scopes) ?? undefined });
        print(options.json === true, project, projectCreatedLine(project));
      }, { mayCreate: true });
    });
}

export function addListProjects(admin: Command): void {
  adminCommand(admin, "list-projects")
    .description("list the projects of the default organization")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<AdminOptions>(command);
      return withAdminApp(options, {}, async ({ service }, principal) => {
        const projects = await service.listProjects(principal);
        print(options.json === true, projects, lines(projects, projectLine, "no projects"));
      });
    });
}

export function addListUsers(admin: Command): void {
  adminCommand(admin, "list-users")
    .description("list the users of the default organization, with the active keys each holds")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<AdminOptions>(command);
      return withAdminApp(options, {}, async ({ service }, principal) => {
        const users = await service.listUsers(principal);
        print(options.json === true, users, lines(users, userLine, "no users"));
      });
    });
}
