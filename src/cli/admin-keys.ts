// keywarden admin create-key | list-keys | revoke-key
import type { Command } from "commander";
import { parseName, parseScopeList, positiveInteger } from "../config/index.js";
import type { ListApiKeysInput } from "../service/types.js";
import { PAGE_LIMIT_MAX } from "../service/validation.js";
import { adminCommand, everyPage, userNamesById, withAdminApp, type AdminOptions } from "./admin.js";
import { keyCreatedNotice, keyLine, keyRevokedLine, lines, print } from "./format.js";
import { effectiveOptions, givenAsFlag } from "./options.js";

export function addCreateKey(admin: Command): void {
  adminCommand(admin, "create-key")
    .description(
      "create an API key for --user (default: the operator) and print it once on stdout, nothing else there; " +
        "the bootstrap of the first admin key: --scopes admin",
    )
    .requiredOption("--name <name>", "display name of the key")
    .option("--scopes <a,b>", "scopes of the key (default: the project's or the user-level defaults); any scope, this is an admin command")
    .option("--project <id|slug>", "make a project key")
    .option("--expires-in-days <n>", "expiry, in days from now (default: the default expiry policy)")
    .option("--json", "print the key and its fields as JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<AdminOptions & { name: string; scopes?: string; project?: string; expiresInDays?: string }>(command);
      const flags = { name: "--name", project_reference: "--project", expires_in_days: "--expires-in-days", scopes: "--scopes", owner: "--user" };
      // --user names the key's owner; the operator (KEYWARDEN_USER, else the OS user) stays the
      // one who acts, and the audit log says so.
      const owner = givenAsFlag(command, "user") && options.user !== undefined ? parseName("--user / KEYWARDEN_USER", options.user) : undefined;
      const operator = owner === undefined ? options : { ...options, user: process.env.KEYWARDEN_USER };
      return withAdminApp(operator, flags, async ({ service }, principal) => {
        const expiresInDays = options.expiresInDays === undefined ? undefined : positiveInteger("--expires-in-days", options.expiresInDays, 0);
        // The service makes the instant, within policy and MAX_INSTANT (src/store/instants.ts).
        const created = await service.createApiKey(principal, {
          name: options.name,
          project_reference: options.project,
          expires_in_days: expiresInDays,
          scopes: options.scopes === undefined ? undefined : parseScopeList("--scopes", options.scopes),
          owner,
        });
        // stdout gets the key and nothing else; the rest is for the operator's eyes.
        print(options.json === true, created, created.key);
        if (options.json !== true) process.stderr.write(keyCreatedNotice(created, owner ?? principal.userName));
      }, { mayCreate: true });
    });
}

export function addListKeys(admin: Command): void {
  adminCommand(admin, "list-keys")
    .description("list every user's keys, oldest first: prefixes and fields, never a token or a hash")
    .option("--status <status>", "active, revoked, expired or all (default: active)")
    .option("--project <id|slug>", "only this project's keys")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<AdminOptions & { status?: string; project?: string }>(command);
      return withAdminApp(options, { status: "--status", project_reference: "--project" }, async ({ service }, principal) => {
        const keys = await everyPage(async (cursor) => {
          const page = await service.listApiKeys(principal, {
            status: options.status as ListApiKeysInput["status"], // checked by the service
            project_reference: options.project,
            limit: PAGE_LIMIT_MAX,
            cursor,
          });
          return { items: page.keys, next: page.next_cursor };
        });
        print(options.json === true, keys, lines(keys, keyLine(await userNamesById(service, principal)), "no keys"));
      });
    });
}

export function addRevokeKey(admin: Command): void {
  adminCommand(admin, "revoke-key")
    .description("revoke a key at once, by id (a key_… id from list-keys); revoking twice is not an error")
    .argument("<id>", "the key's id")
    .option("--reason <text>", "why, kept in the key's record and the audit log")
    .option("--json", "print the revoked key's record as JSON")
    .action((id: string, _options: unknown, command: Command) => {
      const options = effectiveOptions<AdminOptions & { reason?: string }>(command);
      return withAdminApp(options, { id: "<id>", reason: "--reason" }, async ({ service }, principal) => {
        const key = await service.revokeApiKey(principal, { id, reason: options.reason });
        print(options.json === true, key, keyRevokedLine(key));
      });
    });
}
