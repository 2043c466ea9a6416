import { userInfo } from "node:os";
import { join } from "node:path";
import envPaths from "env-paths";
import { pepperProblem } from "../keys/hash.js";
import { assertValidBrand, DEFAULT_BRAND } from "../keys/token.js";
import { checkPolicy, DEFAULT_POLICY, type Policy, type ServiceConfig } from "../service/policy.js";
import { DEFAULT_PG_POOL_SIZE, DEFAULT_PG_STATEMENT_TIMEOUT_MS, isPostgresUrl, redactDatabaseUrl } from "../store/database.js";
import {
  DEFAULT_VERIFY_CACHE_BYTES,
  DEFAULT_VERIFY_CACHE_ENTRIES,
  MAX_VERIFY_CACHE_ENTRIES,
} from "../service/verification-cache.js";
import { booleanEnv, ConfigError, daysOrNone, nonNegativeInteger, parseName, parseScopeList, positiveInteger } from "./parsers.js";

/** What flags (already merged with their environment variables by commander) hand to the composition root. */
export interface RawOptions {
  db?: string;
  pgPoolSize?: string;
  pgStatementTimeout?: string;
  user?: string;
  keyBrand?: string;
  maxActiveKeys?: string;
  defaultExpiryDays?: string;
  maxExpiryDays?: string;
  defaultScopes?: string;
  logLevel?: string;
  admin?: boolean;
  verifyCacheEntries?: string;
  verifyCacheBytes?: string;
}

/** Where the store is: a SQLite file (or ":memory:"), or a PostgreSQL database (README, Configuration). */
export type DatabaseConfig =
  | { engine: "sqlite"; path: string }
  | { engine: "postgres"; url: string; poolSize: number; statementTimeoutMs: number };

export interface AppConfig {
  database: DatabaseConfig;
  /** The database as logs and messages name it: a URL without its password (redactDatabaseUrl). */
  databaseLabel: string;
  userName: string;
  isAdmin: boolean;
  pepper: string | undefined;
  logLevel: string;
  service: ServiceConfig;
  /** The verification cache's bounds (README, "Verification cache"); false: off (--verify-cache-entries 0). */
  verificationCache: { maxEntries: number; maxBytes: number } | false;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** The largest --pg-pool-size: more connections than any PostgreSQL serves (max_connections is 100 by default). */
export const MAX_PG_POOL_SIZE = 1000;

export function defaultDatabasePath(): string {
  return join(envPaths("keywarden", { suffix: "" }).data, "keywarden.db");
}

export function defaultUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return "operator";
  }
}

/** Turns merged flag/environment values into a checked configuration, or one clear ConfigError. */
/** The log level without --log-level / KEYWARDEN_LOG_LEVEL. */
export const DEFAULT_LOG_LEVEL = "info";

export function resolveConfig(options: RawOptions, env: NodeJS.ProcessEnv = process.env): AppConfig {
  const policy: Policy = {
    maxActiveKeysPerUser: positiveInteger("--max-active-keys / KEYWARDEN_MAX_ACTIVE_KEYS", options.maxActiveKeys, DEFAULT_POLICY.maxActiveKeysPerUser),
    defaultExpiryDays: daysOrNone(
      "--default-expiry-days / KEYWARDEN_DEFAULT_EXPIRY_DAYS",
      options.defaultExpiryDays,
      DEFAULT_POLICY.defaultExpiryDays,
      "; none: keys without expires_at never expire",
    ),
    maxExpiryDays: daysOrNone("--max-expiry-days / KEYWARDEN_MAX_EXPIRY_DAYS", options.maxExpiryDays, DEFAULT_POLICY.maxExpiryDays, "; none: no limit"),
    defaultScopes:
      options.defaultScopes === undefined
        ? DEFAULT_POLICY.defaultScopes
        : parseScopeList("--default-scopes / KEYWARDEN_DEFAULT_SCOPES", options.defaultScopes),
    allowMintingWithKeys: DEFAULT_POLICY.allowMintingWithKeys,
  };
  // Without an explicit maximum, "no default expiry" implies no maximum either.
  if (policy.defaultExpiryDays === null && options.maxExpiryDays === undefined) policy.maxExpiryDays = null;
  try {
    checkPolicy(policy);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }

  const keyBrand = options.keyBrand ?? DEFAULT_BRAND;
  try {
    assertValidBrand(keyBrand);
  } catch (error) {
    throw new ConfigError(`--key-brand / KEYWARDEN_KEY_BRAND: ${(error as Error).message}`);
  }

  const userName = parseName("--user / KEYWARDEN_USER", options.user ?? defaultUserName());

  const logLevel = (options.logLevel ?? DEFAULT_LOG_LEVEL).toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`--log-level / KEYWARDEN_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(options.logLevel)}`);
  }

  const pepper = env.KEYWARDEN_PEPPER;
  const badPepper = pepper === undefined ? null : pepperProblem(pepper);
  if (badPepper !== null) throw new ConfigError(`KEYWARDEN_PEPPER ${badPepper} (or unset)`);

  const isAdmin = booleanEnv("KEYWARDEN_ADMIN", env) || options.admin === true;

  const db = options.db ?? defaultDatabasePath();
  if (db.trim().length === 0) throw new ConfigError("--db / KEYWARDEN_DB must not be empty");
  // postgres.js builds every slot of its pool up front: a million is gigabytes before any
  // connection; no PostgreSQL serves more than a few thousand connections anyway.
  const poolSize = positiveInteger("--pg-pool-size / KEYWARDEN_PG_POOL_SIZE", options.pgPoolSize, DEFAULT_PG_POOL_SIZE, MAX_PG_POOL_SIZE);
  // PostgreSQL's statement_timeout is a 32-bit count of milliseconds.
  const statementTimeoutMs = positiveInteger(
    "--pg-statement-timeout / KEYWARDEN_PG_STATEMENT_TIMEOUT",
    options.pgStatementTimeout,
    DEFAULT_PG_STATEMENT_TIMEOUT_MS,
    2_147_483_647,
  );
  // postgres:// and postgresql:// name PostgreSQL; anything else is a SQLite path, as before.
  const database: DatabaseConfig = isPostgresUrl(db) ? { engine: "postgres", url: db, poolSize, statementTimeoutMs } : { engine: "sqlite", path: db };

  const maxEntries = nonNegativeInteger(
    "--verify-cache-entries / KEYWARDEN_VERIFY_CACHE_ENTRIES",
    options.verifyCacheEntries,
    DEFAULT_VERIFY_CACHE_ENTRIES,
    MAX_VERIFY_CACHE_ENTRIES,
  );
  const maxBytes = positiveInteger("--verify-cache-bytes / KEYWARDEN_VERIFY_CACHE_BYTES", options.verifyCacheBytes, DEFAULT_VERIFY_CACHE_BYTES);

  return {
    database,
    databaseLabel: redactDatabaseUrl(db),
    verificationCache: maxEntries === 0 ? false : { maxEntries, maxBytes },
    userName,
    isAdmin,
    pepper: pepper || undefined,
    logLevel,
    service: { policy, keyBrand },
  };
}
