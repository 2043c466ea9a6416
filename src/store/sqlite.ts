import { closeSync, constants, mkdirSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, sep } from "node:path";
import Database from "better-sqlite3";
import { newOrganizationId, newUserId } from "../keys/ids.js";
import type { HashAlgorithm } from "../keys/hash.js";
import { isActiveAt, isLaterExpiry, KEY_STATUS_SQL, keyStatusAt } from "./instants.js";
import { loadMigrations, type Migration } from "./migrations.js";
import type {
  ApiKeyRow,
  InsertKeyRequest,
  InsertKeyResult,
  KeyEventEntry,
  KeyEventRow,
  GraceCut,
  KeyStatusFilter,
  KeyStore,
  KeyStanding,
  KeyUse,
  ListEventsQuery,
  ListKeysQuery,
  OrganizationRow,
  ProjectRow,
  RevokeKeyRequest,
  RevokeKeyResult,
  RotateKeyRequest,
  RotateKeyResult,
  Transport,
  UpdateKeyRequest,
  UpdateKeyResult,
  UserRow,
  UserWithActiveKeys,
  VerifiableKey,
} from "./types.js";

export const DEFAULT_ORGANIZATION_NAME = "default";

/** Refusing to open a database is a user-facing condition, not a bug: the message is the whole story. */
export class StoreOpenError extends Error {
  override name = "StoreOpenError";
}

export interface SqliteStoreOptions {
  /** A file path, or ":memory:". */
  path: string;
  /** How long a writer waits for another process's lock before giving up. */
  busyTimeoutMs?: number;
  migrations?: Migration[];
}

