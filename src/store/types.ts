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

/** A user with the number of active keys (as the cap counts them) it holds. */
export interface UserWithActiveKeys extends UserRow {
  active_keys: number;
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

/** What decides whether a key still holds what it held: its status and its scopes. */
export type KeyStanding = Pick<ApiKeyRow, "id" | "scopes" | "expires_at" | "revoked_at">;

/** What verification needs of a key, and no more: read on every verify, so kept narrow. */
export type VerifiableKey = Pick<
  ApiKeyRow,
  "id" | "organization_id" | "user_id" | "project_id" | "key_prefix" | "key_hash" | "hash_algorithm" | "scopes" | "expires_at" | "revoked_at"
>;

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
  /**
   * The owner's active keys (not revoked, not expired at `now`, not already replaced by a
   * rotation) must stay at or below this.
   */
  maxActiveKeys: number;
  now: string;
}

/** The derived status of a key, and the filters of a listing. */
export type KeyStatus = "active" | "revoked" | "expired";
export type KeyStatusFilter = KeyStatus | "all";

/** A keyset position in the key listing: rows strictly after (created_at, id). */
export interface KeysetPosition {
  at: string;
  id: string;
}

/**
 * A position in the audit log: events strictly after (occurred_at, seq). `seq` is the insertion
 * order, the tie-break for events of the same instant (event ids are random).
 */
export interface EventPosition {
  at: string;
  seq: number;
}

/** An event as listed: the row and its place in the log. */
export interface KeyEventEntry {
  event: KeyEventRow;
  seq: number;
}

export interface ListKeysQuery {
  organizationId: string;
  /** Only this owner's keys; null for every key of the organization. */
  userId: string | null;
  /** Only this project's keys; null for any project or none. */
  projectId: string | null;
  status: KeyStatusFilter;
  /** The instant `status` is judged at. */
  now: string;
  after: KeysetPosition | null;
  /** The most rows to return. */
  limit: number;
}

export interface ListEventsQuery {
  organizationId: string;
  /** Only events of this key; null for any. */
  keyId: string | null;
  /** Only events of keys this user owns; null for every event of the organization. */
  ownerUserId: string | null;
  after: EventPosition | null;
  limit: number;
}

/** Fields update_api_key may change. */
export interface KeyChanges {
  name?: string;
  description?: string | null;
  scopes?: string[];
  expires_at?: string;
}

export interface UpdateKeyRequest {
  id: string;
  changes: KeyChanges;
  /**
   * Written with the change. The store adds `changed` (the fields that really changed) and, for
   * name, scopes and expires_at, `from`/`to` values read inside the transaction.
   */
  event: KeyEventRow;
  /** Judges whether the key is still active, for `expires_at` changes. */
  now: string;
  /** Refuse scopes that are not a subset of the key's current scopes (non-admin callers). */
  narrowScopesOnly: boolean;
  /** See Authorize: run after the refusals above, before anything is written. */
  authorize?: Authorize;
  /** Applied when expires_at really changes (see GraceCut). */
  endGraceOf?: GraceCut;
}

/**
 * A rotated key's predecessor, whose grace must not outlast its successor (README, rotate_api_key):
 * if it still works at the request's `now` and would work past `until`, its expires_at becomes
 * `until` and `event` is written, with `from`/`to` expiry added to its detail. A predecessor that
 * no longer works, or stops by `until` anyway, is left as it is.
 */
export interface GraceCut {
  keyId: string;
  until: string;
  event: KeyEventRow;
}

/**
 * The caller's judgement of the key as it is inside the write transaction, not as it was read
 * before: it throws to refuse, which rolls the transaction back (nothing is written) and reaches
 * the caller as it was thrown. The store runs it and knows nothing of its rules.
 */
export type Authorize = (current: ApiKeyRow) => void;

export type UpdateKeyResult =
  | { ok: true; key: ApiKeyRow; changed: string[] }
  | { ok: false; reason: "not_found" }
  /** `expires_at` may only move on a key that is active and not replaced by a rotation. */
  | { ok: false; reason: "inactive" | "replaced"; key: ApiKeyRow }
  | { ok: false; reason: "scope_widening"; key: ApiKeyRow; extra: string[] };

export interface RotateKeyRequest {
  oldKeyId: string;
  /** The successor, fully formed; `rotated_from` must already name the old key. */
  newKey: ApiKeyRow;
  /** When the old key stops being accepted; `now` means it is revoked at once with reason "rotated". */
  graceUntil: string;
  now: string;
  /**
   * The old key as the caller read it before building the successor. If its name, description,
   * scopes or expiry changed since, the rotation is refused with "changed" rather than mint a
   * successor from stale values (a concurrent narrowing of scopes must not be undone).
   */
  expected: Pick<ApiKeyRow, "name" | "description" | "scopes" | "expires_at">;
  /**
   * Events to write with the rotation. The store fills `previous_key_expires_at` into each
   * detail, since only it knows the old key's expiry inside the transaction.
   */
  events: KeyEventRow[];
  /** The old key's predecessor (its `rotated_from`): its grace ends now, `until` = `now` (see GraceCut). */
  endGraceOf?: GraceCut;
}

