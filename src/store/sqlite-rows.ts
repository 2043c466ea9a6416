// The SQLite store's row shapes and the SQL it shares between statements: how rows travel between
// JavaScript and the tables, not what they mean.
import type { HashAlgorithm } from "../keys/hash.js";
import { KEY_STATUS_SQL } from "./instants.js";
import type { ApiKeyRow, KeyEventRow, KeyStatusFilter, PlannedEvent, ProjectRow, Transport } from "./types.js";

export interface ApiKeyDbRow extends Omit<ApiKeyRow, "scopes" | "key_hash" | "hash_algorithm"> {
  scopes: string;
  key_hash: Buffer;
  hash_algorithm: string;
}
/** The verification SELECT's columns, in order (a raw row: an array is cheaper to build than an object). */
export type VerifiableKeyDbRow = [
  id: string,
  organization_id: string,
  user_id: string,
  project_id: string | null,
  key_hash: Uint8Array,
  hash_algorithm: string,
  scopes: string,
  expires_at: string | null,
  revoked_at: string | null,
];
export interface ProjectDbRow extends Omit<ProjectRow, "default_scopes"> {
  default_scopes: string;
}
export interface KeyEventDbRow extends Omit<KeyEventRow, "detail" | "transport"> {
  detail: string;
  transport: string;
}

const ACTIVE_AT = KEY_STATUS_SQL.active;

/** The keys the cap counts: active, and not on their way out after a rotation. */
export const COUNTS_AGAINST_CAP = `replaced_by IS NULL AND ${ACTIVE_AT}`;

/** The cap's count, run in every create's write transaction: answered from api_keys_unrevoked_by_user alone. */
export const COUNT_ACTIVE_KEYS_SQL = `SELECT count(*) AS n FROM api_keys WHERE user_id = @user_id AND ${COUNTS_AGAINST_CAP}`;

/** The SQL condition of each status filter: keyStatusAt's own conditions (instants.ts). */
export const STATUS_CONDITION: Record<KeyStatusFilter, string> = { ...KEY_STATUS_SQL, all: "1 = 1" };

/**
 * A whole key row: api_keys with its last use from key_usage (null when never used), in the
 * column order of ApiKeyRow. Every reader of a whole key selects this; verification does not.
 * Column names are unique across the two tables, so conditions may name them unqualified.
 */
export const KEY_ROW_SELECT = `SELECT api_keys.id, organization_id, user_id, project_id, name, description, key_prefix, key_hash,
    hash_algorithm, scopes, created_at, created_by_user_id, created_by_key_id, expires_at,
    last_used_at, last_used_ip, last_used_user_agent, revoked_at, revoked_reason, rotated_from, replaced_by
  FROM api_keys LEFT JOIN key_usage ON key_usage.key_id = api_keys.id`;

export function toApiKeyRow(row: ApiKeyDbRow): ApiKeyRow {
  return {
    ...row,
    scopes: JSON.parse(row.scopes) as string[],
    key_hash: new Uint8Array(row.key_hash),
    hash_algorithm: row.hash_algorithm as HashAlgorithm,
  };
}
export function toProjectRow(row: ProjectDbRow): ProjectRow {
  return { ...row, default_scopes: JSON.parse(row.default_scopes) as string[] };
}
export function toKeyEventRow(row: KeyEventDbRow): KeyEventRow {
  return { ...row, transport: row.transport as Transport, detail: JSON.parse(row.detail) as Record<string, unknown> };
}
export function apiKeyParams(key: ApiKeyRow) {
  return { ...key, scopes: JSON.stringify(key.scopes), key_hash: Buffer.from(key.key_hash) };
}
export function eventParams(event: KeyEventRow | (PlannedEvent & { id: string })) {
  return { ...event, detail: JSON.stringify(event.detail) };
}
