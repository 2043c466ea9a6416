import type Database from "better-sqlite3";

/**
 * KeyStore.keyChangeVersion on SQLite, exact: `PRAGMA data_version` (about 1.4 µs through this
 * prepared statement; README, "Verification cache") moves when another connection, of this
 * process or another, commits, but not for this connection's own commits, which SqliteKeyStore
 * counts (ownWrite) as each write() ends. Any commit of another process moves it, its last-use
 * writes too: a cache is then emptied more often than needed, never less. Writes through the
 * store's `db` directly, outside its methods, are not seen.
 */
export class SqliteKeyChanges {
  private readonly dataVersion: Database.Statement<[], number>;
  private current = 0;
  private seenDataVersion = -1;

  constructor(db: Database.Database) {
    this.dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck();
  }

  version(): number {
    const dataVersion = this.dataVersion.get()!;
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
}
