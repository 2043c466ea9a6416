/**
 * Refusing to open a database is a user-facing condition, not a bug: the message is the whole story,
 * one line, naming the database as redactDatabaseUrl (src/store/database.ts) shows it.
 */
export class StoreOpenError extends Error {
  override name = "StoreOpenError";
}

/** The connection was lost before COMMIT was sent: PostgreSQL rolls the transaction back, nothing was written. */
export class ConnectionLostError extends Error {
  override name = "ConnectionLostError";
  constructor(override readonly cause: unknown) {
    super(`the connection to the database was lost before commit, nothing was written: ${oneLine(cause)}`);
  }
}

/**
 * The connection was lost after COMMIT was sent and before its answer came: the transaction may
 * have committed or not, and only reading the database again tells. Never retried.
 */
export class CommitOutcomeUnknownError extends Error {
  override name = "CommitOutcomeUnknownError";
  constructor(override readonly cause: unknown) {
    super(`the connection to the database was lost at commit, the transaction may or may not have committed: ${oneLine(cause)}`);
  }
}

/** An error's message on one line, for the two classes above. */
function oneLine(error: unknown): string {
  const err = error as { message?: unknown; code?: unknown } | null;
  const message = typeof err?.message === "string" && err.message !== "" ? err.message : String(err?.code ?? error);
  return message.replace(/\s+/g, " ").trim();
}
