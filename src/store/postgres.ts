import type postgres from "postgres";
import { newOrganizationId, newUserId } from "../keys/ids.js";
import type { HashAlgorithm } from "../keys/hash.js";
import { countActiveKeysSql, countsAgainstCap, KEY_ROW_SELECT, statusCondition, VERIFIABLE_KEY_BY_PREFIX } from "./key-sql.js";
import { openPostgres, type PgSql, type PostgresStoreOptions } from "./postgres-open.js";
import {
  KEY_EVENT_INSERT,
  keyEventParams,
  toApiKeyRow,
  toKeyEventRow,
  toProjectRow,
  type ApiKeyPgRow,
  type KeyEventPgRow,
  type VerifiableKeyPgRow,
} from "./postgres-types.js";
import { PG_KEY_CACHE_MAX_AGE_MS, PostgresKeyFeed } from "./postgres-key-feed.js";
import { retryingConflicts, runTransaction } from "./postgres-transaction.js";
import { runWrite } from "./postgres-write.js";
import { DEFAULT_ORGANIZATION_NAME } from "./types.js";
import type {
  ApiKeyRow,
  Decider,
  KeyChangeListener,
  KeyEventEntry,
  KeyEventRow,
  KeyStanding,
  KeyStore,
  KeyUse,
  ListEventsQuery,
  ListKeysQuery,
  OrganizationRow,
  ProjectRow,
  UserRow,
  UserWithActiveKeys,
  VerifiableKey,
  WriteOutcome,
  WriteReads,
} from "./types.js";

export { DEFAULT_PG_POOL_SIZE, DEFAULT_PG_STATEMENT_TIMEOUT_MS, loadPostgresMigrations, type PostgresStoreOptions } from "./postgres-open.js";
export { HEARTBEAT_INTERVAL_MS, HEARTBEAT_STALE_MS, PG_KEY_CACHE_MAX_AGE_MS } from "./postgres-key-feed.js";
export { KEY_CHANGES_CHANNEL } from "./postgres-watch.js";

type Params = postgres.ParameterOrJSON<never>[];


const EVENT_COLUMNS = "e.id, e.organization_id, e.key_id, e.event_type, e.actor_user_id, e.actor_key_id, e.transport, e.client_address, e.occurred_at, e.detail";

/**
 * Newer wins: a use no later than the stored one changes nothing (equal times: the later write).
 * One statement for a whole batch: uses of unknown keys are left out by the join (a foreign key
 * failure would abort the batch); of several uses of one key in the batch the latest, and of equal
 * times the later one, is written; rows are written in key order, so two instances' batches lock
 * key_usage rows in the same order and never deadlock.
 */
const RECORD_KEY_USES = `INSERT INTO key_usage (key_id, last_used_at, last_used_ip, last_used_user_agent)
  SELECT DISTINCT ON (u.key_id) u.key_id, u.at, u.ip, u.user_agent
  FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[]) WITH ORDINALITY AS u(key_id, at, ip, user_agent, n)
  JOIN api_keys ON api_keys.id = u.key_id
  ORDER BY u.key_id, u.at DESC, u.n DESC
  ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at, last_used_ip = excluded.last_used_ip,
    last_used_user_agent = excluded.last_used_user_agent
  WHERE excluded.last_used_at >= key_usage.last_used_at`;

/**
 * The KeyStore on PostgreSQL, for several keywarden instances on one database (README,
 * Configuration). Rows in and out as SqliteKeyStore gives them; every method is one statement or
 * one transaction on a pooled connection (src/store/postgres-transaction.ts, which survives a
 * connection lost in the middle).
 */
export class PostgresKeyStore implements KeyStore {
  private closed = false;
  readonly keyChangeMaxAgeMs: number;
  /** The one listening connection and its heartbeat (src/store/postgres-key-feed.ts). */
  private readonly keyFeed: PostgresKeyFeed;

