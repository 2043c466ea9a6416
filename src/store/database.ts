// What the configuration needs to know of databases without loading a driver: which engine a --db
// value names, how it may be shown (every log line and error message that names a database shows
// it through redactDatabaseUrl, so that a password in a URL never leaves), the pool's defaults.

/** Connections in a PostgreSQL store's pool, per process (--pg-pool-size). */
export const DEFAULT_PG_POOL_SIZE = 10;
/** statement_timeout of a PostgreSQL store's connections, in milliseconds (--pg-statement-timeout). */
export const DEFAULT_PG_STATEMENT_TIMEOUT_MS = 5000;

/** `postgres://…` and `postgresql://…` (any case) name a PostgreSQL database; anything else is a SQLite path. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(db);
}

const MASK = "***";

/**
 * `db` as it may be logged: a URL's password (the user info after the first `:`, and any
 * `password=` query parameter, which libpq-style URLs allow) replaced by ***; a SQLite path as it
 * is. The user info is taken to run to the last `@`, so that an unescaped `@` or `/` in a password
 * masks more, never less.
 */
export function redactDatabaseUrl(db: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(db);
  if (!scheme) return db;
  let rest = db.slice(scheme[0].length);
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const userInfo = rest.slice(0, at);
    const colon = userInfo.indexOf(":");
    if (colon >= 0) rest = `${userInfo.slice(0, colon)}:${MASK}${rest.slice(at)}`;
  }
  rest = rest.replace(/([?&]password=)[^&#]*/gi, `$1${MASK}`);
  return scheme[0] + rest;
}
