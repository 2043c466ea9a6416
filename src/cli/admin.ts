// What every `keywarden admin` command shares: it opens the App as an admin principal, speaks of
// fields by their flags, closes the App whatever happens, and prints whole listings.
import type { Command } from "commander";
import { ConfigError, type RawOptions } from "../config/index.js";
import { ServiceError } from "../service/errors.js";
import type { Principal } from "../service/principal.js";
import type { KeyService } from "../service/service.js";
import { openApp, type App } from "./app.js";
import type { UserNames } from "./format.js";
import { addCommonOptions } from "./options.js";

/** Options of every admin command: the common ones and --json. */
export type AdminOptions = RawOptions & { json?: boolean };

/** The flag (or argument) that carries each service field of an admin command, e.g. project_reference → --project. */
export type FlagsByField = Readonly<Record<string, string>>;

/** `keywarden admin <name>` with the common options; each command adds --json last, as `--help` lists it. */
export function adminCommand(admin: Command, name: string): Command {
  return addCommonOptions(admin.command(name));
}

/**
 * A refusal told in the command's own terms: fields named by their flags. A validation_error is a
 * bad flag value (exit 2, as every bad flag); other refusals (not_found, max_keys_reached) exit 1.
 */
export function inFlagTerms(error: unknown, flags: FlagsByField): unknown {
  if (!(error instanceof ServiceError)) return error;
  const fields = error.errors.map((field) => ({ ...field, key: flags[field.key] ?? field.key }));
  if (error.code === "validation_error") {
    return new ConfigError(`validation_error: ${fields.map((field) => `${field.key}: ${field.message}`).join("; ")}`);
  }
  return new ServiceError(error.code, error.message, fields);
}

/** Opens the App for an admin command; only the commands that bootstrap (create-key, create-project) may create the database. */
export async function withAdminApp<T>(
  options: RawOptions,
  flags: FlagsByField,
  run: (app: App, principal: Principal) => Promise<T>,
  { mayCreate = false }: { mayCreate?: boolean } = {},
): Promise<T> {
  const app = await openApp(options, { mayCreate });
  try {
    const principal = await app.service.localPrincipal({ userName: app.config.userName, transport: "cli", isAdmin: true });
    return await run(app, principal);
  } catch (error) {
    throw inFlagTerms(error, flags);
  } finally {
    await app.close();
  }
}

/** Every item of a paged listing, walking its cursors: the admin commands print whole listings. */
export async function everyPage<T>(fetchPage: (cursor: string | undefined) => Promise<{ items: T[]; next: string | null }>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    items.push(...page.items);
    cursor = page.next ?? undefined;
  } while (cursor !== undefined);
  return items;
}

/** User names by id, so that listings name owners and actors instead of showing usr_ ids. */
export async function userNamesById(service: KeyService, principal: Principal): Promise<UserNames> {
  return new Map((await service.listUsers(principal)).map((user) => [user.id, user.name]));
}