  private constructor(
    private readonly sql: PgSql,
    private readonly options: PostgresStoreOptions,
  ) {
    this.keyChangeMaxAgeMs = options.keyCacheMaxAgeMs ?? PG_KEY_CACHE_MAX_AGE_MS;
    this.keyFeed = new PostgresKeyFeed(sql, options);
  }

  /** Connects, refuses a database from a newer keywarden, and migrates (src/store/postgres-open.ts). */
  static async open(options: PostgresStoreOptions): Promise<PostgresKeyStore> {
    return new PostgresKeyStore(await openPostgres(options), options);
  }

  /** One statement, prepared once per connection. */
  private query<T>(text: string, params: Params = []): Promise<T[]> {
    return this.sql.unsafe(text, params, { prepare: true }) as unknown as Promise<T[]>;
  }

  async ensureDefaultOrganization(now: string): Promise<OrganizationRow> {
    const select = "SELECT id, name, created_at FROM organizations WHERE name = $1";
    const [existing] = await this.query<OrganizationRow>(select, [DEFAULT_ORGANIZATION_NAME]);
    if (existing) return { ...existing };
    // Another instance may create it in between: insert unless there, then read back.
    await this.query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING", [
      newOrganizationId(),
      DEFAULT_ORGANIZATION_NAME,
      now,
    ]);
    const [created] = await this.query<OrganizationRow>(select, [DEFAULT_ORGANIZATION_NAME]);
    return { ...created! };
  }

  async ensureUser(organizationId: string, name: string, now: string): Promise<UserRow> {
    const select = "SELECT id, organization_id, name, created_at FROM users WHERE organization_id = $1 AND name = $2";
    const [existing] = await this.query<UserRow>(select, [organizationId, name]);
    if (existing) return { ...existing };
    await this.query("INSERT INTO users (id, organization_id, name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, name) DO NOTHING", [
      newUserId(),
      organizationId,
      name,
      now,
    ]);
    const [created] = await this.query<UserRow>(select, [organizationId, name]);
    return { ...created! };
  }

  async getUserById(id: string): Promise<UserRow | null> {
    const [row] = await this.query<UserRow>("SELECT id, organization_id, name, created_at FROM users WHERE id = $1", [id]);
    return row ? { ...row } : null;
  }

  async listUsers(organizationId: string, now: string): Promise<UserWithActiveKeys[]> {
    const rows = await this.query<UserRow & { active_keys: string }>(
      `SELECT users.id, users.organization_id, users.name, users.created_at,
         (SELECT count(*) FROM api_keys WHERE api_keys.user_id = users.id AND ${countsAgainstCap("$2")}) AS active_keys
       FROM users WHERE organization_id = $1 ORDER BY name`,
      [organizationId, now],
    );
    return rows.map((row) => ({ ...row, active_keys: Number(row.active_keys) }));
  }

  async insertProject(project: ProjectRow, event: KeyEventRow): Promise<{ ok: true } | { ok: false; reason: "conflict" }> {
    return runTransaction(this.sql, async (tx) => {
      // Either unique key (the id, or the slug in the organization) taken: nothing is written.
      const inserted = await tx.unsafe(
        `INSERT INTO projects (id, organization_id, slug, name, default_scopes, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING RETURNING id`,
        [project.id, project.organization_id, project.slug, project.name, project.default_scopes, project.created_at] as Params,
        { prepare: true },
      );
      if (inserted.length === 0) return { ok: false, reason: "conflict" } as const;
      await tx.unsafe(KEY_EVENT_INSERT, keyEventParams([event]) as Params, { prepare: true });
      return { ok: true } as const;
    });
  }

  async findProject(organizationId: string, reference: string): Promise<ProjectRow | null> {
    const [row] = await this.query<ProjectRow>(
      "SELECT id, organization_id, slug, name, default_scopes, created_at FROM projects WHERE organization_id = $1 AND (id = $2 OR slug = $2)",
      [organizationId, reference],
    );
    return row ? toProjectRow(row) : null;
  }

  async listProjects(organizationId: string): Promise<ProjectRow[]> {
    const rows = await this.query<ProjectRow>(
      "SELECT id, organization_id, slug, name, default_scopes, created_at FROM projects WHERE organization_id = $1 ORDER BY slug",
      [organizationId],
    );
    return rows.map(toProjectRow);
  }

  async write<T, R>(reads: WriteReads, decide: Decider<T, R>): Promise<WriteOutcome<T, R>> {
    try {
      return await runWrite(this.sql, reads, decide);
    } finally {
      // Our own change is known at once, before the writer hears back; the notification comes later.
      this.keyFeed.ownWrite();
    }
  }

  async getKeyById(id: string): Promise<ApiKeyRow | null> {
    const [row] = await this.query<ApiKeyPgRow>(`${KEY_ROW_SELECT} WHERE api_keys.id = $1`, [id]);
    return row ? toApiKeyRow(row) : null;
  }

  async getKeyByPrefix(keyPrefix: string): Promise<ApiKeyRow | null> {
    const [row] = await this.query<ApiKeyPgRow>(`${KEY_ROW_SELECT} WHERE key_prefix = $1`, [keyPrefix]);
    return row ? toApiKeyRow(row) : null;
  }

  async getKeyStandings(ids: readonly string[]): Promise<KeyStanding[]> {
    if (ids.length === 0) return [];
    const rows = await this.query<KeyStanding>("SELECT id, scopes, expires_at, revoked_at FROM api_keys WHERE id = ANY($1)", [ids as string[]]);
    return rows.map((row) => ({ id: row.id, scopes: row.scopes, expires_at: row.expires_at, revoked_at: row.revoked_at }));
  }

  async findKeyForVerification(keyPrefix: string): Promise<VerifiableKey | null> {
    const [row] = await this.query<VerifiableKeyPgRow>(`${VERIFIABLE_KEY_BY_PREFIX}$1`, [keyPrefix]);
    if (!row) return null;
    // The hash Buffer as it is (a Buffer is a Uint8Array), as SqliteKeyStore gives it here.
    return {
      id: row.id,
      organization_id: row.organization_id,
      user_id: row.user_id,
      project_id: row.project_id,
      key_prefix: keyPrefix,
      key_hash: row.key_hash,
      hash_algorithm: row.hash_algorithm as HashAlgorithm,
      scopes: row.scopes,
      expires_at: row.expires_at,
      revoked_at: row.revoked_at,
      last_used_at: row.last_used_at,
      last_used_ip: row.last_used_ip,
      last_used_user_agent: row.last_used_user_agent,
    };
  }

  async listHashAlgorithms(): Promise<string[]> {
    const rows = await this.query<{ hash_algorithm: string }>("SELECT hash_algorithm FROM key_hash_algorithms");
    return rows.map((row) => row.hash_algorithm);
  }

  async pepperFingerprint(): Promise<string | null> {
    const [recorded] = await this.query<{ fingerprint: string }>("SELECT fingerprint FROM pepper_fingerprint WHERE id = 1");
    return recorded?.fingerprint ?? null;
  }

  async recordPepperFingerprint(fingerprint: string, now: string): Promise<string> {
    // Every start with a pepper asks: a read answers all but the first.
    const recorded = await this.pepperFingerprint();
    if (recorded !== null) return recorded;
    await this.query("INSERT INTO pepper_fingerprint (id, fingerprint, recorded_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING", [fingerprint, now]);
    return (await this.pepperFingerprint())!;
  }

  async countActiveKeys(userId: string, now: string): Promise<number> {
    const [row] = await this.query<{ n: string }>(countActiveKeysSql("$1", "$2"), [userId, now]);
    return Number(row!.n);
  }

  async listKeys(query: ListKeysQuery): Promise<ApiKeyRow[]> {
    const params: Params = [query.organizationId];
    const param = (value: string | number): string => {
      params.push(value);
      return `$${params.length}`;
    };
    const conditions = [`organization_id = $1`];
    if (query.userId !== null) conditions.push(`user_id = ${param(query.userId)}`);
    if (query.projectId !== null) conditions.push(`project_id = ${param(query.projectId)}`);
    // `now` is bound only where the status condition names it (PostgreSQL types every parameter).
    const now = `$${params.length + 1}`;
    const status = statusCondition(now)[query.status];
    if (status.includes(now)) params.push(query.now);
    conditions.push(`(${status})`);
    if (query.after !== null) conditions.push(`(created_at, api_keys.id) > (${param(query.after.at)}, ${param(query.after.id)})`);
    const text = `${KEY_ROW_SELECT} WHERE ${conditions.join(" AND ")} ORDER BY created_at, api_keys.id LIMIT ${param(query.limit)}`;
    return (await this.query<ApiKeyPgRow>(text, params)).map(toApiKeyRow);
  }

  async recordKeyUse(id: string, use: KeyUse): Promise<void> {
    await this.recordKeyUses([[id, use]]);
  }

  async recordKeyUses(uses: readonly (readonly [id: string, use: KeyUse])[]): Promise<void> {
    if (uses.length === 0) return;
    const params = [uses.map(([id]) => id), uses.map(([, use]) => use.at), uses.map(([, use]) => use.ip), uses.map(([, use]) => use.userAgent)];
    await retryingConflicts(() => this.query(RECORD_KEY_USES, params as Params));
  }

  async appendEvent(event: KeyEventRow): Promise<void> {
    await this.appendEvents([event]);
  }

  async appendEvents(events: readonly KeyEventRow[]): Promise<void> {
    if (events.length === 0) return;
    await this.query(KEY_EVENT_INSERT, keyEventParams(events) as Params);
  }

  async listEvents(keyId: string): Promise<KeyEventRow[]> {
    const rows = await this.query<KeyEventPgRow>(`SELECT ${EVENT_COLUMNS} FROM key_events e WHERE e.key_id = $1 ORDER BY e.occurred_at, e.seq`, [keyId]);
    return rows.map(toKeyEventRow);
  }

  async listKeyEvents(query: ListEventsQuery): Promise<KeyEventEntry[]> {
    const params: Params = [query.organizationId];
    const param = (value: string | number): string => {
      params.push(value);
      return `$${params.length}`;
    };
    // A user's view: only events of keys they own (the join also drops events naming no key).
    const join = query.ownerUserId !== null ? `JOIN api_keys k ON k.id = e.key_id AND k.user_id = ${param(query.ownerUserId)}` : "";
    const conditions = ["e.organization_id = $1"];
    if (query.keyId !== null) conditions.push(`e.key_id = ${param(query.keyId)}`);
    if (query.after !== null) conditions.push(`(e.occurred_at, e.seq) > (${param(query.after.at)}, ${param(query.after.seq)})`);
    const text = `SELECT ${EVENT_COLUMNS}, e.seq FROM key_events e ${join} WHERE ${conditions.join(" AND ")}
      ORDER BY e.occurred_at, e.seq LIMIT ${param(query.limit)}`;
    const rows = await this.query<KeyEventPgRow & { seq: string }>(text, params);
    return rows.map(({ seq, ...row }) => ({ event: toKeyEventRow(row), seq: Number(seq) }));
  }

  async ping(): Promise<void> {
    await this.query("SELECT 1 FROM organizations LIMIT 1");
  }

  /**
   * Listens for key changes committed by any instance, on the store's one listening connection
   * beside the pool, however many watchers there are (PostgresKeyFeed.watch).
   */
  watchKeyChanges(onChange: KeyChangeListener): Promise<() => Promise<void>> {
    if (this.closed) return Promise.reject(new Error("the store is closed"));
    return this.keyFeed.watch(onChange);
  }

  /** KeyStore.keyChangeVersion (PostgresKeyFeed.version). */
  keyChangeVersion(): number | null {
    return this.closed ? null : this.keyFeed.version();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.keyFeed.close();
    await this.sql.end({ timeout: 5 });
  }
}
