// What the admin commands print: JSON with --json, otherwise one line per record. Only this file
// knows the human layout; the commands hand it records.
import type { ApiKeyRecord, KeyEventRecord, ProjectRecord, UserRecord } from "../service/records.js";
import type { CreatedApiKey } from "../service/types.js";

/** Names users by id, so that listings show owners and actors instead of usr_ ids. */
export type UserNames = ReadonlyMap<string, string>;

export function print(json: boolean, value: unknown, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
}

/** One line per item, or `empty` when there is none. */
export function lines<T>(items: readonly T[], line: (item: T) => string, empty: string): string {
  return items.length > 0 ? items.map(line).join("\n") : empty;
}

export const projectCreatedLine = (project: ProjectRecord): string =>
  `created project ${project.slug} (${project.id}) with default scopes ${project.default_scopes.join(",")}`;

export const projectLine = (project: ProjectRecord): string =>
  `${project.id}  ${project.slug}  ${project.name}  [${project.default_scopes.join(",")}]`;

export const userLine = (user: UserRecord): string => `${user.id}  ${user.name}  ${user.active_keys} active`;

/** For stderr: stdout carries the key alone, so that `KEY=$(keywarden admin create-key …)` works. */
export const keyCreatedNotice = (created: CreatedApiKey, userName: string): string =>
  `keywarden: created ${created.id} (${created.key_prefix}) for user ${userName}, scopes ${created.scopes.join(",")}, ` +
  `expires ${created.expires_at ?? "never"}. The key above is shown only this once.\n`;

export const keyLine =
  (userNames: UserNames) =>
  (key: ApiKeyRecord): string =>
    `${key.id}  ${key.key_prefix}  ${key.status}  ${userNames.get(key.user_id) ?? key.user_id}  ${JSON.stringify(key.name)}  ` +
    `scopes ${key.scopes.join(",")}  expires ${key.expires_at ?? "never"}  last used ${key.last_used_at ?? "never"}`;

export const keyRevokedLine = (key: ApiKeyRecord): string => `revoked ${key.id} (${key.key_prefix}) at ${key.revoked_at}`;

export const eventLine =
  (userNames: UserNames) =>
  (event: KeyEventRecord): string => {
    const actor = event.actor_user_id === null ? "-" : (userNames.get(event.actor_user_id) ?? event.actor_user_id);
    return (
      `${event.occurred_at}  ${event.event_type}  key ${event.key_id ?? "-"}  by ${actor}` +
      `${event.actor_key_id ? ` with ${event.actor_key_id}` : ""} over ${event.transport}` +
      `${event.client_address ? ` from ${event.client_address}` : ""}  ${JSON.stringify(event.detail)}`
    );
  };
