// `keywarden admin copy`: a SQLite database moved into an empty PostgreSQL database, all or nothing.
// The source is read in one snapshot and never written (src/store/copy-source.ts); the target is
// written in one transaction that holds its tables locked, refuses a database that holds any
// keywarden data, inserts every table in batches (src/store/copy-tables.ts) and compares the
// counts before it commits. Ids, hashes and their algorithms, instants, the audit log's order, last
// use and the pepper fingerprint arrive as they were: every token verifies as it did.
import { openSqliteSource, type SqliteSnapshot } from "./copy-source.js";
import { batchParameters, COPIED_TABLES, insertStatement, UncopyableValueError, type CopiedTableName } from "./copy-tables.js";
import { redactDatabaseUrl } from "./database.js";
import { StoreOpenError } from "./errors.js";
import { describePgError, openPostgres, type PgSql } from "./postgres-open.js";
import { CommitOutcomeUnknownError, ConnectionLostError, inTransaction, type PgTx } from "./postgres-transaction.js";

export { COPIED_TABLES, type CopiedTableName } from "./copy-tables.js";

export interface CopyOptions {
  /** The SQLite file to copy. */
  from: string;
  /** postgres://… of the target (PG* environment variables fill in what it leaves out). */
  to: string;
  /** Rows per INSERT statement (default 5,000). */
  batchSize?: number;
}

export interface TableCount {
  table: CopiedTableName;
  source: number;
  target: number;
}

export interface CopyReport {
  from: string;
  /** The target as it may be shown: its password masked (src/store/database.ts). */
  to: string;
  /** The schema version of the source file (an older one is migrated in memory, the file untouched). */
  sourceSchemaVersion: number;
  /** Per table, in insertion order: rows in the source's snapshot and in the target before commit. */
  counts: TableCount[];
  /** From the start (connecting and migrating the target included) to the commit. */
  milliseconds: number;
}

/**
 * The copy failed after it began writing; the target's transaction was rolled back, so the target
 * is as it was. `counts` is set when the failure is the final count check.
 */
export class CopyFailedError extends Error {
  override name = "CopyFailedError";
  constructor(
    message: string,
    readonly counts: TableCount[] | null = null,
  ) {
    super(message);
  }
}

const DEFAULT_BATCH_SIZE = 5000;
/**
 * Each statement of the copy may take this long: the connection's own statement_timeout (5 s by
 * default, src/store/postgres-open.ts) is for requests, not for a batch of thousands of rows.
 */
const COPY_STATEMENT_TIMEOUT_MS = 300_000;
const LOCK_NOT_AVAILABLE = "55P03";

/**
 * Copies `from` into `to`. Refusals before anything is written (no source, a source from a newer
 * keywarden, a bad URL, an unreachable server, a target in use or holding data) are
 * StoreOpenErrors; a failure after that is a CopyFailedError, the target rolled back. The target's
 * schema is created (migrated) when it has none, as any keywarden command on it would.
 */
export async function copySqliteToPostgres(options: CopyOptions): Promise<CopyReport> {
  const started = performance.now();
  const label = redactDatabaseUrl(options.to);
  // The source is checked before the target is touched; its snapshot is taken once the target is
  // locked and found empty, as late as it can be.
  const source = openSqliteSource(options.from);
  let sql: PgSql;
  try {
    sql = await openPostgres({ url: options.to, poolSize: 1 });
  } catch (error) {
    source.close();
    throw error;
  }
  try {
    // One transaction (src/store/postgres-transaction.ts): on a connection that is gone nothing
    // more is sent, and PostgreSQL rolls back what the lost session had not committed.
    const counts = await inTransaction(sql, async (tx) => {
      await tx.unsafe(`SET LOCAL statement_timeout = ${COPY_STATEMENT_TIMEOUT_MS}`);
      await lockEmptyTarget(tx, label, options.to);
      const snapshot = source.snapshot();
      const counts = await copyTables(tx, snapshot, options.batchSize ?? DEFAULT_BATCH_SIZE);
      if (snapshot.end()) {
        throw new CopyFailedError(`${options.from} was written to during the copy: nothing was copied; stop every keywarden that uses it and run the copy again`);
      }
      if (counts.some((count) => count.source !== count.target)) {
        throw new CopyFailedError(`the counts differ (${differences(counts)}): nothing was copied`, counts);
      }
      return counts;
    });
    return { from: options.from, to: label, sourceSchemaVersion: source.fileVersion, counts, milliseconds: Math.round(performance.now() - started) };
  } catch (error) {
    if (error instanceof StoreOpenError || error instanceof CopyFailedError) throw error;
    if (error instanceof CommitOutcomeUnknownError) {
      // The COMMIT may have reached the server before the connection failed: say so, not "nothing".
      throw new CopyFailedError(
        `copy into ${label} failed at commit, so it may hold the whole copy or nothing: run the copy again (it refuses a database that holds the copy): ${describePgError(error.cause, options.to)}`,
      );
    }
    const cause = error instanceof ConnectionLostError ? error.cause : error;
    const why = cause instanceof UncopyableValueError ? cause.message : describePgError(cause, options.to);
    throw new CopyFailedError(`copy into ${label} failed, nothing was copied: ${why}`);
  } finally {
    source.close();
    // The copy's session ends with it.
    await sql.end({ timeout: 0 }).catch(() => undefined);
  }
}

