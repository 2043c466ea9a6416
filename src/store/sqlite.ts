import type Database from "better-sqlite3";
import { newKeyEventId, newOrganizationId, newUserId } from "../keys/ids.js";
import type { HashAlgorithm } from "../keys/hash.js";
import { SqliteKeyChanges } from "./sqlite-changes.js";
import { openSqliteDatabase, type SqliteStoreOptions } from "./sqlite-open.js";
import {
  apiKeyParams,
  COUNT_ACTIVE_KEYS_SQL,
  COUNTS_AGAINST_CAP,
  eventParams,
  KEY_ROW_SELECT,
  VERIFIABLE_KEY_BY_PREFIX,
  STATUS_CONDITION,
  toApiKeyRow,
  toKeyEventRow,
  toProjectRow,
  type ApiKeyDbRow,
  type KeyEventDbRow,
  type ProjectDbRow,
  scopeListParser,
  type VerifiableKeyDbRow,
} from "./sqlite-rows.js";
import { DEFAULT_ORGANIZATION_NAME } from "./types.js";
import type {
  ApiKeyRow,
  CurrentRows,
  Decider,
  KeyEventEntry,
  KeyEventRow,
  KeyStore,
  KeyStanding,
  KeyUpdate,
  KeyUse,
  ListEventsQuery,
  ListKeysQuery,
  MutableKeyField,
  OrganizationRow,
  ProjectRow,
  UserRow,
  UserWithActiveKeys,
  VerifiableKey,
  WriteOutcome,
  WritePlan,
  WriteReads,
} from "./types.js";

export { openSqliteDatabase, SQLITE_CACHE_KIB, StoreOpenError, type SqliteStoreOptions } from "./sqlite-open.js";
export { COUNT_ACTIVE_KEYS_SQL } from "./sqlite-rows.js";

export { DEFAULT_ORGANIZATION_NAME };

/** The columns a KeyUpdate may set, in a fixed order so that each set of columns is one prepared statement. */
const MUTABLE_KEY_FIELDS: readonly MutableKeyField[] = ["name", "description", "scopes", "expires_at", "revoked_at", "revoked_reason", "replaced_by"];

export class SqliteKeyStore implements KeyStore {
  readonly db: Database.Database;
  private readonly statements;
  private readonly keyChanges: SqliteKeyChanges;

