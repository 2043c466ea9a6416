import { isIP } from "node:net";
import { isLoopbackHost } from "../net/hosts.js";
import { DEFAULT_AUTH_FAILURE_LIMIT, DEFAULT_AUTH_FAILURE_WINDOW_MS, DEFAULT_SESSION_IDLE_TIMEOUT_MS } from "../transports/http/defaults.js";
import type { RawOptions } from "./app.js";
import { booleanEnv, ConfigError, parseList, positiveInteger } from "./parsers.js";

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
  keyWatchInterval?: string;
  /** commander's negation of --no-key-notifications: false when it was given. */
  keyNotifications?: boolean;
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
  /** undefined: the transport's default (src/transports/http/sessions.ts), which `--help` and the README state. */
  maxSessions: number | undefined;
  maxSessionsPerKey: number | undefined;
  authFailureLimit: number;
  authFailureWindowMs: number;
  trustProxy: boolean | number | string[];
  /** undefined: the transport's default (2000 ms, src/transports/http/sessions.ts). */
  keyWatchIntervalMs: number | undefined;
  /** Sessions listen for the store's key-change notifications (PostgreSQL), besides the periodic watch. */
  keyChangeNotifications: boolean;
}

export const DEFAULT_HTTP_HOST = "127.0.0.1";
export const DEFAULT_HTTP_PORT = 3000;

const optionalPositiveInteger = (label: string, raw: string | undefined): number | undefined =>
  raw === undefined ? undefined : positiveInteger(label, raw, 0);

/** Below this, the periodic key watch would be a steady load on the store (and "2" was likely meant as seconds). */
export const MIN_KEY_WATCH_INTERVAL_MS = 100;

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
  const origins = parseList(options.allowedOrigins);
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
  const hosts = parseList(options.allowedHosts);
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
      trustProxy = parseList(raw) ?? [];
      const bad = trustProxy.find((entry) => !PROXY_NAMES.includes(entry) && !isAddressOrSubnet(entry));
      if (bad !== undefined || trustProxy.length === 0) {
        throw new ConfigError(
          `--trust-proxy / KEYWARDEN_TRUST_PROXY must be a hop count, true, or addresses/subnets (or loopback, linklocal, uniquelocal), got ${JSON.stringify(options.trustProxy)}`,
        );
      }
    }
  }

  const keyWatchIntervalMs = optionalPositiveInteger("--key-watch-interval / KEYWARDEN_KEY_WATCH_INTERVAL", options.keyWatchInterval);
  if (keyWatchIntervalMs !== undefined && keyWatchIntervalMs < MIN_KEY_WATCH_INTERVAL_MS) {
    throw new ConfigError(
      `--key-watch-interval / KEYWARDEN_KEY_WATCH_INTERVAL is in milliseconds, at least ${MIN_KEY_WATCH_INTERVAL_MS}, got ${JSON.stringify(options.keyWatchInterval)}`,
    );
  }
  // On unless turned off by the flag or by KEYWARDEN_KEY_NOTIFICATIONS=0 (the flag wins: it only turns off).
  const notificationsEnv = env.KEYWARDEN_KEY_NOTIFICATIONS?.trim() ? booleanEnv("KEYWARDEN_KEY_NOTIFICATIONS", env) : true;

  return {
    host,
    port,
    stateless: options.stateless === true || booleanEnv("KEYWARDEN_STATELESS", env),
    allowedOrigins,
    allowedHosts,
    allowQueryKey: options.allowQueryKey === true || booleanEnv("KEYWARDEN_ALLOW_QUERY_KEY", env),
    noAuth,
    sessionIdleTimeoutMs: seconds("--session-idle-timeout / KEYWARDEN_SESSION_IDLE_TIMEOUT", options.sessionIdleTimeout, DEFAULT_SESSION_IDLE_TIMEOUT_MS / 1000),
    maxSessions: optionalPositiveInteger("--max-sessions / KEYWARDEN_MAX_SESSIONS", options.maxSessions),
    maxSessionsPerKey: optionalPositiveInteger("--max-sessions-per-key / KEYWARDEN_MAX_SESSIONS_PER_KEY", options.maxSessionsPerKey),
    authFailureLimit: positiveInteger("--auth-failure-limit / KEYWARDEN_AUTH_FAILURE_LIMIT", options.authFailureLimit, DEFAULT_AUTH_FAILURE_LIMIT),
    authFailureWindowMs: seconds("--auth-failure-window / KEYWARDEN_AUTH_FAILURE_WINDOW", options.authFailureWindow, DEFAULT_AUTH_FAILURE_WINDOW_MS / 1000),
    trustProxy,
    keyWatchIntervalMs,
    keyChangeNotifications: options.keyNotifications !== false && notificationsEnv,
  };
}
