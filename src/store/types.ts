import type { HashAlgorithm } from "../keys/hash.js";

/** Where a call came from, recorded in the audit log. */
export type Transport = "stdio" | "http" | "cli" | "library";

export interface OrganizationRow {
  id: string;
  name: string;
  created_at: string;
}

export interface UserRow {
  id: string;
  organization_id: string;
  name: string;
  created_at: string;
}

export interface ProjectRow {
  id: string;
  organization_id: string;
  slug: string;
  name: string;
  default_scopes: string[];
  created_at: string;
}

/** A stored key. `key_hash` is the only secret-derived value; the token itself is never stored. */
export interface ApiKeyRow {
  id: string;
  organization_id: string;
  user_id: string;
  project_id: string | null;
  name: string;
  description: string | null;
  key_prefix: string;
  key_hash: Uint8Array;
  hash_algorithm: HashAlgorithm;
  scopes: string[];
  created_at: string;
  created_by_user_id: string;
  created_by_key_id: string | null;
  expires_at: string | null;
  last_used_at: string | null;
  last_used_ip: string | null;
  last_used_user_agent: string | null;
  revoked_at: string | null;
  revoked_reason: string | null;
  rotated_from: string | null;
  replaced_by: string | null;
}

export interface KeyEventRow {
  id: string;
  organization_id: string | null;
  key_id: string | null;
  event_type: string;
  actor_user_id: string | null;
  actor_key_id: string | null;
  transport: Transport;
  client_address: string | null;
  occurred_at: string;
  /** Small JSON object: what changed. Never a token or a hash. */
  detail: Record<string, unknown>;
}

export type InsertKeyResult =
  | { ok: true }
  | { ok: false; reason: "max_keys_reached"; activeKeys: number };

export interface InsertKeyRequest {
  key: ApiKeyRow;
  event: KeyEventRow;
  /** The owner's active keys (not revoked, not expired at `now`) must stay at or below this. */
  maxActiveKeys: number;
  now: string;
}

/**
 * Persistence for keywarden. Async so that a networked engine can implement it; the SQLite
 * implementation runs each method as one transaction.
 */
export interface KeyStore {
  /** The default organization, created on first use. */
  ensureDefaultOrganization(now: string): Promise<OrganizationRow>;
  /** The user with this name in the organization, created on first use. */
  ensureUser(organizationId: string, name: string, now: string): Promise<UserRow>;
  getUserById(id: string): Promise<UserRow | null>;

  insertProject(project: ProjectRow, event: KeyEventRow): Promise<{ ok: true } | { ok: false; reason: "conflict" }>;
  /** A project of the organization by id or by slug. */
  findProject(organizationId: string, reference: string): Promise<ProjectRow | null>;
  listProjects(organizationId: string): Promise<ProjectRow[]>;

  /** Checks the owner's active-key cap and inserts the key and its event in one write transaction. */
  insertKey(request: InsertKeyRequest): Promise<InsertKeyResult>;
  getKeyById(id: string): Promise<ApiKeyRow | null>;
  getKeyByPrefix(keyPrefix: string): Promise<ApiKeyRow | null>;
  countActiveKeys(userId: string, now: string): Promise<number>;

  listEvents(keyId: string): Promise<KeyEventRow[]>;

  close(): Promise<void>;
}
