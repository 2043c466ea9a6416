// Opening a PostgreSQL database: the connection settings every connection of keywarden's shares,
// and the migrations (numbered .sql files in migrations-postgres/), tracked in a table and run
// under an advisory lock so that instances starting together migrate once.
import postgres from "postgres";
import { DEFAULT_PG_POOL_SIZE, DEFAULT_PG_STATEMENT_TIMEOUT_MS, redactDatabaseUrl } from "./database.js";
import { StoreOpenError } from "./errors.js";
import { loadMigrations, type Migration } from "./migrations.js";
import { PG_TYPES } from "./postgres-types.js";

export type PgSql = postgres.Sql;
export { DEFAULT_PG_POOL_SIZE, DEFAULT_PG_STATEMENT_TIMEOUT_MS };

export interface PostgresStoreOptions {
  /**
   * `postgres://user:password@host:port/database?sslmode=…`. What it leaves out comes from the
   * standard PG* environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; read by postgres.js).
   */
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** statement_timeout of every connection, in milliseconds (default 5000). */
  statementTimeoutMs?: number;
  migrations?: Migration[];
  /**
   * false: refuse a database without keywarden's schema instead of creating it (for commands that
   * only read or change what is there, so that a mistyped URL is not answered from an empty schema).
   */
  createSchema?: boolean;
  /** How long opening waits for the server's first answer (default FIRST_CONTACT_DEADLINE_MS). */
  firstContactDeadlineMs?: number;
  /**
   * false: never LISTEN for key changes on behalf of a cache (`--no-key-notifications`, say behind
   * a pooler that does not carry LISTEN/NOTIFY); keyChangeVersion then answers null, so the
   * verification cache reads the store every time. watchKeyChanges, asked explicitly, still listens.
   */
  keyChangeNotifications?: boolean;
  /**
   * How long the verification cache may answer from a key read this long ago, whatever it heard
   * (default PG_KEY_CACHE_MAX_AGE_MS): the bound for a change committed without a notification
   * (a session with triggers off, `session_replication_role = replica`). A listening connection
   * that is lost or silent is bounded by the heartbeat instead (src/store/postgres.ts).
   */
  keyCacheMaxAgeMs?: number;
}

/** The table that records the migrations applied, one row per version. */
const MIGRATIONS_TABLE = "keywarden_schema_migrations";
/**
 * The session advisory lock migrations run under (a single 64-bit key; the per-user write locks of
 * src/store/postgres-write.ts use the two-key space, which never overlaps it).
 */
const MIGRATION_LOCK = BigInt("0x6b776d6967726174").toString(); // "kwmigrat" in ASCII, as int8 text

/** The numbered SQL files of migrations-postgres/, beside this module in src/ and in dist/ (scripts/copy-assets.mjs). */
export function loadPostgresMigrations(): Migration[] {
  return loadMigrations(new URL("./migrations-postgres/", import.meta.url));
}

/**
 * postgres.js options of every keywarden connection. TimeZone=UTC and DateStyle=ISO fix the text
 * form of timestamptz that fromPgTimestamp reads (src/store/postgres-types.ts); notices are
 * dropped, never printed (postgres.js's default is console.log, and stdout is the stdio transport).
 */
export function connectionOptions(options: PostgresStoreOptions, applicationName = "keywarden"): postgres.Options<typeof PG_TYPES> {
  return {
    max: options.poolSize ?? DEFAULT_PG_POOL_SIZE,
    types: PG_TYPES,
    onnotice: () => undefined,
    connection: {
      application_name: applicationName,
      TimeZone: "UTC",
      DateStyle: "ISO",
      statement_timeout: options.statementTimeoutMs ?? DEFAULT_PG_STATEMENT_TIMEOUT_MS,
    },
  };
}

/**
 * An error of the driver or the server as one line without the password: the server's message,
 * or the socket's code (an AggregateError of several refused addresses has an empty message).
 */
export function describePgError(error: unknown, url: string): string {
  const err = error as { message?: unknown; code?: unknown; errors?: unknown[] } | null;
  let text = typeof err?.message === "string" && err.message.length > 0 ? err.message : "";
  if (!text && Array.isArray(err?.errors)) text = err.errors.map((inner) => (inner as Error)?.message).filter(Boolean).join("; ");
  if (!text) text = typeof err?.code === "string" ? err.code : String(error);
  text = text.replace(/\s+/g, " ").trim();
  for (const secret of [passwordOf(url), process.env.PGPASSWORD]) {
    if (secret) text = text.split(secret).join("***");
  }
  return text;
}

function passwordOf(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).password) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Connects and brings the schema up to date. A database whose recorded version is newer than this
 * build knows is refused before anything is written; so is one without keywarden's schema when
 * `createSchema` is false. Every refusal and failure is a StoreOpenError of one line.
 */
