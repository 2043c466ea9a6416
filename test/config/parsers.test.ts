import { describe, expect, it } from "vitest";
import { ConfigError, resolveConfig, resolveHttpConfig } from "../../src/config/index.js";
import { parseScopeList } from "../../src/config/parsers.js";
import type { FieldError } from "../../src/service/errors.js";
import { checkName, checkScopes } from "../../src/service/validation.js";

// The configuration has no rule of its own where the service has one: it accepts exactly what the
// service accepts (src/config/parsers.ts).

const SCOPES = ["tools:read", "orders.read", "a-b_c", "Upper", "a::b", "", " x", "x".repeat(64), "x".repeat(65), "é", "admin", "a:b:c", "-a"];
const NAMES = ["alice", " bob ", "", "a".repeat(255), "a".repeat(256), "line\nbreak", "bidi\u202e", "zero\u200bwidth", "ünïcode"];

describe("config parsers share the service's rules", () => {
  it("a scope flag accepts exactly the scopes the service accepts (the list's items trimmed)", () => {
    for (const scope of SCOPES) {
      const errors: FieldError[] = [];
      checkScopes("scopes", [scope.trim()], errors);
      const serviceAccepts = errors.length === 0 && scope.trim() !== "";
      const configAccepts = (() => {
        try {
          parseScopeList("--scopes", scope);
          return true;
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          return false;
        }
      })();
      expect(configAccepts, JSON.stringify(scope)).toBe(serviceAccepts);
    }
    expect(parseScopeList("--scopes", " a , b,a,")).toEqual(["a", "b"]);
  });

  it("--user accepts exactly the names the service accepts, trimmed as the service trims them", () => {
    for (const name of NAMES) {
      const errors: FieldError[] = [];
      const checked = checkName("user_name", name, errors);
      let configured: string | ConfigError;
      try {
        configured = resolveConfig({ user: name, db: ":memory:" }, {}).userName;
      } catch (error) {
        configured = error as ConfigError;
      }
      if (errors.length === 0) expect(configured, JSON.stringify(name)).toBe(checked);
      else expect(configured, JSON.stringify(name)).toBeInstanceOf(ConfigError);
    }
  });

  it("leaves the session limits to the transport's defaults unless given, and checks them when given", () => {
    expect(resolveHttpConfig({}, {})).toMatchObject({ host: "127.0.0.1", port: 3000, maxSessions: undefined, maxSessionsPerKey: undefined });
    expect(resolveHttpConfig({ maxSessions: "7", maxSessionsPerKey: "2" }, {})).toMatchObject({ maxSessions: 7, maxSessionsPerKey: 2 });
    expect(() => resolveHttpConfig({ maxSessions: "0" }, {})).toThrow("--max-sessions / KEYWARDEN_MAX_SESSIONS must be a positive integer, got \"0\"");
    expect(() => resolveHttpConfig({ auth: false, host: "0.0.0.0" }, {})).toThrow(/--no-auth is allowed only on a loopback address/);
    expect(resolveHttpConfig({ auth: false, host: "[::1]" }, {}).noAuth).toBe(true);
  });

  it("--key-watch-interval is in milliseconds, at least 100; key-change notifications are on unless the flag or KEYWARDEN_KEY_NOTIFICATIONS=0 turns them off", () => {
    expect(resolveHttpConfig({}, {})).toMatchObject({ keyWatchIntervalMs: undefined, keyChangeNotifications: true });
    expect(resolveHttpConfig({ keyWatchInterval: "500" }, {}).keyWatchIntervalMs).toBe(500);
    expect(() => resolveHttpConfig({ keyWatchInterval: "2" }, {})).toThrow(
      '--key-watch-interval / KEYWARDEN_KEY_WATCH_INTERVAL is in milliseconds, at least 100, got "2"',
    );
    expect(() => resolveHttpConfig({ keyWatchInterval: "2s" }, {})).toThrow(/must be a positive integer, got "2s"/);
    expect(resolveHttpConfig({ keyNotifications: false }, {}).keyChangeNotifications).toBe(false);
    expect(resolveHttpConfig({ keyNotifications: false }, { KEYWARDEN_KEY_NOTIFICATIONS: "1" }).keyChangeNotifications).toBe(false);
    expect(resolveHttpConfig({ keyNotifications: true }, { KEYWARDEN_KEY_NOTIFICATIONS: "0" }).keyChangeNotifications).toBe(false);
    expect(resolveHttpConfig({ keyNotifications: true }, { KEYWARDEN_KEY_NOTIFICATIONS: "" }).keyChangeNotifications).toBe(true);
    expect(() => resolveHttpConfig({}, { KEYWARDEN_KEY_NOTIFICATIONS: "off" })).toThrow('KEYWARDEN_KEY_NOTIFICATIONS must be 1/true/yes or 0/false/no, got "off"');
  });

  it("--verify-cache-entries (0 turns the cache off) and --verify-cache-bytes: defaults, and bad values refused in one line", () => {
    const base = { db: ":memory:", user: "a" };
    expect(resolveConfig(base, {}).verificationCache).toEqual({ maxEntries: 100_000, maxBytes: 50_331_648 });
    expect(resolveConfig({ ...base, verifyCacheEntries: "0" }, {}).verificationCache).toBe(false);
    expect(resolveConfig({ ...base, verifyCacheEntries: " 500 ", verifyCacheBytes: "1048576" }, {}).verificationCache).toEqual({ maxEntries: 500, maxBytes: 1_048_576 });
    expect(() => resolveConfig({ ...base, verifyCacheEntries: "-1" }, {})).toThrow(
      '--verify-cache-entries / KEYWARDEN_VERIFY_CACHE_ENTRIES must be a whole number, 0 or more, got "-1"',
    );
    expect(() => resolveConfig({ ...base, verifyCacheEntries: "16777217" }, {})).toThrow("must be at most 16777216");
    expect(() => resolveConfig({ ...base, verifyCacheBytes: "0" }, {})).toThrow(
      '--verify-cache-bytes / KEYWARDEN_VERIFY_CACHE_BYTES must be a positive integer, got "0"',
    );
    expect(() => resolveConfig({ ...base, verifyCacheBytes: "32MiB" }, {})).toThrow(ConfigError);
  });

  it("reads KEYWARDEN_ADMIN with the same on/off parser as the other switches", () => {
    expect(resolveConfig({ db: ":memory:", user: "a" }, { KEYWARDEN_ADMIN: "yes" }).isAdmin).toBe(true);
    expect(resolveConfig({ db: ":memory:", user: "a" }, { KEYWARDEN_ADMIN: "0" }).isAdmin).toBe(false);
    expect(resolveConfig({ db: ":memory:", user: "a", admin: true }, { KEYWARDEN_ADMIN: "" }).isAdmin).toBe(true);
    expect(() => resolveConfig({ db: ":memory:", user: "a" }, { KEYWARDEN_ADMIN: "maybe" })).toThrow('KEYWARDEN_ADMIN must be 1/true/yes or 0/false/no, got "maybe"');
  });
});
