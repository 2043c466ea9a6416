import type { KeyStatus } from "./types.js";

/**
 * Instants as keywarden stores and compares them: the UTC form of Date.toISOString(),
 * `YYYY-MM-DDTHH:mm:ss.sssZ`, always 24 characters, for the years 0000-9999 only. Fixed width is
 * what makes text order the order of time, so that SQLite's text comparison (BINARY collation)
 * and JavaScript's string comparison both follow the clock. Past 9999, toISOString() writes
 * `+010000-…`, which sorts before every four-digit year: such a value is never stored (README,
 * Policy: instants run to 9999-12-31T23:59:59Z at most).
 */
export type Instant = string;

/** The latest instant keywarden accepts, as a person writes it. */
export const MAX_INSTANT_TEXT = "9999-12-31T23:59:59Z";
/** The latest instant keywarden accepts, in epoch milliseconds. */
export const MAX_INSTANT_MS = Date.parse(MAX_INSTANT_TEXT);
const MIN_INSTANT_MS = Date.parse("0000-01-01T00:00:00.000Z");

/** Whether `ms` has a canonical form: a whole millisecond in the years 0000 to 9999-12-31T23:59:59Z. */
export function isStorableInstant(ms: number): boolean {
  return Number.isInteger(ms) && ms >= MIN_INSTANT_MS && ms <= MAX_INSTANT_MS;
}

/** The last instant formatted: verification asks for "now" once per call, many calls per millisecond. */
let lastMs = Number.NaN;
let lastInstant: Instant = "";

/** The canonical form of an instant. Callers check user-given instants first; anything else here is a bug. */
export function toInstant(at: Date | number): Instant {
  const ms = typeof at === "number" ? at : at.getTime();
  if (ms === lastMs) return lastInstant;
  if (!isStorableInstant(ms)) throw new RangeError(`instant out of range 0000-01-01T00:00:00Z..${MAX_INSTANT_TEXT}: ${ms}`);
  lastInstant = new Date(ms).toISOString();
  lastMs = ms;
  return lastInstant;
}

/** The lifetime columns of a key that its status depends on. */
export interface KeyLifetime {
  revoked_at: Instant | null;
  expires_at: Instant | null;
}

/**
 * The one definition of a key's status at `now` (README, Tools: status is derived): revoked if
 * revoked_at is set, else expired if expires_at <= now, else active. Plain text comparison of
 * canonical instants: the comparisons keyStatusSql asks of SQL (on the same text in SQLite, on
 * timestamptz in PostgreSQL: both the order of time), so code and SQL cannot disagree.
 */
export function keyStatusAt(key: KeyLifetime, now: Instant): KeyStatus {
  if (key.revoked_at !== null) return "revoked";
  if (key.expires_at !== null && key.expires_at <= now) return "expired";
  return "active";
}

/** Whether the key works at `now`: keyStatusAt(key, now) === "active". */
export function isActiveAt(key: KeyLifetime, now: Instant): boolean {
  return keyStatusAt(key, now) === "active";
}

/** Whether expiry `next` is later than `current`: null is never, the latest of all. */
export function isLaterExpiry(next: Instant | null, current: Instant | null): boolean {
  if (current === null) return false;
  return next === null || next > current;
}

/**
 * keyStatusAt as SQL conditions over api_keys' revoked_at and expires_at, with `now` written as the
 * placeholder each engine binds it by (`@now` in SQLite, `$2` in PostgreSQL): the same comparisons
 * in every engine. SQLite compares the canonical text, PostgreSQL timestamptz values; both are the
 * order of time (see Instant above, and src/store/migrations-postgres/001_initial.sql).
 */
export function keyStatusSql(now: string): Readonly<Record<KeyStatus, string>> {
  return {
    revoked: "revoked_at IS NOT NULL",
    expired: `revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ${now}`,
    active: `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ${now})`,
  };
}

/** keyStatusSql with SQLite's named parameter @now. */
export const KEY_STATUS_SQL: Readonly<Record<KeyStatus, string>> = keyStatusSql("@now");