export type RotateKeyResult =
  | { ok: true; oldKey: ApiKeyRow; newKey: ApiKeyRow }
  | { ok: false; reason: "not_found" }
  | { ok: false; reason: "revoked" | "expired" | "already_rotated" | "changed"; key: ApiKeyRow };

export interface RevokeKeyRequest {
  id: string;
  reason: string | null;
  now: string;
  event: KeyEventRow;
  /** See Authorize: run first, on the key as it is, whether or not it is already revoked. */
  authorize?: Authorize;
  /** The revoked key's predecessor: applied when the key is newly revoked, `until` = `now` (see GraceCut). */
  endGraceOf?: GraceCut;
}

export type RevokeKeyResult =
  /** `changed` is false when the key was already revoked: nothing was written. */
  | { ok: true; key: ApiKeyRow; changed: boolean }
  | { ok: false; reason: "not_found" };

/** One successful use of a key, as verification records it. */
export interface KeyUse {
  at: string;
  ip: string | null;
  userAgent: string | null;
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
  /** The organization's users by name, each with its active keys at `now`, counted as the cap counts them. */
  listUsers(organizationId: string, now: string): Promise<UserWithActiveKeys[]>;

  insertProject(project: ProjectRow, event: KeyEventRow): Promise<{ ok: true } | { ok: false; reason: "conflict" }>;
  /** A project of the organization by id or by slug. */
  findProject(organizationId: string, reference: string): Promise<ProjectRow | null>;
  listProjects(organizationId: string): Promise<ProjectRow[]>;

  /** Checks the owner's active-key cap and inserts the key and its event in one write transaction. */
  insertKey(request: InsertKeyRequest): Promise<InsertKeyResult>;
  getKeyById(id: string): Promise<ApiKeyRow | null>;
  getKeyByPrefix(keyPrefix: string): Promise<ApiKeyRow | null>;
  /** The standing of each of these keys that exists, in one read (any order; unknown ids are left out). */
  getKeyStandings(ids: readonly string[]): Promise<KeyStanding[]>;
  /** The hot path of verification: only the columns a verification reads, by prefix. */
  findKeyForVerification(keyPrefix: string): Promise<VerifiableKey | null>;
  /** The distinct hash_algorithm values of the stored keys, as stored (one may be unknown to this build). */
  listHashAlgorithms(): Promise<string[]>;
  /** Active keys (not revoked, not expired at `now`, not replaced by a rotation) the user holds. */
  countActiveKeys(userId: string, now: string): Promise<number>;
  /** Keys in (created_at, id) order, after `query.after`, at most `query.limit` of them. */
  listKeys(query: ListKeysQuery): Promise<ApiKeyRow[]>;
  /** Re-reads the key, applies the changes and writes the event, in one write transaction. */
  updateKey(request: UpdateKeyRequest): Promise<UpdateKeyResult>;
  /**
   * Re-reads the old key inside one write transaction and refuses a revoked, expired or already
   * replaced one, so that concurrent rotations of a key leave exactly one successor. Inserts the
   * successor without checking the cap (a rotation replaces, it does not add), shortens or revokes
   * the old key, links both, and writes the events.
   */
  rotateKey(request: RotateKeyRequest): Promise<RotateKeyResult>;
  /** Sets revoked_at and the reason once, with the event; a second call changes nothing. */
  revokeKey(request: RevokeKeyRequest): Promise<RevokeKeyResult>;
  /** Records a successful use; an older use never overwrites a newer one; a use of an unknown key is ignored. */
  recordKeyUse(id: string, use: KeyUse): Promise<void>;
  /** Records many uses in one write transaction, each as recordKeyUse would. */
  recordKeyUses(uses: readonly (readonly [id: string, use: KeyUse])[]): Promise<void>;

  /** Writes one event on its own: a failed authentication or a denied call, which change nothing else. */
  appendEvent(event: KeyEventRow): Promise<void>;
  /** Several events in one transaction (one synced write however many there are). */
  appendEvents(events: readonly KeyEventRow[]): Promise<void>;
  /** Every event of one key, in (occurred_at, insertion) order. */
  listEvents(keyId: string): Promise<KeyEventRow[]>;
  /** Events in (occurred_at, seq) order, after `query.after`, at most `query.limit` of them. */
  listKeyEvents(query: ListEventsQuery): Promise<KeyEventEntry[]>;

  /** Throws when the database does not answer (the health check). */
  ping(): Promise<void>;

  close(): Promise<void>;
}
