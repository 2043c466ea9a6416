// The composition root: checked configuration → store → recorders → service. Every command opens
// its App here and closes it when done; nothing else in src/cli/ builds a store or a service.
import { existsSync } from "node:fs";
import { destination, pino, type Logger } from "pino";
import { ConfigError, resolveConfig, type AppConfig, type DatabaseConfig, type RawOptions } from "../config/index.js";
import { BufferedFailureRecorder } from "../service/failure-recorder.js";
import { KeyService } from "../service/service.js";
import { CoalescingUseRecorder } from "../service/use-recorder.js";
import { SqliteKeyStore } from "../store/sqlite.js";
import type { KeyStore } from "../store/types.js";

export interface App {
  config: AppConfig;
  store: KeyStore;
  service: KeyService;
  logger: Logger;
  recorder: CoalescingUseRecorder;
  /** Writes pending last uses and failed authentications, then closes the database. */
  close(): Promise<void>;
}

/** Logs go to stderr, always: stdout is the stdio transport. */
export function createLogger(level: string): Logger {
  return pino({ name: "keywarden", level, base: { pid: process.pid } }, destination({ fd: 2, sync: true }));
}

/**
 * The store --db names: the one place that chooses the engine. `mayCreate: false` for commands
 * that only read or change what is there: a mistyped --db must not leave a new, empty database (or
 * schema) behind and answer as if it were the real one.
 */
export async function openKeyStore(
  database: DatabaseConfig,
  { mayCreate, keyChangeNotifications = true }: { mayCreate: boolean; keyChangeNotifications?: boolean },
): Promise<KeyStore> {
  if (database.engine === "postgres") {
    // Loaded here: a SQLite start does not load the PostgreSQL driver.
    const { PostgresKeyStore } = await import("../store/postgres.js");
    return PostgresKeyStore.open({
      url: database.url,
      poolSize: database.poolSize,
      statementTimeoutMs: database.statementTimeoutMs,
      createSchema: mayCreate,
      keyChangeNotifications,
    });
  }
  if (!mayCreate && database.path !== ":memory:" && !existsSync(database.path)) {
    throw new ConfigError(`no database at ${database.path} (--db / KEYWARDEN_DB): this command creates none; check the path`);
  }
  return SqliteKeyStore.open({ path: database.path });
}

/**
 * `keyChangeNotifications: false` (`serve --no-key-notifications`): the PostgreSQL store never
 * LISTENs, and the verification cache is bypassed there (KeyStore.keyChangeVersion answers null).
 */
export async function openApp(
  options: RawOptions,
  { mayCreate = true, keyChangeNotifications = true }: { mayCreate?: boolean; keyChangeNotifications?: boolean } = {},
): Promise<App> {
  const config = resolveConfig(options);
  const logger = createLogger(config.logLevel);
  const store = await openKeyStore(config.database, { mayCreate, keyChangeNotifications });
  // Last use is written in batches, at most a second late, not with a synchronous write per verify.
  const recorder = new CoalescingUseRecorder(store, { onError: (error) => logger.error({ err: error }, "could not record key use") });
  // Failed authentications likewise: one bounded batch a second, so failures cannot become disk load.
  const failures = new BufferedFailureRecorder(store, { onError: (error) => logger.error({ err: error }, "could not write auth.failed to the audit log") });
  const service = new KeyService({
    store,
    config: config.service,
    pepper: config.pepper,
    useRecorder: recorder,
    failureRecorder: failures,
    verificationCache: config.verificationCache,
  });
  const close = async () => {
    await recorder.close().catch((error: unknown) => logger.error({ err: error }, "could not record key use"));
    await failures.close().catch((error: unknown) => logger.error({ err: error }, "could not write auth.failed to the audit log"));
    await store.close();
  };
  // Keys whose hash cannot be computed here would fail every verification: refuse to start instead.
  const problem = await service
    .unverifiableKeysProblem(`database ${config.databaseLabel}`, "KEYWARDEN_PEPPER", { recordPepper: true })
    .catch(async (error: unknown) => {
      await close();
      throw error;
    });
  if (problem !== null) {
    await close();
    throw new ConfigError(problem);
  }
  return { config, store, service, logger, recorder, close };
}
