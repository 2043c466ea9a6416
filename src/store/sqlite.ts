import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { newOrganizationId, newUserId } from "../keys/ids.js";
import type { HashAlgorithm } from "../keys/hash.js";
import { loadMigrations, type Migration } from "./migrations.js";
import type {
  ApiKeyRow,
  InsertKeyRequest,
  InsertKeyResult,
  KeyEventRow,
  KeyStore,
  OrganizationRow,
  ProjectRow,
  Transport,
  UserRow,
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
interface ProjectDbRow extends Omit<ProjectRow, "default_scopes"> {
  default_scopes: string;
}
interface KeyEventDbRow extends Omit<KeyEventRow, "detail" | "transport"> {
  detail: string;
  transport: string;
}

const ACTIVE_AT = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now)";

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
 * Opens (creating when needed) a SQLite database and brings its schema up to date.
 * A database written by a newer keywarden is refused and left untouched.
 */
export function openSqliteDatabase(options: SqliteStoreOptions): Database.Database {
  const migrations = options.migrations ?? loadMigrations();
  const latest = migrations.length;
  let db: Database.Database;
  try {
    if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
    db = new Database(options.path);
  } catch (error) {
    throw new StoreOpenError(`cannot open database ${options.path}: ${(error as Error).message}`);
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
      countActiveKeys: db.prepare<{ user_id: string; now: string }, { n: number }>(
        `SELECT count(*) AS n FROM api_keys WHERE user_id = @user_id AND ${ACTIVE_AT}`,
      ),
      insertKey: db.prepare(
        `INSERT INTO api_keys (id, organization_id, user_id, project_id, name, description, key_prefix, key_hash,
           hash_algorithm, scopes, created_at, created_by_user_id, created_by_key_id, expires_at, last_used_at,
           last_used_ip, last_used_user_agent, revoked_at, revoked_reason, rotated_from, replaced_by)
         VALUES (@id, @organization_id, @user_id, @project_id, @name, @description, @key_prefix, @key_hash,
           @hash_algorithm, @scopes, @created_at, @created_by_user_id, @created_by_key_id, @expires_at, @last_used_at,
           @last_used_ip, @last_used_user_agent, @revoked_at, @revoked_reason, @rotated_from, @replaced_by)`,
      ),
      keyById: db.prepare<[string], ApiKeyDbRow>("SELECT * FROM api_keys WHERE id = ?"),
      keyByPrefix: db.prepare<[string], ApiKeyDbRow>("SELECT * FROM api_keys WHERE key_prefix = ?"),
      insertEvent: db.prepare(
        `INSERT INTO key_events (id, organization_id, key_id, event_type, actor_user_id, actor_key_id, transport,
           client_address, occurred_at, detail)
         VALUES (@id, @organization_id, @key_id, @event_type, @actor_user_id, @actor_key_id, @transport,
           @client_address, @occurred_at, @detail)`,
      ),
      eventsOfKey: db.prepare<[string], KeyEventDbRow>("SELECT * FROM key_events WHERE key_id = ? ORDER BY occurred_at, id"),
    };
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

  async countActiveKeys(userId: string, now: string): Promise<number> {
    return this.statements.countActiveKeys.get({ user_id: userId, now })!.n;
  }

  async listEvents(keyId: string): Promise<KeyEventRow[]> {
    return this.statements.eventsOfKey.all(keyId).map(toKeyEventRow);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