  constructor(db: Database.Database) {
    this.db = db;
    this.keyChanges = new SqliteKeyChanges(db);
    this.statements = {
      organizationByName: db.prepare<[string], OrganizationRow>("SELECT * FROM organizations WHERE name = ?"),
      insertOrganization: db.prepare("INSERT OR IGNORE INTO organizations (id, name, created_at) VALUES (@id, @name, @created_at)"),
      userByName: db.prepare<[string, string], UserRow>("SELECT * FROM users WHERE organization_id = ? AND name = ?"),
      userById: db.prepare<[string], UserRow>("SELECT * FROM users WHERE id = ?"),
      // Each count reads api_keys_unrevoked_by_user alone, as the cap's count does.
      usersOfOrganization: db.prepare<{ organization_id: string; now: string }, UserWithActiveKeys>(
        `SELECT users.id, users.organization_id, users.name, users.created_at,
           (SELECT count(*) FROM api_keys WHERE api_keys.user_id = users.id AND ${COUNTS_AGAINST_CAP}) AS active_keys
         FROM users WHERE organization_id = @organization_id ORDER BY name`,
      ),
      insertUser: db.prepare(
        "INSERT OR IGNORE INTO users (id, organization_id, name, created_at) VALUES (@id, @organization_id, @name, @created_at)",
      ),
      projectByIdOrSlug: db.prepare<[string, string, string], ProjectDbRow>(
        "SELECT * FROM projects WHERE organization_id = ? AND (id = ? OR slug = ?)",
      ),
      projectsOfOrganization: db.prepare<[string], ProjectDbRow>("SELECT * FROM projects WHERE organization_id = ? ORDER BY slug"),
      insertProject: db.prepare(
        `INSERT INTO projects (id, organization_id, slug, name, default_scopes, created_at)
         VALUES (@id, @organization_id, @slug, @name, @default_scopes, @created_at)`,
      ),
      // A key in its rotation grace period is on its way out: its successor counts instead.
      countActiveKeys: db.prepare<{ user_id: string; now: string }, { n: number }>(COUNT_ACTIVE_KEYS_SQL),
      // A new key has never been used: its last use is the absence of a key_usage row.
      insertKey: db.prepare(
        `INSERT INTO api_keys (id, organization_id, user_id, project_id, name, description, key_prefix, key_hash,
           hash_algorithm, scopes, created_at, created_by_user_id, created_by_key_id, expires_at, revoked_at,
           revoked_reason, rotated_from, replaced_by)
         VALUES (@id, @organization_id, @user_id, @project_id, @name, @description, @key_prefix, @key_hash,
           @hash_algorithm, @scopes, @created_at, @created_by_user_id, @created_by_key_id, @expires_at, @revoked_at,
           @revoked_reason, @rotated_from, @replaced_by)`,
      ),
      keyById: db.prepare<[string], ApiKeyDbRow>(`${KEY_ROW_SELECT} WHERE api_keys.id = ?`),
      keyByPrefix: db.prepare<[string], ApiKeyDbRow>(`${KEY_ROW_SELECT} WHERE key_prefix = ?`),
      verifiableKeyByPrefix: db
        .prepare<[string], VerifiableKeyDbRow>(`${VERIFIABLE_KEY_BY_PREFIX}?`)
        .raw(true),
      // One statement for any number of ids: the list travels as one JSON array parameter.
      keyStandings: db.prepare<[string], { id: string; scopes: string; expires_at: string | null; revoked_at: string | null }>(
        "SELECT id, scopes, expires_at, revoked_at FROM api_keys WHERE id IN (SELECT value FROM json_each(?))",
      ),
      insertEvent: db.prepare(
        `INSERT INTO key_events (id, organization_id, key_id, event_type, actor_user_id, actor_key_id, transport,
           client_address, occurred_at, detail)
         VALUES (@id, @organization_id, @key_id, @event_type, @actor_user_id, @actor_key_id, @transport,
           @client_address, @occurred_at, @detail)`,
      ),
      eventsOfKey: db.prepare<[string], KeyEventDbRow>("SELECT * FROM key_events WHERE key_id = ? ORDER BY occurred_at, rowid"),
      ping: db.prepare("SELECT count(*) AS n FROM organizations"),
      hashAlgorithms: db.prepare<[], string>("SELECT hash_algorithm FROM key_hash_algorithms").pluck(),
      insertPepperFingerprint: db.prepare("INSERT OR IGNORE INTO pepper_fingerprint (id, fingerprint, recorded_at) VALUES (1, ?, ?)"),
      pepperFingerprint: db.prepare<[], string>("SELECT fingerprint FROM pepper_fingerprint WHERE id = 1").pluck(),
      // Newer wins: a use no later than the stored one changes nothing (equal times: the later write).
      recordKeyUse: db.prepare(
        `INSERT INTO key_usage (key_id, last_used_at, last_used_ip, last_used_user_agent) VALUES (@id, @at, @ip, @user_agent)
         ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at, last_used_ip = excluded.last_used_ip,
           last_used_user_agent = excluded.last_used_user_agent
         WHERE excluded.last_used_at >= key_usage.last_used_at`,
      ),
    };
  }

  /** Listing and update statements differ by filter or columns; each shape is prepared once. */
  private readonly listStatements = new Map<string, Database.Statement<Record<string, unknown>, unknown>>();

  private listStatement(cacheKey: string, sql: () => string): Database.Statement<Record<string, unknown>, unknown> {
    let statement = this.listStatements.get(cacheKey);
    if (!statement) {
      statement = this.db.prepare<Record<string, unknown>, unknown>(sql());
      this.listStatements.set(cacheKey, statement);
    }
    return statement;
  }