/**
 * Locks every table against writers (readers go on), without waiting: a lock held elsewhere means
 * another keywarden or another copy is writing there. Then any row at all is a refusal: the copy
 * never merges into or overwrites a keywarden database.
 */
async function lockEmptyTarget(tx: PgTx, label: string, url: string): Promise<void> {
  try {
    await tx.unsafe(`LOCK TABLE ${COPIED_TABLES.map((table) => table.name).join(", ")} IN EXCLUSIVE MODE NOWAIT`);
  } catch (error) {
    if ((error as { code?: unknown }).code !== LOCK_NOT_AVAILABLE) throw error;
    throw new StoreOpenError(
      `database ${label} is in use (another session is writing to it): admin copy needs it to itself; stop what uses it and run the copy again (${describePgError(error, url)})`,
    );
  }
  const rows = await targetCounts(tx);
  const held = COPIED_TABLES.map((table) => [table.name, rows[table.name]] as const).filter(([, n]) => n > 0);
  if (held.length > 0) {
    throw new StoreOpenError(
      `database ${label} already holds keywarden data (${held.map(([table, n]) => `${table}: ${n}`).join(", ")}): ` +
        `admin copy never merges into or overwrites a database; copy into a new, empty database`,
    );
  }
}

/** Rows of every table of the target, in one statement. */
async function targetCounts(tx: PgTx): Promise<Record<CopiedTableName, number>> {
  const [row] = await tx.unsafe<Record<CopiedTableName, string>[]>(
    `SELECT ${COPIED_TABLES.map((table) => `(SELECT count(*) FROM ${table.name}) AS ${table.name}`).join(", ")}`,
  );
  return Object.fromEntries(COPIED_TABLES.map((table) => [table.name, Number(row![table.name])])) as Record<CopiedTableName, number>;
}

/**
 * Every table in insertion order, each batch one statement. Up to two statements are in flight at
 * once (postgres.js pipelines them on the transaction's connection), so reading the next batch from
 * SQLite overlaps PostgreSQL's work on the last one. Then every table is counted on both sides,
 * once all are written (a trigger on api_keys writes key_hash_algorithms).
 */
async function copyTables(tx: PgTx, snapshot: SqliteSnapshot, batchSize: number): Promise<TableCount[]> {
  for (const table of COPIED_TABLES) {
    const statement = insertStatement(table);
    const inFlight: Promise<unknown>[] = [];
    for (const rows of snapshot.batches(table, batchSize)) {
      const sent = tx.unsafe(statement, batchParameters(table, rows) as never[], { prepare: true }).execute();
      // Awaited below; once one statement fails the rest fail with the transaction, and are not
      // unhandled rejections meanwhile.
      sent.catch(() => undefined);
      inFlight.push(sent);
      if (inFlight.length > 1) await inFlight.shift();
    }
    for (const sent of inFlight) await sent;
  }
  const target = await targetCounts(tx);
  return COPIED_TABLES.map((table) => ({ table: table.name, source: snapshot.count(table.name), target: target[table.name] }));
}

function differences(counts: readonly TableCount[]): string {
  return counts
    .filter((count) => count.source !== count.target)
    .map((count) => `${count.table}: ${count.source} in the source, ${count.target} in the target`)
    .join("; ");
}
