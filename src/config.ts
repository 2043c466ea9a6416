import { isIP } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import envPaths from "env-paths";
import { assertValidBrand, DEFAULT_BRAND } from "./keys/token.js";
import { isLoopbackHost } from "./transports/hosts.js";
import { DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_KEY } from "./transports/sessions.js";
import { checkPolicy, DEFAULT_POLICY, type Policy, type ServiceConfig } from "./service/policy.js";
import type { FieldError } from "./service/errors.js";
import { checkName, DAY_MS, SCOPE_PATTERN } from "./service/validation.js";
import { MAX_INSTANT_MS, MAX_INSTANT_TEXT } from "./store/instants.js";

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

export function positiveInteger(label: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
    throw new ConfigError(`${label} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/** A positive number of days whose end, counted from now, is no later than MAX_INSTANT (src/store/instants.ts). */
export function daysFromNow(label: string, raw: string, noneHint: string, now = Date.now()): number {
  const days = positiveInteger(label, raw, 0);
  if (now + days * DAY_MS > MAX_INSTANT_MS) {
    throw new ConfigError(`${label}: ${days} days from now is past ${MAX_INSTANT_TEXT}${noneHint}`);
  }
  return days;
}

function daysOrNone(label: string, raw: string | undefined, fallback: number | null, noneHint: string): number | null {
  if (raw === undefined) return fallback;
  if (raw.trim().toLowerCase() === "none") return null;
  return daysFromNow(label, raw, noneHint);
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

  // The names rule of every free-text field (service/validation.ts), not a copy of it.
  const userErrors: FieldError[] = [];
  const userName = checkName("--user / KEYWARDEN_USER", options.user ?? defaultUserName(), userErrors);
  if (userErrors.length > 0) {
    throw new ConfigError(`--user / KEYWARDEN_USER ${userErrors[0]!.message}, got ${JSON.stringify(userErrors[0]!.value)}`);
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

/** Flags (merged with their environment variables) of `keywarden serve`. */
export interface ServeRawOptions extends RawOptions {
  host?: string;
  port?: string;
  stateless?: boolean;
  allowedOrigins?: string;
  allowedHosts?: string;
  allowQueryKey?: boolean;
  /** commander's negation of --no-auth: false when it was given. */
  auth?: boolean;
  sessionIdleTimeout?: string;
  maxSessions?: string;
  maxSessionsPerKey?: string;
  authFailureLimit?: string;
  authFailureWindow?: string;
  trustProxy?: string;
}

export interface HttpConfig {
  host: string;
  port: number;
  stateless: boolean;
  /** null: loopback origins only. */
  allowedOrigins: string[] | null;
  /** null: derived from the bound address. */
  allowedHosts: string[] | null;
  allowQueryKey: boolean;
  noAuth: boolean;
  sessionIdleTimeoutMs: number;
  maxSessions: number;
  maxSessionsPerKey: number;
  authFailureLimit: number;
  authFailureWindowMs: number;
  trustProxy: boolean | number | string[];
}

export const DEFAULT_HTTP_HOST = "127.0.0.1";
export const DEFAULT_HTTP_PORT = 3000;

function booleanEnv(name: string, env: NodeJS.ProcessEnv): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return false;
  if (["1", "true", "yes"].includes(raw)) return true;
  if (["0", "false", "no"].includes(raw)) return false;
  throw new ConfigError(`${name} must be 1/true/yes or 0/false/no, got ${JSON.stringify(env[name])}`);
}

function list(raw: string | undefined): string[] | null {
  if (raw === undefined) return null;
  return raw
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

const PROXY_NAMES = ["loopback", "linklocal", "uniquelocal"];

/** An address, or address/prefix with a prefix length that fits it (32 bits for IPv4, 128 for IPv6). */
function isAddressOrSubnet(entry: string): boolean {
  const [address, prefix, ...rest] = entry.split("/");
  const family = isIP(address!);
  if (family === 0 || rest.length > 0) return false;
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
}

function hopCount(digits: string, raw: string): number {
  const hops = Number(digits);
  if (!Number.isSafeInteger(hops)) {
    throw new ConfigError(`--trust-proxy / KEYWARDEN_TRUST_PROXY: hop count ${JSON.stringify(raw)} is too large`);
  }
  return hops;
}

/** Turns `keywarden serve` flags and environment into a checked HTTP configuration, or one clear ConfigError. */
export function resolveHttpConfig(options: ServeRawOptions, env: NodeJS.ProcessEnv = process.env): HttpConfig {
  const host = (options.host ?? DEFAULT_HTTP_HOST).trim();
  if (host.length === 0) throw new ConfigError("--host / KEYWARDEN_HOST must not be empty");

  let port = DEFAULT_HTTP_PORT;
  if (options.port !== undefined) {
    const raw = options.port.trim();
    if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) {
      throw new ConfigError(`--port / KEYWARDEN_PORT must be an integer from 0 to 65535, got ${JSON.stringify(options.port)}`);
    }
    port = Number(raw);
  }

  const noAuth = options.auth === false;
  if (noAuth && !isLoopbackHost(host)) {
    throw new ConfigError(`--no-auth is allowed only on a loopback address (127.0.0.1, ::1, localhost), not --host ${host}`);
  }

  let allowedOrigins: string[] | null = null;
  const origins = list(options.allowedOrigins);
  if (origins !== null) {
    if (origins.length === 0) throw new ConfigError("--allowed-origins / KEYWARDEN_ALLOWED_ORIGINS must name at least one origin");
    allowedOrigins = origins.map((origin) => {
      let url: URL | undefined;
      try {
        url = new URL(origin);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== origin.replace(/\/$/, "").toLowerCase()) {
        throw new ConfigError(
          `--allowed-origins / KEYWARDEN_ALLOWED_ORIGINS: ${JSON.stringify(origin)} is not an origin like https://app.example.com (scheme, host, optional port; no path)`,
        );
      }
      return url.origin;
    });
  }

  let allowedHosts: string[] | null = null;
  const hosts = list(options.allowedHosts);
  if (hosts !== null) {
    if (hosts.length === 0) throw new ConfigError("--allowed-hosts / KEYWARDEN_ALLOWED_HOSTS must name at least one host name");
    allowedHosts = hosts.map((name) => {
      const lower = name.toLowerCase();
      let parsed: string | undefined;
      try {
        parsed = new URL(`http://${lower}`).hostname;
      } catch {
        parsed = undefined;
      }
      if (parsed !== lower) {
        throw new ConfigError(`--allowed-hosts / KEYWARDEN_ALLOWED_HOSTS: ${JSON.stringify(name)} is not a host name (no port or scheme; IPv6 in brackets)`);
      }
      return lower;
    });
  }

  const seconds = (label: string, raw: string | undefined, fallback: number) => positiveInteger(label, raw, fallback) * 1000;

  let trustProxy: boolean | number | string[] = false;
  if (options.trustProxy !== undefined) {
    const raw = options.trustProxy.trim().toLowerCase();
    if (/^\d+$/.test(raw)) trustProxy = hopCount(raw, options.trustProxy);
    else if (raw === "true") trustProxy = true;
    else if (raw === "false") trustProxy = false;
    else {
      trustProxy = list(raw) ?? [];
      const bad = trustProxy.find((entry) => !PROXY_NAMES.includes(entry) && !isAddressOrSubnet(entry));
      if (bad !== undefined || trustProxy.length === 0) {
        throw new ConfigError(
          `--trust-proxy / KEYWARDEN_TRUST_PROXY must be a hop count, true, or addresses/subnets (or loopback, linklocal, uniquelocal), got ${JSON.stringify(options.trustProxy)}`,
        );
      }
    }
  }

  return {
    host,
    port,
    stateless: options.stateless === true || booleanEnv("KEYWARDEN_STATELESS", env),
    allowedOrigins,
    allowedHosts,
    allowQueryKey: options.allowQueryKey === true || booleanEnv("KEYWARDEN_ALLOW_QUERY_KEY", env),
    noAuth,
    sessionIdleTimeoutMs: seconds("--session-idle-timeout / KEYWARDEN_SESSION_IDLE_TIMEOUT", options.sessionIdleTimeout, 1800),
    maxSessions: positiveInteger("--max-sessions / KEYWARDEN_MAX_SESSIONS", options.maxSessions, DEFAULT_MAX_SESSIONS),
    maxSessionsPerKey: positiveInteger("--max-sessions-per-key / KEYWARDEN_MAX_SESSIONS_PER_KEY", options.maxSessionsPerKey, DEFAULT_MAX_SESSIONS_PER_KEY),
    authFailureLimit: positiveInteger("--auth-failure-limit / KEYWARDEN_AUTH_FAILURE_LIMIT", options.authFailureLimit, 30),
    authFailureWindowMs: seconds("--auth-failure-window / KEYWARDEN_AUTH_FAILURE_WINDOW", options.authFailureWindow, 300),
    trustProxy,
  };
}