  static open(options: SqliteStoreOptions): SqliteKeyStore {
    return new SqliteKeyStore(openSqliteDatabase(options));
  }

  async ensureDefaultOrganization(now: string): Promise<OrganizationRow> {
    const existing = this.statements.organizationByName.get(DEFAULT_ORGANIZATION_NAME);
    if (existing) return existing;
    // INSERT OR IGNORE then read back: another process may have created it in between.
    this.statements.insertOrganization.run({ id: newOrganizationId(), name: DEFAULT_ORGANIZATION_NAME, created_at: now });
    return this.statements.organizationByName.get(DEFAULT_ORGANIZATION_NAME)!;
  }

  async ensureUser(organizationId: string, name: string, now: string): Promise<UserRow> {
    const existing = this.statements.userByName.get(organizationId, name);
    if (existing) return existing;
    this.statements.insertUser.run({ id: newUserId(), organization_id: organizationId, name, created_at: now });
    return this.statements.userByName.get(organizationId, name)!;
  }

  async getUserById(id: string): Promise<UserRow | null> {
    return this.statements.userById.get(id) ?? null;
  }

  async listUsers(organizationId: string, now: string): Promise<UserWithActiveKeys[]> {
    return this.statements.usersOfOrganization.all({ organization_id: organizationId, now });
  }

  async insertProject(project: ProjectRow, event: KeyEventRow): Promise<{ ok: true } | { ok: false; reason: "conflict" }> {
    return this.db
      .transaction((): { ok: true } | { ok: false; reason: "conflict" } => {
        if (this.statements.projectByIdOrSlug.get(project.organization_id, project.id, project.slug)) {
          return { ok: false, reason: "conflict" };
        }
        this.statements.insertProject.run({ ...project, default_scopes: JSON.stringify(project.default_scopes) });
        this.statements.insertEvent.run(eventParams(event));
        return { ok: true };
      })
      .immediate();
  }

  async findProject(organizationId: string, reference: string): Promise<ProjectRow | null> {
    const row = this.statements.projectByIdOrSlug.get(organizationId, reference, reference);
    return row ? toProjectRow(row) : null;
  }

  async listProjects(organizationId: string): Promise<ProjectRow[]> {
    return this.statements.projectsOfOrganization.all(organizationId).map(toProjectRow);
  }

  async getKeyById(id: string): Promise<ApiKeyRow | null> {
    const row = this.statements.keyById.get(id);
    return row ? toApiKeyRow(row) : null;
  }

  async getKeyByPrefix(keyPrefix: string): Promise<ApiKeyRow | null> {
    const row = this.statements.keyByPrefix.get(keyPrefix);
    return row ? toApiKeyRow(row) : null;
  }

  async getKeyStandings(ids: readonly string[]): Promise<KeyStanding[]> {
    if (ids.length === 0) return [];
    return this.statements.keyStandings
      .all(JSON.stringify(ids))
      .map((row) => ({ id: row.id, scopes: this.parseScopes(row.scopes), expires_at: row.expires_at, revoked_at: row.revoked_at }));
  }

  async findKeyForVerification(keyPrefix: string): Promise<VerifiableKey | null> {
    const row = this.statements.verifiableKeyByPrefix.get(keyPrefix);
    if (!row) return null;
    // Every verification runs this (measured in bench/verify-inprocess.mjs): a raw row without the
    // prefix we looked it up by, the hash Buffer as it is (a Buffer is a Uint8Array), and scope
    // lists parsed once per distinct list.
    return {
      id: row[0],
      organization_id: row[1],
      user_id: row[2],
      project_id: row[3],
      key_prefix: keyPrefix,
      key_hash: row[4],
      hash_algorithm: row[5] as HashAlgorithm,
      scopes: this.parseScopes(row[6]),
      expires_at: row[7],
      revoked_at: row[8],
      last_used_at: row[9],
      last_used_ip: row[10],
      last_used_user_agent: row[11],
    };
  }

