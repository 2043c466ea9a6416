// Every transaction keywarden runs on PostgreSQL, and what happens to it when its connection is
// lost. postgres.js 3.4.9 cannot take a query on a connection that has closed: it schedules the
// write, and the write throws a TypeError from a timer that nothing can catch (`socket.write` of
// null in connection.js's nextWrite; porsager/postgres#1208, #1154). Its sql.begin() sends
// ROLLBACK on exactly such a connection when the transaction failed because the connection was
// lost: a database restart or failover killed the process (test/store/postgres-connection-loss.test.ts).
// sql.reserve() is no way out: a reserve() that waits for a connection while another closes is
// dropped and never answered (the pool reconnects for it, then forgets it after fetching array
// types), and a reserved connection handed back with release() after it closed is put in the pool
// for the next query to crash on.
//
// So sql.begin(), with one change: when a statement fails because the connection is gone, the
// transaction's function does not return at all. begin() then neither rolls back nor commits; it
// ends when the connection closes (its race with the connection's close, index.js), and PostgreSQL
// rolls back what the lost session had not committed.
import postgres from "postgres";
import { CommitOutcomeUnknownError, ConnectionLostError } from "./errors.js";
import type { PgSql } from "./postgres-open.js";

export { CommitOutcomeUnknownError, ConnectionLostError };

/** The connection a transaction's statements run on. */
export type PgTx = postgres.TransactionSql;

/**
 * Codes of a connection that is over: postgres.js's own (src/errors.js: closed, destroyed, ended,
 * never came up) and the socket's. Only these: a transaction that met one waits for the close.
 */
const CONNECTION_GONE_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "ECONNABORTED",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTCONN",
]);

/**
 * Whether `error` says the session is over: one of CONNECTION_GONE_CODES, a TLS failure, or an
 * error PostgreSQL ends the session with (severity FATAL or PANIC; SQLSTATE class 08, connection
 * exception, and 57P, operator intervention: 57P01 is pg_terminate_backend or a fast shutdown).
 * Any other error leaves the connection usable: a statement PostgreSQL refused (severity ERROR,
 * 57014 statement_timeout and 40P01 deadlock too), or one of the caller's own.
 */
export function isConnectionGone(error: unknown): boolean {
  if (error === null || typeof error !== "object") return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  if (error instanceof postgres.PostgresError) return severity === "FATAL" || severity === "PANIC" || /^(08|57P)/.test(String(code));
  return typeof code === "string" && (CONNECTION_GONE_CODES.has(code) || /^ERR_(SSL|TLS)_/.test(code));
}

/**
 * Runs `fn` in one transaction and commits; returns what `fn` returned. `fn` must await only
 * statements on `tx` (no timer, no other I/O), so that none is sent after the connection could
 * have closed, and let their errors through. On an error the transaction is rolled back and the
 * error thrown as it is; when the connection is gone instead, ConnectionLostError (before COMMIT
 * was sent) or CommitOutcomeUnknownError (at COMMIT), their cause the driver's error.
 */
export async function inTransaction<T>(sql: PgSql, fn: (tx: PgTx) => Promise<T>): Promise<T> {
  let committing = false;
  let lost: unknown = null;
  try {
    return (await sql.begin(
      (tx) =>
        new Promise<T>((resolve, reject) => {
          fn(tx).then(
            (result) => {
              committing = true;
              resolve(result);
            },
            (error: unknown) => {
              // Left pending: begin() would send ROLLBACK on the closed connection.
              if (isConnectionGone(error)) lost = error;
              else reject(error);
            },
          );
        }),
    )) as T;
  } catch (error) {
    if (lost !== null) throw new ConnectionLostError(lost);
    if (isConnectionGone(error)) throw committing ? new CommitOutcomeUnknownError(error) : new ConnectionLostError(error);
    throw error;
  }
}

/** Deadlocks (two plans reaching for each other's users) and serialisation failures: the whole transaction runs again. */
const CONFLICT_CODES = new Set(["40P01", "40001"]);
const CONFLICT_ATTEMPTS = 5;

/** Runs `attempt` again, from the start, when PostgreSQL aborted it for a deadlock or a serialisation failure. */
export async function retryingConflicts<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (n >= CONFLICT_ATTEMPTS || typeof code !== "string" || !CONFLICT_CODES.has(code)) throw error;
    }
  }
}

/**
 * inTransaction for the store's writes: run again after a conflict (retryingConflicts), and once
 * more on a new connection when the connection was lost before COMMIT was sent (nothing was
 * committed, and `fn` reads and decides again from the start: a database restart or failover costs
 * the caller nothing). A CommitOutcomeUnknownError is never run again: the first run may have
 * committed, and a second could write it twice.
 */
export async function runTransaction<T>(sql: PgSql, fn: (tx: PgTx) => Promise<T>): Promise<T> {
  const once = () => retryingConflicts(() => inTransaction(sql, fn));
  try {
    return await once();
  } catch (error) {
    if (!(error instanceof ConnectionLostError)) throw error;
    await nextTurn();
    return once();
  }
}

/**
 * Resolves from a timer, on a later turn of the event loop. A connection's loss is reported from
 * its close event; the pool still holds the connections a restart closed in the same turn, and a
 * statement handed to one of them there has its write cancelled by the close but left pending in
 * postgres.js 3.4.9, so that the connection never again sends its startup message: every query
 * on it waits for connect_timeout (connection.js closed() clears nextWriteTimer without resetting
 * it; LanternOps/breeze#3225, porsager/postgres#1215). From a timer every connection closed by
 * then has been taken out of the pool.
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
