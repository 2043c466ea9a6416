/**
 * Refusing to open a database is a user-facing condition, not a bug: the message is the whole story,
 * one line, naming the database as redactDatabaseUrl (src/store/database.ts) shows it.
 */
export class StoreOpenError extends Error {
  override name = "StoreOpenError";
}