interface ApiKeyDbRow extends Omit<ApiKeyRow, "scopes" | "key_hash" | "hash_algorithm"> {
  scopes: string;
  key_hash: Buffer;
  hash_algorithm: string;
}
/** The verification SELECT's columns, in order (a raw row: an array is cheaper to build than an object). */
type VerifiableKeyDbRow = [
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
interface ProjectDbRow extends Omit<ProjectRow, "default_scopes"> {
  default_scopes: string;
}
interface KeyEventDbRow extends Omit<KeyEventRow, "detail" | "transport"> {
  detail: string;
  transport: string;
}

const ACTIVE_AT = KEY_STATUS_SQL.active;

/** The keys the cap counts: active, and not on their way out after a rotation. */
const COUNTS_AGAINST_CAP = `replaced_by IS NULL AND ${ACTIVE_AT}`;

/** The cap's count, run in every create's write transaction: answered from api_keys_unrevoked_by_user alone. */
export const COUNT_ACTIVE_KEYS_SQL = `SELECT count(*) AS n FROM api_keys WHERE user_id = @user_id AND ${COUNTS_AGAINST_CAP}`;

/** The SQL condition of each status filter: keyStatusAt's own conditions (instants.ts). */
const STATUS_CONDITION: Record<KeyStatusFilter, string> = { ...KEY_STATUS_SQL, all: "1 = 1" };

/** Fields whose old and new values an update event records (description may be long: only named). */
const DETAILED_FIELDS = new Set(["name", "scopes", "expires_at"]);

const sameValue = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * A whole key row: api_keys with its last use from key_usage (null when never used), in the
 * column order of ApiKeyRow. Every reader of a whole key selects this; verification does not.
 * Column names are unique across the two tables, so conditions may name them unqualified.
 */
const KEY_ROW_SELECT = `SELECT api_keys.id, organization_id, user_id, project_id, name, description, key_prefix, key_hash,
    hash_algorithm, scopes, created_at, created_by_user_id, created_by_key_id, expires_at,
    last_used_at, last_used_ip, last_used_user_agent, revoked_at, revoked_reason, rotated_from, replaced_by
  FROM api_keys LEFT JOIN key_usage ON key_usage.key_id = api_keys.id`;

function toApiKeyRow(row: ApiKeyDbRow): ApiKeyRow {
  return {
    ...row,
    scopes: JSON.parse(row.scopes) as string[],
    key_hash: new Uint8Array(row.key_hash),
    hash_algorithm: row.hash_algorithm as HashAlgorithm,
  };
}
function toProjectRow(row: ProjectDbRow): ProjectRow {
  return { ...row, default_scopes: JSON.parse(row.default_scopes) as string[] };
}
function toKeyEventRow(row: KeyEventDbRow): KeyEventRow {
  return { ...row, transport: row.transport as Transport, detail: JSON.parse(row.detail) as Record<string, unknown> };
}
function apiKeyParams(key: ApiKeyRow) {
  return { ...key, scopes: JSON.stringify(key.scopes), key_hash: Buffer.from(key.key_hash) };
}
function eventParams(event: KeyEventRow) {
  return { ...event, detail: JSON.stringify(event.detail) };
}

/**
 * better-sqlite3 loads its compiled addon on the first `new Database`. Built for another Node (a
 * client that launches a different `node` than the one `npm ci` ran with), it fails with
 * ERR_DLOPEN_FAILED and a multi-line NODE_MODULE_VERSION message that blames nothing the user can
 * see. One line instead: which Node is running, and how to rebuild the addon for it.
 */
function addonLoadFailure(error: unknown): string | null {
  if ((error as NodeJS.ErrnoException | null)?.code !== "ERR_DLOPEN_FAILED") return null;
  const message = String((error as Error).message);
  const built = /NODE_MODULE_VERSION (\d+)\. This version/.exec(message)?.[1];
  const why = built
    ? `it was built for NODE_MODULE_VERSION ${built}, this Node needs ${process.versions.modules}`
    : message.replace(/\s+/g, " ").trim();
  let root = "the keywarden directory";
  try {
    const entry = createRequire(import.meta.url).resolve("better-sqlite3");
    root = entry.slice(0, entry.lastIndexOf(`${sep}node_modules${sep}`));
  } catch {
    // Keep the generic name: the advice still holds.
  }
  return (
    `better-sqlite3 cannot load in Node.js ${process.version} (${process.execPath}): ${why}; ` +
    `rebuild it with this Node: cd ${root} && PATH=${dirname(process.execPath)}:$PATH npm rebuild better-sqlite3 ` +
    `(or start keywarden with the node it was built for)`
  );
}

/**
 * Opens (creating when needed) a SQLite database and brings its schema up to date.
 * A database written by a newer keywarden is refused and left untouched.
 */
export function openSqliteDatabase(options: SqliteStoreOptions): Database.Database {
  const migrations = options.migrations ?? loadMigrations();
  const latest = migrations.length;
  let db: Database.Database;
  try {
    if (options.path !== ":memory:") {
      // The file holds every key's hash and the audit log: only its owner reads it. A directory
      // created here is 0700; the file is created 0600 before SQLite opens it, and SQLite gives
      // the -wal and -shm files it creates the database file's mode (test/store/sqlite.test.ts).
      mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      createPrivateFile(options.path);
    }
    db = new Database(options.path);
  } catch (error) {
    throw new StoreOpenError(addonLoadFailure(error) ?? `cannot open database ${options.path}: ${(error as Error).message}`);
  }
  try {
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
    // Read before anything writes: a newer schema must not be touched, not even by a journal-mode change.
    const found = db.pragma("user_version", { simple: true }) as number;
    if (found > latest) {
      throw new StoreOpenError(
        `database ${options.path} has schema version ${found}, newer than this keywarden understands (${latest}); upgrade keywarden, the database was not modified`,
      );
    }
    db.pragma("journal_mode = WAL");
    // A key that was returned must survive a crash: FULL syncs the WAL on every commit.
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    migrate(db, migrations);
    return db;
  } catch (error) {
    db.close();
    if (error instanceof StoreOpenError) throw error;
    throw new StoreOpenError(`cannot open database ${options.path}: ${(error as Error).message}`);
  }
}

/** Creates an empty file readable by its owner only, unless it exists (another process may create it first). */
function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
}

function migrate(db: Database.Database, migrations: Migration[]): void {
  // IMMEDIATE takes the write lock first, so two processes opening a new file migrate it once.
  db.transaction(() => {
    const current = db.pragma("user_version", { simple: true }) as number;
    for (const migration of migrations.slice(current)) {
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    }
  }).immediate();
}

export class SqliteKeyStore implements KeyStore {
  readonly db: Database.Database;
  private readonly statements;

