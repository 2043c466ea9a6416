import { Command, Option } from "commander";
import { DEFAULT_LOG_LEVEL } from "../config/app.js";
import { DEFAULT_BRAND } from "../keys/token.js";
import { DEFAULT_POLICY } from "../service/policy.js";
import { DEFAULT_VERIFY_CACHE_BYTES, DEFAULT_VERIFY_CACHE_ENTRIES, MAX_VERIFY_CACHE_ENTRIES } from "../service/verification-cache.js";
import { DEFAULT_PG_POOL_SIZE, DEFAULT_PG_STATEMENT_TIMEOUT_MS } from "../store/database.js";

/** A day count or none (null), as the policy flags take it. */
const daysOrNone = (days: number | null): string => (days === null ? "none" : String(days));

/** Options every command shares: where the store is, who acts, and the policy. Flags beat environment. */
export function addCommonOptions(command: Command): Command {
  return command
    .addOption(
      new Option("--db <path|url>", 'SQLite database file, ":memory:", or a postgres://… URL (default: keywarden.db in the OS data directory)').env(
        "KEYWARDEN_DB",
      ),
    )
    .addOption(new Option("--pg-pool-size <n>", `PostgreSQL: connections per process (default: ${DEFAULT_PG_POOL_SIZE})`).env("KEYWARDEN_PG_POOL_SIZE"))
    .addOption(
      new Option("--pg-statement-timeout <ms>", `PostgreSQL: statement_timeout of every connection, in milliseconds (default: ${DEFAULT_PG_STATEMENT_TIMEOUT_MS})`).env(
        "KEYWARDEN_PG_STATEMENT_TIMEOUT",
      ),
    )
    .addOption(new Option("--user <name>", "acting user (default: the OS user name); created on first use").env("KEYWARDEN_USER"))
    .addOption(new Option("--key-brand <brand>", `token brand, 1-16 of [a-z0-9] (default: ${DEFAULT_BRAND})`).env("KEYWARDEN_KEY_BRAND"))
    .addOption(new Option("--max-active-keys <n>", `active keys per user (default: ${DEFAULT_POLICY.maxActiveKeysPerUser})`).env("KEYWARDEN_MAX_ACTIVE_KEYS"))
    .addOption(new Option("--default-expiry-days <n|none>", `expiry of a key created without expires_at (default: ${daysOrNone(DEFAULT_POLICY.defaultExpiryDays)})`).env("KEYWARDEN_DEFAULT_EXPIRY_DAYS"))
    .addOption(new Option("--max-expiry-days <n|none>", `latest allowed expires_at, in days (default: ${daysOrNone(DEFAULT_POLICY.maxExpiryDays)})`).env("KEYWARDEN_MAX_EXPIRY_DAYS"))
    .addOption(new Option("--default-scopes <a,b>", `scopes of user-level keys (default: ${DEFAULT_POLICY.defaultScopes.join(",")})`).env("KEYWARDEN_DEFAULT_SCOPES"))
    .addOption(new Option("--log-level <level>", `fatal, error, warn, info, debug, trace or silent (default: ${DEFAULT_LOG_LEVEL})`).env("KEYWARDEN_LOG_LEVEL"))
    .addOption(
      new Option("--verify-cache-entries <n>", `verification cache: keys held at most, up to ${MAX_VERIFY_CACHE_ENTRIES}; 0 turns it off (default: ${DEFAULT_VERIFY_CACHE_ENTRIES})`).env("KEYWARDEN_VERIFY_CACHE_ENTRIES"),
    )
    .addOption(
      new Option("--verify-cache-bytes <n>", `verification cache: estimated bytes held at most (default: ${DEFAULT_VERIFY_CACHE_BYTES}, ${DEFAULT_VERIFY_CACHE_BYTES / 1024 / 1024} MiB)`).env("KEYWARDEN_VERIFY_CACHE_BYTES"),
    );
}

/**
 * A subcommand's options merged with its parents' (`keywarden --db x admin list-projects` and
 * `keywarden admin list-projects --db x` both work). A value given on the command line at any
 * level beats one from the environment at any level: flags beat environment.
 */
export function effectiveOptions<T>(command: Command): T {
  const chain: Command[] = [];
  for (let current: Command | null = command; current; current = current.parent) chain.push(current);
  const merged: Record<string, unknown> = {};
  const fromCli = new Set<string>();
  for (const level of chain) {
    for (const [key, value] of Object.entries(level.opts())) {
      if (value === undefined) continue;
      const cli = level.getOptionValueSource(key) === "cli";
      if (!(key in merged) || (cli && !fromCli.has(key))) {
        merged[key] = value;
        if (cli) fromCli.add(key);
      }
    }
  }
  return merged as T;
}

/** Whether the option was given as a flag on the command line, at any level (not from the environment). */
export function givenAsFlag(command: Command, key: string): boolean {
  for (let current: Command | null = command; current; current = current.parent) {
    if (current.getOptionValueSource(key) === "cli") return true;
  }
  return false;
}
