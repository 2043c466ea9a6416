// The parsers of flag and environment values. Every rule the service also has is the service's own
// (service/validation.ts for names and scopes, store/instants.ts for the latest instant): a flag
// can never accept what a tool call would refuse, or the other way round.
import type { FieldError } from "../service/errors.js";
import { checkName, checkScopes, DAY_MS } from "../service/validation.js";
import { MAX_INSTANT_MS, MAX_INSTANT_TEXT } from "../store/instants.js";

/** A flag or environment value that cannot be used; the message is one line for the operator. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export function positiveInteger(label: string, raw: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
    throw new ConfigError(`${label} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  if (Number(raw) > max) throw new ConfigError(`${label} must be at most ${max}, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** positiveInteger that also takes 0 (a bound of 0 turns something off). */
export function nonNegativeInteger(label: string, raw: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined) return fallback;
  if (/^\s*0+\s*$/.test(raw)) return 0;
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(Number(raw))) {
    throw new ConfigError(`${label} must be a whole number, 0 or more, got ${JSON.stringify(raw)}`);
  }
  return positiveInteger(label, raw, fallback, max);
}

/** A positive number of days whose end, counted from now, is no later than MAX_INSTANT (src/store/instants.ts). */
export function daysFromNow(label: string, raw: string, noneHint: string, now = Date.now()): number {
  const days = positiveInteger(label, raw, 0);
  if (now + days * DAY_MS > MAX_INSTANT_MS) {
    throw new ConfigError(`${label}: ${days} days from now is past ${MAX_INSTANT_TEXT}${noneHint}`);
  }
  return days;
}

/** daysFromNow, or null for "none"; the fallback when unset. */
export function daysOrNone(label: string, raw: string | undefined, fallback: number | null, noneHint: string): number | null {
  if (raw === undefined) return fallback;
  if (raw.trim().toLowerCase() === "none") return null;
  return daysFromNow(label, raw, noneHint);
}

/** "a, b," → ["a", "b"]; null when unset. */
export function parseList(raw: string | undefined): string[] | null {
  if (raw === undefined) return null;
  return raw
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** Splits "a,b" into scope names, checked by the service's scope rule (checkScopes). */
export function parseScopeList(label: string, raw: string): string[] {
  const scopes = parseList(raw) ?? [];
  if (scopes.length === 0) throw new ConfigError(`${label} must name at least one scope`);
  const errors: FieldError[] = [];
  const checked = checkScopes(label, scopes, errors);
  if (errors.length > 0) {
    throw new ConfigError(`${label}: ${JSON.stringify(errors[0]!.value)} is not a valid scope name: ${errors[0]!.message}`);
  }
  return checked;
}

/** A display name by the service's names rule (checkName), trimmed. */
export function parseName(label: string, raw: string): string {
  const errors: FieldError[] = [];
  const name = checkName(label, raw, errors);
  if (errors.length > 0) throw new ConfigError(`${label} ${errors[0]!.message}, got ${JSON.stringify(errors[0]!.value)}`);
  return name;
}

const TRUE = ["1", "true", "yes"];
const FALSE = ["0", "false", "no"];

/** An on/off environment variable: 1/true/yes or 0/false/no; unset or empty is off. */
export function booleanEnv(name: string, env: NodeJS.ProcessEnv): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return false;
  if (TRUE.includes(raw)) return true;
  if (FALSE.includes(raw)) return false;
  throw new ConfigError(`${name} must be 1/true/yes or 0/false/no, got ${JSON.stringify(env[name])}`);
}
