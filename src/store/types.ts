import type { HashAlgorithm } from "../keys/hash.js";

/** The name of the organization KeyStore.ensureDefaultOrganization creates. */
export const DEFAULT_ORGANIZATION_NAME = "default";

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
  | "id"
  | "organization_id"
  | "user_id"
  | "project_id"
  | "key_prefix"
  | "key_hash"
  | "hash_algorithm"
  | "scopes"
  | "expires_at"
  | "revoked_at"
  | "last_used_at"
  | "last_used_ip"
  | "last_used_user_agent"
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

/** The columns of a key a write may change once it exists; the rest are fixed at insert. */
export type MutableKeyField = "name" | "description" | "scopes" | "expires_at" | "revoked_at" | "revoked_reason" | "replaced_by";

/** Fields update_api_key may change. */
export interface KeyChanges {
  name?: string;
  description?: string | null;
  scopes?: string[];
  expires_at?: string;
}

/** What a write transaction reads before it runs a decider: nothing else is read. */
export interface WriteReads {
  /** Keys to read as they are inside the transaction (unknown ids are simply absent). */
  keyIds: readonly string[];
  /** Count this user's keys as countActiveKeys does (active at `now`, not replaced by a rotation). */
  activeKeysOf?: { userId: string; now: string };
}

/** The rows a decider judges: read inside the write transaction it runs in. */
export interface CurrentRows {
  keys: ReadonlyMap<string, ApiKeyRow>;
  /** The count WriteReads.activeKeysOf asked for; null when it did not ask. */
  activeKeys: number | null;
}

/** A change to one existing key: exactly the columns named in `set`. */
export interface KeyUpdate {
  id: string;
  set: Partial<Pick<ApiKeyRow, MutableKeyField>>;
}

/** An event as a plan writes it: the store gives it its id. */
export type PlannedEvent = Omit<KeyEventRow, "id">;

/** What a decider wants written, applied in this order (a successor exists before a key names it). */
export interface WritePlan {
  insertKeys: readonly ApiKeyRow[];
  updateKeys: readonly KeyUpdate[];
  events: readonly PlannedEvent[];
}

/** A decider's answer: a plan to apply and the result to hand back, or a refusal (nothing is written). */
export type Decision<T, R> = { ok: true; plan: WritePlan; result: T } | { ok: false; refusal: R };

/**
 * A decision on the rows as they are inside one write transaction. Synchronous and pure: it reads
 * only `rows`, so it can run inside any engine's transaction (better-sqlite3's cannot span an
 * await). A throw rolls the transaction back and reaches the caller as thrown.
 */
export type Decider<T, R> = (rows: CurrentRows) => Decision<T, R>;

/** What `KeyStore.write` hands back: the decider's result once its plan is committed, or its refusal. */
export type WriteOutcome<T, R> = { ok: true; result: T } | { ok: false; refusal: R };

/** One successful use of a key, as verification records it. */
export interface KeyUse {
  at: string;
  ip: string | null;
  userAgent: string | null;
}

/**
 * What KeyStore.watchKeyChanges reports: the ids of keys that changed (updated or deleted, in a
 * committed transaction of any connection or instance), or "all" when changes may have been missed
 * (the listening connection was lost and is back): every key known must then be read again.
 */
export type KeyChangeListener = (changed: string[] | "all") => void;

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

  /**
   * One write transaction: reads `reads`, runs `decide` on those rows, and applies its plan (keys
   * inserted, keys changed, events written) or, on a refusal, writes nothing. Concurrent writes,
   * from any connection or process, are serialised: no other write lands between the read and the
   * plan, so a decision (the cap, "not rotated yet") holds when its plan commits.
   */
  write<T, R>(reads: WriteReads, decide: Decider<T, R>): Promise<WriteOutcome<T, R>>;
  getKeyById(id: string): Promise<ApiKeyRow | null>;
  getKeyByPrefix(keyPrefix: string): Promise<ApiKeyRow | null>;
  /** The standing of each of these keys that exists, in one read (any order; unknown ids are left out). */
  getKeyStandings(ids: readonly string[]): Promise<KeyStanding[]>;
  /** The hot path of verification: only the columns a verification reads, by prefix. */
  findKeyForVerification(keyPrefix: string): Promise<VerifiableKey | null>;
  /** The distinct hash_algorithm values of the stored keys, as stored (one may be unknown to this build). */
  listHashAlgorithms(): Promise<string[]>;
  /** The pepper fingerprint recorded (recordPepperFingerprint), or null while none is; never writes. */
  pepperFingerprint(): Promise<string | null>;
  /** Records `fingerprint` unless one is recorded already; answers the one recorded (first wins). */
  recordPepperFingerprint(fingerprint: string, now: string): Promise<string>;
  /** Active keys (not revoked, not expired at `now`, not replaced by a rotation) the user holds. */
  countActiveKeys(userId: string, now: string): Promise<number>;
  /** Keys in (created_at, id) order, after `query.after`, at most `query.limit` of them. */
  listKeys(query: ListKeysQuery): Promise<ApiKeyRow[]>;
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

  /**
   * Optional: tells `onChange` of key changes made by any connection or process, as they commit
   * (KeyChangeListener). Resolves once it listens, with a function that stops it; close() stops it
   * too. A store without it (SQLite) leaves it out: callers then re-read keys on their own schedule.
   */
  watchKeyChanges?(onChange: KeyChangeListener): Promise<() => Promise<void>>;

  /**
   * Optional, for caches of key rows (the verification cache, src/service/verification-cache.ts):
   * a number that moves whenever a key may have changed since it last answered, whoever changed it
   * (a `write` of this store object, or a commit of another connection, process or instance), or
   * null while the store cannot tell (a cache must then not answer, but read the store). A cache
   * keeps only rows read under one version, and drops them all when it moves; rows read while it
   * moved are not kept. Synchronous and cheap: called on every verification. Shared by every
   * KeyService on this store object, so that a write through one is seen by all.
   *
   * SQLite: exact (PRAGMA data_version, which moves for other connections' commits, plus a count
   * of this connection's own writes, which it does not see). PostgreSQL: the key-change
   * notifications (watchKeyChanges' connection) plus this store's own writes, null while that
   * connection is not listening; bounded by keyChangeMaxAgeMs. A store without it gets no cache.
   */
  keyChangeVersion?(): number | null;
  /**
   * With keyChangeVersion, when its version can miss a change (a listening connection that died
   * without anyone noticing): the longest a cached row may be answered from, in milliseconds.
   * Absent: the version misses nothing.
   */
  readonly keyChangeMaxAgeMs?: number;

  /** Throws when the database does not answer (the health check). */
  ping(): Promise<void>;

  close(): Promise<void>;
}
