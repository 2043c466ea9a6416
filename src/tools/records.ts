import * as z from "zod";
import { NAME_MAX_LENGTH, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX } from "../service/validation.js";
import { cursorRule, pageLimitRule, withRule } from "./rules.js";

// Output shapes shared by several tools. Every field is required; the ones that can be absent are
// nullable, so a client always sees the same keys.
//
// An agent reads every description in every conversation (BENCHMARKS.md, tools/list size): each
// says what its name and type do not, once per tool. A rule shared by several tools is written once
// here.

/** The form an expiry must take (service/validation.ts, checkExpiresAt; the policy's maximum). */
export const EXPIRY_FORM = "ISO 8601 with offset, in the future, within the server's maximum";

/** The length of a name or a reason (service/validation.ts, checkName). */
export const NAME_LENGTH = `1-${NAME_MAX_LENGTH} characters`;

const scopeNames = () => z.array(z.string().describe("A scope."));

/** A list of scope names, e.g. tools:read. */
export const scopeList = (what: string) => scopeNames().describe(what);

/** A list of scope names, or null where no list applies (the description on the nullable, where clients read it). */
export const nullableScopeList = (what: string) => scopeNames().nullable().describe(what);

export const transportSchema = z.enum(["stdio", "http", "cli", "library"]).describe("How the call came (cli: operator).");

/** A key record: never the token, never its hash. */
export const apiKeyRecordSchema = z
  .strictObject({
    id: z.string().describe("Key id (key_…)."),
    project_id: z.string().nullable().describe("Project (prj_…)."),
    user_id: z.string().describe("Owner (usr_…)."),
    organization_id: z.string().describe("Organization (org_…)."),
    name: z.string().describe("Display name."),
    description: z.string().nullable().describe("Free text."),
    key_prefix: z.string().describe("Safe to show."),
    scopes: scopeList("Scopes granted."),
    status: z.enum(["active", "revoked", "expired"]).describe("From revoked_at, then expires_at."),
    created_at: z.string().describe("Creation time."),
    created_by: z
      .strictObject({
        user_id: z.string().describe("User (usr_…)."),
        key_id: z.string().nullable().describe("Key used (none: stdio, CLI)."),
      })
      .describe("Creator."),
    expires_at: z.string().nullable().describe("Expiry (null: never)."),
    last_used_at: z.string().nullable().describe("Last valid use."),
    last_used_ip: z.string().nullable().describe("Its address."),
    last_used_user_agent: z.string().nullable().describe("Its user agent."),
    revoked_at: z.string().nullable().describe("Revocation time."),
    revoked_reason: z.string().nullable().describe("Reason (rotated: no grace)."),
    rotated_from: z.string().nullable().describe("Key it replaced."),
    replaced_by: z.string().nullable().describe("Key that replaced it."),
  })
  .describe("Never the key or its hash. Times: ISO 8601 UTC; null: none.");

export const projectRecordSchema = z
  .strictObject({
    id: z.string().describe("Project id (prj_…)."),
    organization_id: z.string().describe("Organization (org_…)."),
    slug: z.string().describe("Unique slug."),
    name: z.string().describe("Display name."),
    default_scopes: scopeList("Scopes of its new keys."),
    created_at: z.string().describe("Creation time, ISO 8601 UTC."),
  })
  .describe("A project.");

export const keyEventSchema = z
  .strictObject({
    id: z.string().describe("Event id (evt_…)."),
    key_id: z.string().nullable().describe("Key concerned."),
    event_type: z.string().describe("E.g. key.created, auth.failed."),
    actor_user_id: z.string().nullable().describe("Actor."),
    actor_key_id: z.string().nullable().describe("Actor's key."),
    transport: transportSchema,
    client_address: z.string().nullable().describe("HTTP client address."),
    occurred_at: z.string().describe("Time."),
    detail: z.record(z.string(), z.unknown().describe("E.g. {from, to}.")).describe("What changed; never a key or hash."),
  })
  .describe("Times: ISO 8601 UTC; null: none.");

export const nextCursorSchema = z.string().nullable().describe("null: last page.");

export const pageLimitSchema = withRule(
  z.number().int().describe(`1-${PAGE_LIMIT_MAX}, default ${PAGE_LIMIT_DEFAULT}.`),
  pageLimitRule,
).optional();

export const cursorSchema = (kind: "keys" | "events") =>
  withRule(z.string().describe("A next_cursor (opaque)."), cursorRule(kind)).optional();
