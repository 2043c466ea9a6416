// The SQLite store's row shapes and the SQL it shares between statements: how rows travel between
// JavaScript and the tables, not what they mean.
import type { HashAlgorithm } from "../keys/hash.js";
import { countActiveKeysSql, countsAgainstCap, KEY_ROW_SELECT, statusCondition, VERIFIABLE_KEY_BY_PREFIX } from "./key-sql.js";
import type { ApiKeyRow, KeyEventRow, PlannedEvent, ProjectRow, Transport } from "./types.js";

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
  last_used_at: string | null,
  last_used_ip: string | null,
  last_used_user_agent: string | null,
];
export interface ProjectDbRow extends Omit<ProjectRow, "default_scopes"> {
  default_scopes: string;
}
export interface KeyEventDbRow extends Omit<KeyEventRow, "detail" | "transport"> {
  detail: string;
  transport: string;
}

/** The keys the cap counts, with SQLite's @now (src/store/key-sql.ts). */
export const COUNTS_AGAINST_CAP = countsAgainstCap("@now");

/** The cap's count in SQLite's named parameters. */
export const COUNT_ACTIVE_KEYS_SQL = countActiveKeysSql("@user_id", "@now");

/** The status filters in SQLite's named parameters. */
export const STATUS_CONDITION = statusCondition("@now");

export { KEY_ROW_SELECT, VERIFIABLE_KEY_BY_PREFIX };

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

/**
 * A parser of the scopes column. Few distinct scope lists exist (project and user defaults), so
 * their parses are memoised, boundedly, and shared frozen between rows.
 */
export function scopeListParser(): (json: string) => string[] {
  const scopeLists = new Map<string, readonly string[]>();
  return (json) => {
    let scopes = scopeLists.get(json);
    if (scopes === undefined) {
      scopes = Object.freeze(JSON.parse(json) as string[]);
      if (scopeLists.size >= 1024) scopeLists.clear();
      scopeLists.set(json, scopes);
    }
    return scopes as string[];
  };
}