  constructor(db: Database.Database) {
    this.db = db;
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
        .prepare<[string], VerifiableKeyDbRow>(
          `SELECT id, organization_id, user_id, project_id, key_hash, hash_algorithm, scopes, expires_at, revoked_at
           FROM api_keys WHERE key_prefix = ?`,
        )
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
      updateKey: db.prepare(
        `UPDATE api_keys SET name = @name, description = @description, scopes = @scopes, expires_at = @expires_at
         WHERE id = @id`,
      ),
      retireRotatedKey: db.prepare(
        `UPDATE api_keys SET replaced_by = @replaced_by, expires_at = @expires_at, revoked_at = @revoked_at,
           revoked_reason = @revoked_reason
         WHERE id = @id`,
      ),
      revokeKey: db.prepare("UPDATE api_keys SET revoked_at = @revoked_at, revoked_reason = @revoked_reason WHERE id = @id"),
      ping: db.prepare("SELECT count(*) AS n FROM organizations"),
      hashAlgorithms: db.prepare<[], string>("SELECT hash_algorithm FROM key_hash_algorithms").pluck(),
      // Newer wins: a use no later than the stored one changes nothing (equal times: the later write).
      recordKeyUse: db.prepare(
        `INSERT INTO key_usage (key_id, last_used_at, last_used_ip, last_used_user_agent) VALUES (@id, @at, @ip, @user_agent)
         ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at, last_used_ip = excluded.last_used_ip,
           last_used_user_agent = excluded.last_used_user_agent
         WHERE excluded.last_used_at >= key_usage.last_used_at`,
      ),
    };
  }

  /** Listing statements differ by filter; each shape is prepared once. */
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

  async insertKey({ key, event, maxActiveKeys, now }: InsertKeyRequest): Promise<InsertKeyResult> {
    // IMMEDIATE takes the write lock before the count, so no other connection or process can
    // insert between the check and the insert: the cap holds under any concurrency.
    return this.db
      .transaction((): InsertKeyResult => {
        const activeKeys = this.statements.countActiveKeys.get({ user_id: key.user_id, now })!.n;
        if (activeKeys >= maxActiveKeys) return { ok: false, reason: "max_keys_reached", activeKeys };
        this.statements.insertKey.run(apiKeyParams(key));
        this.statements.insertEvent.run(eventParams(event));
        return { ok: true };
      })
      .immediate();
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
    };
  }

  /** Few distinct scope lists exist (project and user defaults), so their parses are memoised, boundedly. */
  private readonly scopeLists = new Map<string, readonly string[]>();
  private parseScopes(json: string): string[] {
    let scopes = this.scopeLists.get(json);
    if (scopes === undefined) {
      scopes = Object.freeze(JSON.parse(json) as string[]);
      if (this.scopeLists.size >= 1024) this.scopeLists.clear();
      this.scopeLists.set(json, scopes);
    }
    return scopes as string[];
  }

  async listHashAlgorithms(): Promise<string[]> {
    return this.statements.hashAlgorithms.all();
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

  async updateKey({ id, changes, event, now, narrowScopesOnly, authorize, endGraceOf }: UpdateKeyRequest): Promise<UpdateKeyResult> {
    return this.db
      .transaction((): UpdateKeyResult => {
        const found = this.statements.keyById.get(id);
        if (!found) return { ok: false, reason: "not_found" };
        const before = toApiKeyRow(found);
        if (changes.expires_at !== undefined) {
          if (before.replaced_by !== null) return { ok: false, reason: "replaced", key: before };
          if (!isActiveAt(before, now)) return { ok: false, reason: "inactive", key: before };
        }
        if (changes.scopes !== undefined && narrowScopesOnly) {
          const held = new Set(before.scopes);
          const extra = changes.scopes.filter((scope) => !held.has(scope));
          if (extra.length > 0) return { ok: false, reason: "scope_widening", key: before, extra };
        }
        authorize?.(before);
        const after: ApiKeyRow = { ...before };
        const changed: string[] = [];
        const from: Record<string, unknown> = {};
        const to: Record<string, unknown> = {};
        for (const field of ["name", "description", "scopes", "expires_at"] as const) {
          const value = changes[field];
          if (value === undefined || sameValue(before[field], value)) continue;
          (after as unknown as Record<string, unknown>)[field] = value;
          changed.push(field);
          if (DETAILED_FIELDS.has(field)) {
            from[field] = before[field];
            to[field] = value;
          }
        }
        // Nothing really changes: nothing is written, not even an event.
        if (changed.length === 0) return { ok: true, key: before, changed };
        this.statements.updateKey.run({
          id,
          name: after.name,
          description: after.description,
          scopes: JSON.stringify(after.scopes),
          expires_at: after.expires_at,
        });
        this.statements.insertEvent.run(eventParams({ ...event, detail: { ...event.detail, changed, from, to } }));
        if (endGraceOf && changed.includes("expires_at")) this.cutGrace(endGraceOf, now);
        return { ok: true, key: after, changed };
      })
      .immediate();
  }

  async rotateKey({ oldKeyId, newKey, graceUntil, now, expected, events, endGraceOf }: RotateKeyRequest): Promise<RotateKeyResult> {
    // IMMEDIATE: the re-read, the check and both writes happen under the write lock, so of any
    // number of concurrent rotations of one key (from any connection or process) exactly one
    // finds replaced_by empty.
    return this.db
      .transaction((): RotateKeyResult => {
        const found = this.statements.keyById.get(oldKeyId);
        if (!found) return { ok: false, reason: "not_found" };
        const old = toApiKeyRow(found);
        // Replaced first: the loser of a race with a grace-0 rotation should hear "already rotated"
        // (and the successor's id), not merely "revoked".
        if (old.replaced_by !== null) return { ok: false, reason: "already_rotated", key: old };
        const status = keyStatusAt(old, now);
        if (status !== "active") return { ok: false, reason: status, key: old };
        if ((["name", "description", "scopes", "expires_at"] as const).some((field) => !sameValue(old[field], expected[field]))) {
          return { ok: false, reason: "changed", key: old };
        }

        // Grace 0: revoked now, its expiry untouched. Otherwise it expires at the end of the grace
        // period, or sooner if it was going to expire sooner anyway.
        const revokeNow = graceUntil <= now;
        const expiresAt =
          !revokeNow && (old.expires_at === null || graceUntil < old.expires_at) ? graceUntil : old.expires_at;
        const retired: ApiKeyRow = {
          ...old,
          replaced_by: newKey.id,
          expires_at: expiresAt,
          revoked_at: revokeNow ? now : null,
          revoked_reason: revokeNow ? "rotated" : null,
        };
        const stopsAt = retired.revoked_at ?? retired.expires_at;
        this.statements.insertKey.run(apiKeyParams(newKey));
        this.statements.retireRotatedKey.run({
          id: retired.id,
          replaced_by: retired.replaced_by,
          expires_at: retired.expires_at,
          revoked_at: retired.revoked_at,
          revoked_reason: retired.revoked_reason,
        });
        for (const event of events) {
          this.statements.insertEvent.run(
            eventParams({ ...event, detail: { ...event.detail, previous_key_expires_at: stopsAt, previous_key_revoked: revokeNow } }),
          );
        }
        if (endGraceOf) this.cutGrace(endGraceOf, now);
        return { ok: true, oldKey: retired, newKey };
      })
      .immediate();
  }

  async revokeKey({ id, reason, now, event, authorize, endGraceOf }: RevokeKeyRequest): Promise<RevokeKeyResult> {
    return this.db
      .transaction((): RevokeKeyResult => {
        const found = this.statements.keyById.get(id);
        if (!found) return { ok: false, reason: "not_found" };
        const key = toApiKeyRow(found);
        authorize?.(key);
        if (key.revoked_at !== null) return { ok: true, key, changed: false };
        const revoked: ApiKeyRow = { ...key, revoked_at: now, revoked_reason: reason };
        this.statements.revokeKey.run({ id, revoked_at: now, revoked_reason: reason });
        this.statements.insertEvent.run(eventParams(event));
        if (endGraceOf) this.cutGrace(endGraceOf, now);
        return { ok: true, key: revoked, changed: true };
      })
      .immediate();
  }

  /** See GraceCut; runs inside the caller's write transaction. */
  private cutGrace({ keyId, until, event }: GraceCut, now: string): void {
    const found = this.statements.keyById.get(keyId);
    const predecessor = found ? toApiKeyRow(found) : null;
    if (!predecessor || !isActiveAt(predecessor, now)) return;
    if (!isLaterExpiry(predecessor.expires_at, until)) return;
    this.statements.retireRotatedKey.run({
      id: predecessor.id,
      replaced_by: predecessor.replaced_by,
      expires_at: until,
      revoked_at: null,
      revoked_reason: null,
    });
    this.statements.insertEvent.run(
      eventParams({ ...event, detail: { ...event.detail, from: { expires_at: predecessor.expires_at }, to: { expires_at: until } } }),
    );
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
    if (this.db.open) this.db.close();
  }
}
