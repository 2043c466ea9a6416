import { keyStatusAt, toInstant } from "../store/instants.js";
import type { ApiKeyRow, KeyEventRow, KeyStatus, ProjectRow, Transport, UserWithActiveKeys } from "../store/types.js";

/**
 * A key as tools and the library show it: every stored field except the hash and its algorithm,
 * plus the derived status. The token itself is never stored, so it cannot appear here.
 */
export interface ApiKeyRecord {
  id: string;
  project_id: string | null;
  user_id: string;
  organization_id: string;
  name: string;
  description: string | null;
  key_prefix: string;
  scopes: string[];
  status: KeyStatus;
  created_at: string;
  created_by: { user_id: string; key_id: string | null };
  expires_at: string | null;
  last_used_at: string | null;
  last_used_ip: string | null;
  last_used_user_agent: string | null;
  revoked_at: string | null;
  revoked_reason: string | null;
  rotated_from: string | null;
  replaced_by: string | null;
}

/** A user of the organization, as the operator's `keywarden admin list-users` shows it. */
export interface UserRecord {
  id: string;
  organization_id: string;
  name: string;
  created_at: string;
  /** Keys it holds that count against the cap now (not revoked, not expired, not replaced). */
  active_keys: number;
}

export interface ProjectRecord {
  id: string;
  organization_id: string;
  slug: string;
  name: string;
  default_scopes: string[];
  created_at: string;
}

export interface KeyEventRecord {
  id: string;
  key_id: string | null;
  event_type: string;
  actor_user_id: string | null;
  actor_key_id: string | null;
  transport: Transport;
  client_address: string | null;
  occurred_at: string;
  detail: Record<string, unknown>;
}

/** A key's status at `now`: keyStatusAt (store/instants.ts), the one definition SQL shares. */
export function statusOf(key: Pick<ApiKeyRow, "revoked_at" | "expires_at">, now: Date): KeyStatus {
  return keyStatusAt(key, toInstant(now));
}

/** Whether two values of a key's field are the same (scopes are arrays: compared by content, in order). */
export const sameValue = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Field by field, so that a column added to the row never leaks into a record by accident. */
export function toApiKeyRecord(row: ApiKeyRow, now: Date): ApiKeyRecord {
  return {
    id: row.id,
    project_id: row.project_id,
    user_id: row.user_id,
    organization_id: row.organization_id,
    name: row.name,
    description: row.description,
    key_prefix: row.key_prefix,
    scopes: [...row.scopes],
    status: statusOf(row, now),
    created_at: row.created_at,
    created_by: { user_id: row.created_by_user_id, key_id: row.created_by_key_id },
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

export function toUserRecord(row: UserWithActiveKeys): UserRecord {
  return { id: row.id, organization_id: row.organization_id, name: row.name, created_at: row.created_at, active_keys: row.active_keys };
}

export function toProjectRecord(row: ProjectRow): ProjectRecord {
  return {
    id: row.id,
    organization_id: row.organization_id,
    slug: row.slug,
    name: row.name,
    default_scopes: [...row.default_scopes],
    created_at: row.created_at,
  };
}

export function toKeyEventRecord(row: KeyEventRow): KeyEventRecord {
  return {
    id: row.id,
    key_id: row.key_id,
    event_type: row.event_type,
    actor_user_id: row.actor_user_id,
    actor_key_id: row.actor_key_id,
    transport: row.transport,
    client_address: row.client_address,
    occurred_at: row.occurred_at,
    detail: row.detail,
  };
}
