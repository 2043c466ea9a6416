import * as z from "zod";

// Output shapes shared by several tools. Every field is required; the ones that can be absent are
// nullable, so a client always sees the same keys.

const scopeList = (what: string) => z.array(z.string().describe("One scope name, e.g. tools:read.")).describe(what);

export const transportSchema = z
  .enum(["stdio", "http", "cli", "library"])
  .describe("How the call reached keywarden: stdio, http, cli (operator commands) or library.");

/** A key record: never the token, never its hash. */
export const apiKeyRecordSchema = z
  .strictObject({
    id: z.string().describe("The key's id (key_…); pass it to get_api_key, update_api_key, rotate_api_key or revoke_api_key."),
    project_id: z.string().nullable().describe("The project the key belongs to (prj_…), or null for a user-level key."),
    user_id: z.string().describe("The user who owns the key (usr_…)."),
    organization_id: z.string().describe("The organization of the key's owner (org_…)."),
    name: z.string().describe("The key's display name."),
    description: z.string().nullable().describe("Free-text description, or null when none was set."),
    key_prefix: z
      .string()
      .describe("The public start of the token (brand_publicId), safe to display and log; the secret part is never shown again."),
    scopes: scopeList("The scopes the key grants."),
    status: z
      .enum(["active", "revoked", "expired"])
      .describe("Derived now: revoked if revoked_at is set, else expired if expires_at has passed, else active."),
    created_at: z.string().describe("When the key was created, ISO 8601 UTC."),
    created_by: z
      .strictObject({
        user_id: z.string().describe("The user who created the key (usr_…)."),
        key_id: z.string().nullable().describe("The API key that authenticated the creating call, or null when none did (stdio, CLI)."),
      })
      .describe("Who created the key."),
    expires_at: z.string().nullable().describe("When the key stops being accepted, ISO 8601 UTC; null means it never expires."),
    last_used_at: z.string().nullable().describe("The last successful verification of the key, ISO 8601 UTC; null if never used."),
    last_used_ip: z.string().nullable().describe("The client address of the last successful use, when the verifier passed one; else null."),
    last_used_user_agent: z
      .string()
      .nullable()
      .describe("The user agent of the last successful use, when the verifier passed one; else null."),
    revoked_at: z.string().nullable().describe("When the key was revoked, ISO 8601 UTC; null if it was not."),
    revoked_reason: z.string().nullable().describe("Why the key was revoked (\"rotated\" for a rotation without grace); null if not revoked or no reason was given."),
    rotated_from: z.string().nullable().describe("The key this one replaced through rotate_api_key, or null."),
    replaced_by: z.string().nullable().describe("The key that replaced this one through rotate_api_key, or null."),
  })
  .describe("An API key record. It never contains the key itself or its hash.");

export const projectRecordSchema = z
  .strictObject({
    id: z.string().describe("The project's id (prj_…)."),
    organization_id: z.string().describe("The organization the project belongs to (org_…)."),
    slug: z.string().describe("The project's unique slug; create_api_key accepts it as project_reference."),
    name: z.string().describe("The project's display name."),
    default_scopes: scopeList("The scopes a new key of this project gets."),
    created_at: z.string().describe("When the project was created, ISO 8601 UTC."),
  })
  .describe("A project.");

export const keyEventSchema = z
  .strictObject({
    id: z.string().describe("The event's id (evt_…)."),
    key_id: z.string().nullable().describe("The key the event is about, or null for an event about no key (e.g. project.created)."),
    event_type: z
      .string()
      .describe("What happened: key.created, key.updated, key.rotated, key.revoked, project.created, …"),
    actor_user_id: z.string().nullable().describe("The user who acted, or null when unknown (e.g. a failed authentication)."),
    actor_key_id: z.string().nullable().describe("The API key the actor authenticated with, or null when none was used."),
    transport: transportSchema,
    client_address: z.string().nullable().describe("The client's network address for HTTP calls; null otherwise."),
    occurred_at: z.string().describe("When it happened, ISO 8601 UTC."),
    detail: z
      .record(z.string(), z.unknown().describe("A value describing the change, e.g. {from, to} names or scopes."))
      .describe("What changed, as a small JSON object. Never a key or a hash."),
  })
  .describe("One entry of the audit log.");

export const nextCursorSchema = z
  .string()
  .nullable()
  .describe("Pass as cursor to get the next page; null when this is the last page.");

export const pageLimitSchema = z
  .number()
  .int()
  .describe("Items per page, an integer from 1 to 100 (default 50).")
  .optional();

export const cursorSchema = z
  .string()
  .describe("The next_cursor of the previous page; omit for the first page. Cursors are opaque: do not build or change them.")
  .optional();