  private readonly parseScopes = scopeListParser();

  async listHashAlgorithms(): Promise<string[]> {
    return this.statements.hashAlgorithms.all();
  }

  async pepperFingerprint(): Promise<string | null> {
    return this.statements.pepperFingerprint.get() ?? null;
  }

  async recordPepperFingerprint(fingerprint: string, now: string): Promise<string> {
    // Every start with a pepper asks: a read answers all but the first, without the write lock.
    const recorded = await this.pepperFingerprint();
    if (recorded !== null) return recorded;
    this.db.transaction(() => this.statements.insertPepperFingerprint.run(fingerprint, now)).immediate();
    return this.statements.pepperFingerprint.get()!;
  }

  async countActiveKeys(userId: string, now: string): Promise<number> {
    return this.statements.countActiveKeys.get({ user_id: userId, now })!.n;
  }

  async listKeys(query: ListKeysQuery): Promise<ApiKeyRow[]> {
    const byUser = query.userId !== null;
    const byProject = query.projectId !== null;
    const after = query.after !== null;
    const statement = this.listStatement(`keys:${byUser}:${byProject}:${after}:${query.status}`, () =>
      [
        `${KEY_ROW_SELECT} WHERE organization_id = @organization_id`,
        byUser ? "AND user_id = @user_id" : "",
        byProject ? "AND project_id = @project_id" : "",
        `AND (${STATUS_CONDITION[query.status]})`,
        after ? "AND (created_at, api_keys.id) > (@after_at, @after_id)" : "",
        "ORDER BY created_at, api_keys.id LIMIT @limit",
      ].join(" "),
    );
    const params: Record<string, unknown> = { organization_id: query.organizationId, limit: query.limit };
    if (byUser) params.user_id = query.userId;
    if (byProject) params.project_id = query.projectId;
    if (query.status === "active" || query.status === "expired") params.now = query.now;
    if (after) {
      params.after_at = query.after!.at;
      params.after_id = query.after!.id;
    }
    return (statement.all(params) as ApiKeyDbRow[]).map(toApiKeyRow);
  }

  /** KeyStore.keyChangeVersion, exact (SqliteKeyChanges). */
  keyChangeVersion(): number {
    return this.keyChanges.version();
  }

  async write<T, R>(reads: WriteReads, decide: Decider<T, R>): Promise<WriteOutcome<T, R>> {
    // IMMEDIATE takes the write lock before the reads, so no other connection or process writes
    // between what the decider saw and what its plan writes: the cap's count and "not rotated
    // yet" still hold at commit, under any concurrency. A refusal or a throw writes nothing.
    return this.keyChanges.ownWrite(() =>
      this.db.transaction((): WriteOutcome<T, R> => {
        const keys = new Map<string, ApiKeyRow>();
        for (const id of reads.keyIds) {
          const row = this.statements.keyById.get(id);
          if (row) keys.set(id, toApiKeyRow(row));
        }
        const activeKeys = reads.activeKeysOf ? this.statements.countActiveKeys.get({ user_id: reads.activeKeysOf.userId, now: reads.activeKeysOf.now })!.n : null;
        const rows: CurrentRows = { keys, activeKeys };
        const decision = decide(rows);
        if (!decision.ok) return decision;
        this.apply(decision.plan);
        return { ok: true, result: decision.result };
      }).immediate(),
    );
  }

  /** Writes a plan as it is: inserts, then updates (a successor exists before a key names it), then events. */
  private apply(plan: WritePlan): void {
    for (const key of plan.insertKeys) this.statements.insertKey.run(apiKeyParams(key));
    for (const update of plan.updateKeys) this.updateStatement(update).run(this.updateParams(update));
    for (const event of plan.events) this.statements.insertEvent.run(eventParams({ id: newKeyEventId(), ...event }));
  }

