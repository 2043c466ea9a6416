// The SQLite side of `keywarden admin copy` (src/store/copy.ts): the file opened read-only and read
// in one read transaction, so that the copy is one consistent snapshot and the file is never written.
import { existsSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { type CopiedTable, type CopiedTableName } from "./copy-tables.js";
import { redactDatabaseUrl } from "./database.js";
import { StoreOpenError } from "./errors.js";
import { loadMigrations, type Migration } from "./migrations.js";
import { addonLoadFailure } from "./sqlite-open.js";

/** The source file, opened and checked; nothing read yet. */
export interface SqliteSource {
  /** The schema version of the file; an older one is brought up to date in memory, never in the file. */
  readonly fileVersion: number;
  /** Starts the one read transaction everything is copied from. */
  snapshot(): SqliteSnapshot;
  close(): void;
}

export interface SqliteSnapshot {
  /** Rows of each table at the snapshot. */
  count(table: CopiedTableName): number;
  /** The rows of `table` in its copy order, as arrays in its column order, `size` or so at a time. */
  batches(table: CopiedTable, size: number): Generator<unknown[][]>;
  /** Ends the snapshot; true when another connection committed to the file since it was taken. */
  end(): boolean;
}

/**
 * Opens `path` read-only. A file from a newer keywarden is refused, as openSqliteDatabase refuses
 * it (src/store/sqlite-open.ts); an older one is read through an image in memory migrated to this
 * build's schema, so that the file stays as it was (an older keywarden can still open it). No file,
 * or a file that is not a keywarden database, is a StoreOpenError too.
 */
export function openSqliteSource(path: string, migrations: Migration[] = loadMigrations()): SqliteSource {
  if (path === ":memory:" || !existsSync(path) || !statSync(path).isFile()) {
    throw new StoreOpenError(`no SQLite database at ${redactDatabaseUrl(path)} (--from): check the path`);
  }
  let file: Database.Database;
  try {
    file = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new StoreOpenError(addonLoadFailure(error) ?? `cannot open database ${path}: ${oneLine(error)}`);
  }
  try {
    // A reader can meet SQLITE_BUSY in WAL mode too (another connection recovering the WAL): wait, as the store does.
    file.pragma("busy_timeout = 5000");
    const latest = migrations.length;
    const found = file.pragma("user_version", { simple: true }) as number;
    if (found > latest) {
      throw new StoreOpenError(
        `database ${path} has schema version ${found}, newer than this keywarden understands (${latest}); upgrade keywarden, the database was not modified`,
      );
    }
    // openSqliteDatabase migrates every database it creates, so a keywarden file is never at 0.
    if (found === 0) throw new StoreOpenError(`${path} is not a keywarden database (no keywarden schema): check the path`);
    let image: Database.Database | null = null;
    return {
      fileVersion: found,
      snapshot: () => takeSnapshot(file, migrations.slice(found), (db) => (image = db)),
      close: () => {
        image?.close();
        file.close();
      },
    };
  } catch (error) {
    file.close();
    if (error instanceof StoreOpenError) throw error;
    throw new StoreOpenError(`cannot read database ${path}: ${oneLine(error)}`);
  }
}

function oneLine(error: unknown): string {
  return String((error as Error)?.message ?? error).replace(/\s+/g, " ").trim();
}

/**
 * The file's snapshot as an in-memory database, migrated. The header's WAL mode (bytes 18 and 19
 * set to 2) is reset to rollback mode: a deserialized database in WAL mode cannot be read.
 */
function migratedImage(file: Database.Database, pending: Migration[]): Database.Database {
  const image = file.serialize();
  image[18] = 1;
  image[19] = 1;
  const db = new Database(image);
  db.transaction(() => {
    for (const migration of pending) {
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    }
  })();
  return db;
}

function takeSnapshot(file: Database.Database, pending: Migration[], keepImage: (image: Database.Database) => void): SqliteSnapshot {
  file.exec("BEGIN");
  // The first read starts the snapshot; data_version, read inside it, is the file's version at it.
  file.prepare("SELECT count(*) FROM organizations").pluck().get();
  const dataVersion = file.pragma("data_version", { simple: true }) as number;
  const db = pending.length === 0 ? file : migratedImage(file, pending);
  if (db !== file) keepImage(db);
  return {
    count: (table) => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number,
    batches(table, size) {
      const rows = db
        .prepare(`SELECT ${table.columns.map(([name]) => name).join(", ")} FROM ${table.name} ORDER BY ${table.order}`)
        .raw(true)
        .iterate() as IterableIterator<unknown[]>;
      return table.name === "api_keys" ? chainBatches(rows, linkedKeys(db), size) : plainBatches(rows, size);
    },
    end() {
      // data_version stays as it was inside a read transaction: read it after.
      if (file.inTransaction) file.exec("COMMIT");
      return file.pragma("data_version", { simple: true }) !== dataVersion;
    },
  };
}

function* plainBatches(rows: IterableIterator<unknown[]>, size: number): Generator<unknown[][]> {
  let batch: unknown[][] = [];
  for (const row of rows) {
    batch.push(row);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** A rotation chain: the keys linked by rotated_from / replaced_by, and how many there are. */
interface Chain {
  size: number;
  seen: unknown[][];
}

/**
 * The keys that name another key or are named by one, each mapped to its rotation chain (union-find
 * over both links). Only these: a database of a million keys holds far fewer rotated ones.
 */
function linkedKeys(db: Database.Database): Map<string, Chain> {
  const parent = new Map<string, string>();
  const find = (id: string): string => {
    let top = id;
    for (let up = parent.get(top); up !== undefined && up !== top; up = parent.get(top)) top = up;
    if (top === id && !parent.has(id)) parent.set(id, id);
    for (let at = id; at !== top; ) {
      const next = parent.get(at)!;
      parent.set(at, top);
      at = next;
    }
    return top;
  };
  const links = db
    .prepare("SELECT id, rotated_from, replaced_by FROM api_keys WHERE rotated_from IS NOT NULL OR replaced_by IS NOT NULL")
    .raw(true)
    .all() as [string, string | null, string | null][];
  for (const [id, from, by] of links) {
    for (const other of [from, by]) if (other !== null) parent.set(find(other), find(id));
  }
  const chains = new Map<string, Chain>();
  const byId = new Map<string, Chain>();
  for (const id of parent.keys()) {
    const top = find(id);
    let chain = chains.get(top);
    if (!chain) chains.set(top, (chain = { size: 0, seen: [] }));
    chain.size++;
    byId.set(id, chain);
  }
  return byId;
}

/**
 * Batches in which each rotation chain is whole: a key and its successor name each other, which
 * PostgreSQL's foreign keys accept only within one statement (src/store/copy-tables.ts). A chain is
 * held back until its last key is read, then goes into the batch at once. A chain naming a key
 * that is not there never completes: it goes last, and the target's foreign key refuses it.
 */
function* chainBatches(rows: IterableIterator<unknown[]>, chains: Map<string, Chain>, size: number): Generator<unknown[][]> {
  let batch: unknown[][] = [];
  for (const row of rows) {
    const chain = chains.get(row[0] as string);
    if (chain === undefined) batch.push(row);
    else {
      chain.seen.push(row);
      if (chain.seen.length === chain.size) batch.push(...chain.seen.splice(0));
    }
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  for (const chain of new Set(chains.values())) batch.push(...chain.seen.splice(0));
  if (batch.length > 0) yield batch;
}
