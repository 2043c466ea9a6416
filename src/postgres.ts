// `keywarden/postgres`: the KeyStore on PostgreSQL, for a library that verifies against the
// database several keywarden instances share (README, Running several instances). Apart from
// `keywarden` so that a SQLite user never loads the PostgreSQL driver; use it with `keywarden`'s
// KeyService and verifyApiKey.
export {
  DEFAULT_PG_POOL_SIZE,
  DEFAULT_PG_STATEMENT_TIMEOUT_MS,
  PostgresKeyStore,
  type PostgresStoreOptions,
} from "./store/postgres.js";