export async function openPostgres(options: PostgresStoreOptions): Promise<PgSql> {
  const label = redactDatabaseUrl(options.url);
  let sql: PgSql;
  try {
    sql = postgres(options.url, connectionOptions(options)) as unknown as PgSql;
  } catch (error) {
    throw new StoreOpenError(`cannot open PostgreSQL database ${label}: ${describePgError(error, options.url)}`);
  }
  try {
    await withinFirstContactDeadline(checkSessionSettings(sql, label), label, options.firstContactDeadlineMs ?? FIRST_CONTACT_DEADLINE_MS);
    await migrate(sql, options.migrations ?? loadPostgresMigrations(), label, options.createSchema ?? true);
    // The pool's first connection fetched the server's array types (postgres.js's fetch_types)
    // for every connection of the pool; those that replace lost ones skip the query. postgres.js
    // 3.4.9 runs it on each new connection, and one lost during it rejects a promise nobody holds
    // (connection.js fetchArrayTypes): an unhandled rejection, which ends the process
    // (test/store/postgres-connection-loss.test.ts). Without it, a sql.reserve() that has to open
    // a connection is never answered: no reserve() after this (src/store/postgres-transaction.ts).
    sql.options.fetch_types = false;
    return sql;
  } catch (error) {
    await sql.end({ timeout: 0 }).catch(() => undefined);
    if (error instanceof StoreOpenError) throw error;
    throw new StoreOpenError(`cannot open PostgreSQL database ${label}: ${describePgError(error, options.url)}`);
  }
}

/**
 * How long opening waits for the server's first answer. postgres.js bounds each connection attempt
 * (connect_timeout, 30 s by default) but not their number: a port that accepts and closes at once
 * (a balancer or port-forward with no backend), or answers in another protocol, is retried every
 * few milliseconds for ever. Past this, opening fails in one line, as an unreachable server does.
 */
export const FIRST_CONTACT_DEADLINE_MS = 30_000;

async function withinFirstContactDeadline<T>(first: Promise<T>, label: string, deadlineMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreOpenError(`cannot open PostgreSQL database ${label}: no PostgreSQL answer within ${deadlineMs / 1000} s (is it a PostgreSQL server on that host and port?)`)),
      deadlineMs,
    );
  });
  try {
    return await Promise.race([first, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A URL's own TimeZone or DateStyle parameter would beat connectionOptions': refuse rather than misread instants. */
async function checkSessionSettings(sql: PgSql, label: string): Promise<void> {
  const [settings] = await sql<{ timezone: string; datestyle: string }[]>`SELECT current_setting('TimeZone') AS timezone, current_setting('DateStyle') AS datestyle`;
  if (settings!.timezone !== "UTC" || !settings!.datestyle.startsWith("ISO")) {
    throw new StoreOpenError(
      `PostgreSQL database ${label}: keywarden needs TimeZone=UTC and DateStyle=ISO on its connections, got ${settings!.timezone} and ${settings!.datestyle}; remove them from the URL`,
    );
  }
}

/** The version recorded in the database, or null when it has no keywarden schema. Reads only. */
async function recordedVersion(sql: PgSql): Promise<number | null> {
  const [table] = await sql<{ present: boolean }[]>`SELECT to_regclass(${MIGRATIONS_TABLE}) IS NOT NULL AS present`;
  if (!table!.present) return null;
  const [row] = await sql.unsafe<{ version: number | null }[]>(`SELECT max(version) AS version FROM ${MIGRATIONS_TABLE}`);
  return row!.version ?? 0;
}

function newerThanThisBuild(label: string, found: number, latest: number): StoreOpenError {
  return new StoreOpenError(
    `database ${label} has schema version ${found}, newer than this keywarden understands (${latest}); upgrade keywarden, the database was not modified`,
  );
}

async function migrate(sql: PgSql, migrations: Migration[], label: string, createSchema: boolean): Promise<void> {
  const latest = migrations.length;
  // Read before anything writes (or locks): a newer schema must not be touched.
  const found = await recordedVersion(sql);
  if (found === null && !createSchema) {
    throw new StoreOpenError(`database ${label} has no keywarden schema (--db / KEYWARDEN_DB): this command creates none; check the URL`);
  }
  if (found !== null && found > latest) throw newerThanThisBuild(label, found, latest);
  if (found === latest) return;

  // One connection holds the session lock: instances starting together wait here, and the one
  // after the first finds the schema migrated.
  const connection = await sql.reserve();
  try {
    // Waiting for another instance's migration, or running a long one, is not a stuck statement.
    await connection`SET statement_timeout = 0`;
    await connection`SELECT pg_advisory_lock(${MIGRATION_LOCK}::int8)`;
    try {
      const current = (await recordedVersion(connection)) ?? 0;
      if (current > latest) throw newerThanThisBuild(label, current, latest);
      for (const migration of migrations.slice(current)) {
        // One simple-protocol query: its statements run as one implicit transaction, so a
        // migration and its record commit together or not at all.
        await connection.unsafe(
          `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
           );
           ${migration.sql};
           INSERT INTO ${MIGRATIONS_TABLE} (version, name) VALUES (${migration.version}, '${migration.name}');`,
        );
      }
    } finally {
      await connection`SELECT pg_advisory_unlock(${MIGRATION_LOCK}::int8)`.catch(() => undefined);
    }
  } finally {
    await connection`RESET statement_timeout`.catch(() => undefined);
    connection.release();
  }
}
