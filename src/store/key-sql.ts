// SQL text over api_keys that every engine runs as it is, with each engine's placeholders: the
// conditions that must agree between engines (and with src/store/instants.ts) are written once.
import { keyStatusSql } from "./instants.js";
import type { KeyStatusFilter } from "./types.js";

/** The keys the cap counts: active at `now`, and not on their way out after a rotation. */
export function countsAgainstCap(now: string): string {
  return `replaced_by IS NULL AND ${keyStatusSql(now).active}`;
}

/**
 * The cap's count, run in every create's write transaction. Both engines answer it from the partial
 * index api_keys_unrevoked_by_user alone (its rows are the unrevoked, unreplaced keys).
 */
export function countActiveKeysSql(userId: string, now: string): string {
  return `SELECT count(*) AS n FROM api_keys WHERE user_id = ${userId} AND ${countsAgainstCap(now)}`;
}

/** The SQL condition of each status filter: keyStatusAt's own conditions (instants.ts). */
export function statusCondition(now: string): Readonly<Record<KeyStatusFilter, string>> {
  return { ...keyStatusSql(now), all: "1 = 1" };
}

/**
 * A whole key row: api_keys with its last use from key_usage (null when never used), in the
 * column order of ApiKeyRow. Every reader of a whole key selects this; verification reads less
 * (VERIFIABLE_KEY_SELECT).
 * Column names are unique across the two tables, so conditions may name them unqualified.
 */
export const KEY_ROW_SELECT = `SELECT api_keys.id, organization_id, user_id, project_id, name, description, key_prefix, key_hash,
    hash_algorithm, scopes, created_at, created_by_user_id, created_by_key_id, expires_at,
    last_used_at, last_used_ip, last_used_user_agent, revoked_at, revoked_reason, rotated_from, replaced_by
  FROM api_keys LEFT JOIN key_usage ON key_usage.key_id = api_keys.id`;

/**
 * What a verification reads of the key with a prefix, in VerifiableKey's order (SQLite reads it as
 * a raw row): not the names, nor the history, but the last use, which lets a verification cache
 * leave unwritten a use within a minute of the stored one (src/service/verification-cache.ts).
 * Each engine appends its placeholder for the prefix.
 */
export const VERIFIABLE_KEY_BY_PREFIX = `SELECT api_keys.id, organization_id, user_id, project_id, key_hash, hash_algorithm, scopes, expires_at,
    revoked_at, last_used_at, last_used_ip, last_used_user_agent
  FROM api_keys LEFT JOIN key_usage ON key_usage.key_id = api_keys.id WHERE key_prefix = `;
