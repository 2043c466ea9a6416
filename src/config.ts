import { userInfo } from "node:os";
import { join } from "node:path";
import envPaths from "env-paths";
import { assertValidBrand, DEFAULT_BRAND } from "./keys/token.js";
import { checkPolicy, DEFAULT_POLICY, type Policy, type ServiceConfig } from "./service/policy.js";
import { SCOPE_PATTERN } from "./service/validation.js";

/** A flag or environment value that cannot be used; the message is one line for the operator. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** What flags (already merged with their environment variables by commander) hand to the composition root. */
export interface RawOptions {
  db?: string;
  user?: string;
  keyBrand?: string;
  maxActiveKeys?: string;
  defaultExpiryDays?: string;
  maxExpiryDays?: string;
  defaultScopes?: string;
  logLevel?: string;
  admin?: boolean;
}

export interface AppConfig {
  databasePath: string;
  userName: string;
  isAdmin: boolean;
  pepper: string | undefined;
  logLevel: string;
  service: ServiceConfig;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

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

function positiveInteger(label: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
    throw new ConfigError(`${label} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function daysOrNone(label: string, raw: string | undefined, fallback: number | null): number | null {
  if (raw === undefined) return fallback;
  if (raw.trim().toLowerCase() === "none") return null;
  return positiveInteger(label, raw, 0);
}

/** Splits "a,b" into scope names and checks each one. */
export function parseScopeList(label: string, raw: string): string[] {
  const scopes = raw.split(",").map((scope) => scope.trim()).filter((scope) => scope.length > 0);
  if (scopes.length === 0) throw new ConfigError(`${label} must name at least one scope`);
  const bad = scopes.find((scope) => !SCOPE_PATTERN.test(scope) || scope.length > 64);
  if (bad !== undefined) throw new ConfigError(`${label}: ${JSON.stringify(bad)} is not a valid scope name`);
  return [...new Set(scopes)];
}

/** Turns merged flag/environment values into a checked configuration, or one clear ConfigError. */
export function resolveConfig(options: RawOptions, env: NodeJS.ProcessEnv = process.env): AppConfig {
  const policy: Policy = {
    maxActiveKeysPerUser: positiveInteger("--max-active-keys / KEYWARDEN_MAX_ACTIVE_KEYS", options.maxActiveKeys, DEFAULT_POLICY.maxActiveKeysPerUser),
    defaultExpiryDays: daysOrNone("--default-expiry-days / KEYWARDEN_DEFAULT_EXPIRY_DAYS", options.defaultExpiryDays, DEFAULT_POLICY.defaultExpiryDays),
    maxExpiryDays: daysOrNone("--max-expiry-days / KEYWARDEN_MAX_EXPIRY_DAYS", options.maxExpiryDays, DEFAULT_POLICY.maxExpiryDays),
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

  const userName = (options.user ?? defaultUserName()).trim();
  if (userName.length === 0 || userName.length > 255 || /[\u0000-\u001f\u007f]/.test(userName)) {
    throw new ConfigError("--user / KEYWARDEN_USER must be 1-255 characters without control characters");
  }

  const logLevel = (options.logLevel ?? "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`--log-level / KEYWARDEN_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(options.logLevel)}`);
  }

  const pepper = env.KEYWARDEN_PEPPER;
  if (pepper !== undefined && pepper.length < 16) {
    throw new ConfigError("KEYWARDEN_PEPPER must be at least 16 characters (or unset)");
  }

  const adminEnv = env.KEYWARDEN_ADMIN?.trim().toLowerCase();
  if (adminEnv !== undefined && adminEnv !== "" && !["1", "true", "yes", "0", "false", "no"].includes(adminEnv)) {
    throw new ConfigError(`KEYWARDEN_ADMIN must be 1/true/yes or 0/false/no, got ${JSON.stringify(env.KEYWARDEN_ADMIN)}`);
  }
  const isAdmin = options.admin === true || ["1", "true", "yes"].includes(adminEnv ?? "");

  const databasePath = options.db ?? defaultDatabasePath();
  if (databasePath.trim().length === 0) throw new ConfigError("--db / KEYWARDEN_DB must not be empty");

  return {
    databasePath,
    userName,
    isAdmin,
    pepper: pepper || undefined,
    logLevel,
    service: { policy, keyBrand },
  };
}