  private updateStatement(update: KeyUpdate): Database.Statement<Record<string, unknown>, unknown> {
    const columns = MUTABLE_KEY_FIELDS.filter((field) => field in update.set);
    if (columns.length === 0) throw new Error(`key update of ${update.id} names no column`);
    return this.listStatement(`update:${columns.join(",")}`, () =>
      `UPDATE api_keys SET ${columns.map((column) => `${column} = @${column}`).join(", ")} WHERE id = @id`,
    );
  }

  private updateParams(update: KeyUpdate): Record<string, unknown> {
    const params: Record<string, unknown> = { ...update.set, id: update.id };
    if (update.set.scopes !== undefined) params.scopes = JSON.stringify(update.set.scopes);
    return params;
  }

  async appendEvent(event: KeyEventRow): Promise<void> {
    this.statements.insertEvent.run(eventParams(event));
  }

  async appendEvents(events: readonly KeyEventRow[]): Promise<void> {
    if (events.length === 0) return;
    this.db.transaction(() => {
      for (const event of events) this.statements.insertEvent.run(eventParams(event));
    })();
  }

  async ping(): Promise<void> {
    this.statements.ping.get();
  }

  async recordKeyUse(id: string, use: KeyUse): Promise<void> {
    this.writeKeyUse(id, use);
  }

  /** One transaction, however many uses: callers that must not block for long pass them in chunks. */
  async recordKeyUses(uses: readonly (readonly [id: string, use: KeyUse])[]): Promise<void> {
    if (uses.length === 0) return;
    this.db.transaction(() => {
      for (const [id, use] of uses) this.writeKeyUse(id, use);
    })();
  }

  /**
   * A use of a key that does not exist fails key_usage's foreign key; it is dropped, as the old
   * UPDATE of api_keys dropped it, rather than failing (and forever re-queueing) a whole batch.
   */
  private writeKeyUse(id: string, use: KeyUse): void {
    try {
      this.statements.recordKeyUse.run({ id, at: use.at, ip: use.ip, user_agent: use.userAgent });
    } catch (error) {
      if ((error as { code?: unknown }).code !== "SQLITE_CONSTRAINT_FOREIGNKEY") throw error;
    }
  }

  async listKeyEvents(query: ListEventsQuery): Promise<KeyEventEntry[]> {
    const byKey = query.keyId !== null;
    const byOwner = query.ownerUserId !== null;
    const after = query.after !== null;
    const statement = this.listStatement(`events:${byKey}:${byOwner}:${after}`, () =>
      [
        "SELECT e.*, e.rowid AS seq FROM key_events e",
        // A user's view: only events of keys they own (the join also drops events naming no key).
        byOwner ? "JOIN api_keys k ON k.id = e.key_id AND k.user_id = @owner_user_id" : "",
        "WHERE e.organization_id = @organization_id",
        byKey ? "AND e.key_id = @key_id" : "",
        after ? "AND (e.occurred_at, e.rowid) > (@after_at, @after_seq)" : "",
        "ORDER BY e.occurred_at, e.rowid LIMIT @limit",
      ].join(" "),
    );
    const params: Record<string, unknown> = { organization_id: query.organizationId, limit: query.limit };
    if (byKey) params.key_id = query.keyId;
    if (byOwner) params.owner_user_id = query.ownerUserId;
    if (after) {
      params.after_at = query.after!.at;
      params.after_seq = query.after!.seq;
    }
    return (statement.all(params) as (KeyEventDbRow & { seq: number })[]).map(({ seq, ...row }) => ({
      event: toKeyEventRow(row),
      seq,
    }));
  }

  async listEvents(keyId: string): Promise<KeyEventRow[]> {
    return this.statements.eventsOfKey.all(keyId).map(toKeyEventRow);
  }

  async close(): Promise<void> {
    this.keyChanges.close();
    if (this.db.open) this.db.close();
  }
}
