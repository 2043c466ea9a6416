// How rows travel between JavaScript and PostgreSQL's types: instants as canonical toISOString()
// text in code (src/store/instants.ts) and timestamptz in the database, key hashes as bytea, scopes
// as text[], event details as json. The same rows in and out as the SQLite store gives them.
import type postgres from "postgres";
import type { HashAlgorithm } from "../keys/hash.js";
import type { ApiKeyRow, KeyEventRow, ProjectRow, Transport, VerifiableKey } from "./types.js";

const TIMESTAMPTZ = 1184;

/**
 * A canonical instant as PostgreSQL reads it. PostgreSQL has no year 0: the canonical year 0000
 * (toISOString's astronomical year numbering, the earliest instants keywarden keeps) is its 1 BC.
 */
export function toPgTimestamp(value: string | Date): string {
  const instant = typeof value === "string" ? value : value.toISOString();
  if (!instant.startsWith("0000-")) return instant;
  return `0001${instant.slice(4, 10)} ${instant.slice(11, 23)}+00 BC`;
}

// timestamptz as the connection writes it (TimeZone=UTC, DateStyle=ISO: src/store/postgres-open.ts):
// `2026-06-01 12:00:00.123+00`, fractions of up to 6 digits, ` BC` before year 1.
const PG_TIMESTAMP = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?\+00( BC)?$/;

/** A timestamptz as the canonical instant: whole milliseconds (a finer fraction, written by hand, is cut). */
export function fromPgTimestamp(text: string): string {
  const match = PG_TIMESTAMP.exec(text);
  if (!match || (match[8] !== undefined && match[1] !== "0001")) {
    throw new RangeError(`timestamptz ${JSON.stringify(text)} is not an instant keywarden keeps (0000-01-01 to 9999-12-31, UTC)`);
  }
  const year = match[8] === undefined ? match[1] : "0000";
  const milliseconds = (match[7] ?? "").padEnd(3, "0").slice(0, 3);
  return `${year}-${match[2]}-${match[3]}T${match[4]}:${match[5]}:${match[6]}.${milliseconds}Z`;
}

/**
 * postgres.js type handlers: every timestamptz parameter (named by the server's description of the
 * statement, arrays included) is written with toPgTimestamp, every timestamptz column read with
 * fromPgTimestamp, instead of postgres.js's Date.
 */
export const PG_TYPES = {
  instant: { to: TIMESTAMPTZ, from: [TIMESTAMPTZ], serialize: toPgTimestamp, parse: fromPgTimestamp },
} satisfies Record<string, postgres.PostgresType>;

/** A key row as postgres.js reads it. */
export interface ApiKeyPgRow extends Omit<ApiKeyRow, "key_hash" | "hash_algorithm"> {
  key_hash: Buffer;
  hash_algorithm: string;
}
export type VerifiableKeyPgRow = Omit<VerifiableKey, "key_prefix" | "hash_algorithm"> & { hash_algorithm: string };
export interface KeyEventPgRow extends Omit<KeyEventRow, "transport"> {
  transport: string;
}

/** A whole key row, its hash copied into a Uint8Array of its own as the SQLite store gives it. */
export function toApiKeyRow(row: ApiKeyPgRow): ApiKeyRow {
  return {
    id: row.id,
    organization_id: row.organization_id,
    user_id: row.user_id,
    project_id: row.project_id,
    name: row.name,
    description: row.description,
    key_prefix: row.key_prefix,
    key_hash: new Uint8Array(row.key_hash),
    hash_algorithm: row.hash_algorithm as HashAlgorithm,
    scopes: row.scopes,
    created_at: row.created_at,
    created_by_user_id: row.created_by_user_id,
    created_by_key_id: row.created_by_key_id,
    expires_at: row.expires_at,
    last_used_at: row.last_used_at,
    last_used_ip: row.last_used_ip,
    last_used_user_agent: row.last_used_user_agent,
    revoked_at: row.revoked_at,
    revoked_reason: row.revoked_reason,
    rotated_from: row.rotated_from,
    replaced_by: row.replaced_by,
  };
}

export function toProjectRow(row: ProjectRow): ProjectRow {
  return { id: row.id, organization_id: row.organization_id, slug: row.slug, name: row.name, default_scopes: row.default_scopes, created_at: row.created_at };
}

export function toKeyEventRow(row: KeyEventPgRow): KeyEventRow {
  return {
    id: row.id,
    organization_id: row.organization_id,
    key_id: row.key_id,
    event_type: row.event_type,
    actor_user_id: row.actor_user_id,
    actor_key_id: row.actor_key_id,
    transport: row.transport as Transport,
    client_address: row.client_address,
    occurred_at: row.occurred_at,
    detail: row.detail,
  };
}

/** The columns of key_events a row is written with, in this order (KEY_EVENT_INSERT's). */
export const KEY_EVENT_COLUMNS = [
  "id",
  "organization_id",
  "key_id",
  "event_type",
  "actor_user_id",
  "actor_key_id",
  "transport",
  "client_address",
  "occurred_at",
  "detail",
] as const;

/**
 * Any number of events in one statement, one array per column, inserted in the order given (so
 * that seq, the tie-break of one instant, is their order). detail travels as JSON text.
 */
export const KEY_EVENT_INSERT = `INSERT INTO key_events (${KEY_EVENT_COLUMNS.join(", ")})
  SELECT e.id, e.organization_id, e.key_id, e.event_type, e.actor_user_id, e.actor_key_id, e.transport, e.client_address,
    e.occurred_at, e.detail::json
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[])
    WITH ORDINALITY AS e(${KEY_EVENT_COLUMNS.join(", ")}, n)
  ORDER BY e.n`;

/** KEY_EVENT_INSERT's parameters for these events. */
export function keyEventParams(events: readonly KeyEventRow[]): (string | null)[][] {
  return KEY_EVENT_COLUMNS.map((column) => events.map((event) => (column === "detail" ? JSON.stringify(event.detail) : event[column])));
}
