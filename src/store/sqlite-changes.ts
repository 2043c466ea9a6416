import { closeSync, openSync, readSync } from "node:fs";
import type Database from "better-sqlite3";

/**
 * The WAL-index header: its two copies, the first 96 bytes of the `-shm` file
 * (https://www.sqlite.org/walformat.html, "The WAL-Index Header"). Every commit, checkpoint and
 * WAL reset of any connection rewrites it (its change counter, last frame, checksums and salts).
 */
const WAL_INDEX_HEADER_BYTES = 96;

/**
 * KeyStore.keyChangeVersion on SQLite, exact: `PRAGMA data_version` moves when another connection,
 * of this process or another, commits, but not for this connection's own commits, which
 * SqliteKeyStore counts (ownWrite) as each write() ends. Any commit of another process moves it,
 * its last-use writes too: a cache is then emptied more often than needed, never less. Writes
 * through the store's `db` directly, outside its methods, are not seen.
 *
 * The pragma opens a read transaction, with its locks: 1.4-2.0 µs through this prepared statement,
 * as much as the rest of a cached verification. So it runs only when the WAL-index header has
 * changed since it last ran (one pread of 96 bytes, 0.6-0.7 µs; bench/README "verify in process"):
 * the header is read first, then the pragma, and that header kept. A commit after the read changes
 * the header again, so the next call runs the pragma again; one before it, the pragma sees. An
 * unchanged header means no connection committed since, so data_version cannot have moved either.
 * Without a `-shm` file to read (`:memory:`, or a journal mode other than WAL), the pragma runs
 * on every call.
 */
export class SqliteKeyChanges {
  private readonly dataVersion: Database.Statement<[], number>;
  private current = 0;
  private seenDataVersion = -1;
  /** The `-shm` file, open for reading while the store is; null: none, so the pragma every time. */
  private shm: number | null;
  private readonly header = Buffer.alloc(WAL_INDEX_HEADER_BYTES);
  /** The header as read just before the pragma last ran; all zero bytes until it has. */
  private readonly seenHeader = Buffer.alloc(WAL_INDEX_HEADER_BYTES);
  private pragmaRan = false;

  constructor(db: Database.Database) {
    this.dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck();
    this.shm = openShm(db);
  }

  version(): number {
    if (this.shm !== null) {
      if (this.readHeader() && this.pragmaRan && this.header.equals(this.seenHeader)) return this.current;
      this.header.copy(this.seenHeader);
    }
    const dataVersion = this.dataVersion.get()!;
    this.pragmaRan = true;
    if (dataVersion !== this.seenDataVersion) {
      this.seenDataVersion = dataVersion;
      this.current++;
    }
    return this.current;
  }

  /** Runs a write of keys; the version moves once it is done, before its caller hears back. */
  ownWrite<T>(write: () => T): T {
    try {
      return write();
    } finally {
      this.current++;
    }
  }

  close(): void {
    if (this.shm === null) return;
    closeSync(this.shm);
    this.shm = null;
  }

  /** Reads the header into `header`; false (and the pragma from now on) when the file cannot give it. */
  private readHeader(): boolean {
    try {
      if (readSync(this.shm!, this.header, 0, WAL_INDEX_HEADER_BYTES, 0) === WAL_INDEX_HEADER_BYTES) return true;
    } catch {
      // Fall through: the pragma alone is exact.
    }
    this.close();
    this.header.fill(0);
    return false;
  }
}

/** The database's `-shm` file, when it is in WAL mode with a shared one (not `:memory:`, not exclusive locking). */
function openShm(db: Database.Database): number | null {
  if (db.memory) return null;
  const journalMode = db.pragma("journal_mode", { simple: true });
  const lockingMode = db.pragma("locking_mode", { simple: true });
  if (journalMode !== "wal" || lockingMode !== "normal") return null;
  try {
    return openSync(`${db.name}-shm`, "r");
  } catch {
    return null;
  }
}
