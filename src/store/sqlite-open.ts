import { closeSync, constants, mkdirSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, sep } from "node:path";
import Database from "better-sqlite3";
import { StoreOpenError } from "./errors.js";
import { loadMigrations, type Migration } from "./migrations.js";

export { StoreOpenError };

export interface SqliteStoreOptions {
  /** A file path, or ":memory:". */
  path: string;
  /** How long a writer waits for another process's lock before giving up. */
  busyTimeoutMs?: number;
  migrations?: Migration[];
}

/**
 * SQLite's page cache of each connection, in KiB (`PRAGMA cache_size = -N`); keywarden opens one.
 * It fills as pages are read or written and then stays at this size: under the soak's load a
 * server's resident memory grows by about this much (main malloc arena) until the database
 * outgrows it, then is flat (test/reliability/soak.test.ts). 16,000 is what better-sqlite3
 * compiles in (SQLITE_DEFAULT_CACHE_SIZE=-16000; SQLite's own default is 2,000): set here so that
 * the bound is keywarden's, not a build flag of a dependency.
 */
export const SQLITE_CACHE_KIB = 16_000;

/**
 * better-sqlite3 loads its compiled addon on the first `new Database`. Built for another Node (a
 * client that launches a different `node` than the one `npm ci` ran with), it fails with
 * ERR_DLOPEN_FAILED and a multi-line NODE_MODULE_VERSION message that blames nothing the user can
 * see. One line instead: which Node is running, and how to rebuild the addon for it.
 */
export function addonLoadFailure(error: unknown): string | null {
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
    db.pragma(`cache_size = -${SQLITE_CACHE_KIB}`);
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

