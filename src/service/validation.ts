import { isStorableInstant, MAX_INSTANT_TEXT, toInstant, type Instant } from "../store/instants.js";
import type { KeyStatusFilter } from "../store/types.js";
import { echoValue, type FieldError } from "./errors.js";

// --- Free text -------------------------------------------------------------------------------
// One rule for every free-text field on every path (tools, CLI, library): key names,
// descriptions, revocation reasons, project names and user names. Text people cannot see but a
// model reads (bidi controls, invisible characters) would let one user hide instructions in a
// name that an admin's agent later lists, so it is refused; what real names need is kept.

// C0 and C1 control characters, DEL, and the line/paragraph separators that break one-line displays.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// Like names, but a description may span lines: tab, line feed and carriage return are allowed.
const MULTILINE_CONTROL_CHARACTERS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/;
// Explicit embeddings, overrides and isolates (UAX #9, 2.1-2.7): they reorder what a person sees.
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/;
// Characters with no glyph (Unicode Default_Ignorable_Code_Point: zero-width space, word joiner,
// BOM, tags U+E0000-E007F, variation selectors, …) and the interlinear annotation characters.
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\ufff9-\ufffb]/u;
const ZWNJ = 0x200c;
const ZWJ = 0x200d;
// UAX #31, 2.3: ZWNJ between letters (Persian, Indic); ZWJ inside a word or an emoji sequence.
const LETTER_OR_MARK = /[\p{L}\p{M}]/u;
const LETTER = /\p{L}/u;
const EMOJI = /[\p{Extended_Pictographic}\u{1f3fb}-\u{1f3ff}]/u;
// Standardized variation selectors (emoji presentation FE0E/FE0F among them) follow one visible
// character; ideographic ones (U+E0100-E01EF) follow a Han ideograph, Mongolian ones a Mongolian letter.
const VARIATION_SELECTOR = /[\ufe00-\ufe0f]/;
const IDEOGRAPHIC_VARIATION_SELECTOR = /[\u{e0100}-\u{e01ef}]/u;
const MONGOLIAN_VARIATION_SELECTOR = /[\u180b-\u180d\u180f]/;
const HAN = /\p{Script=Han}/u;
const MONGOLIAN = /\p{Script=Mongolian}/u;

const codePointName = (char: string): string => `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
const isLoneSurrogate = (char: string): boolean => char.length === 1 && (char.charCodeAt(0) & 0xf800) === 0xd800;

/** An invisible character a real name needs, in a place it is needed: ZWJ, ZWNJ and variation selectors in context. */
function invisibleAllowed(char: string, before: string | undefined, after: string | undefined): boolean {
  if (before === undefined) return false;
  const visibleBefore = !INVISIBLE.test(before);
  const code = char.codePointAt(0)!;
  if (code === ZWNJ) return visibleBefore && LETTER_OR_MARK.test(before) && after !== undefined && LETTER.test(after);
  if (code === ZWJ) {
    // In an emoji sequence ZWJ often follows U+FE0F (emoji presentation), e.g. U+1F3F3 U+FE0F U+200D U+1F308.
    const joinsFrom = visibleBefore ? LETTER_OR_MARK.test(before) || EMOJI.test(before) : before === "\ufe0f";
    return joinsFrom && after !== undefined && (LETTER.test(after) || EMOJI.test(after));
  }
  if (!visibleBefore) return false;
  if (VARIATION_SELECTOR.test(char)) return true;
  if (IDEOGRAPHIC_VARIATION_SELECTOR.test(char)) return HAN.test(before);
  if (MONGOLIAN_VARIATION_SELECTOR.test(char)) return MONGOLIAN.test(before);
  return false;
}

/**
 * What makes `text` unacceptable as free text, as a message for the caller; null when it is fine.
 * Refused: control characters (but tab and newlines when `multiline`), bidi controls, invisible
 * characters outside the places real names need them, lone surrogates, and U+FFFD, which is what a
 * lone surrogate or invalid UTF-8 becomes once a transport has decoded it.
 */
export function textProblem(text: string, multiline = false): string | null {
  if ((multiline ? MULTILINE_CONTROL_CHARACTERS : CONTROL_CHARACTERS).test(text)) {
    return multiline ? "must not contain control characters other than tab and newlines" : "must not contain control characters";
  }
  const chars = [...text]; // code points; a lone surrogate stays a char of its own
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (isLoneSurrogate(char)) return `must be valid Unicode text: found a lone surrogate (${codePointName(char)})`;
    if (char === "\ufffd") return "must be valid Unicode text: found U+FFFD, the replacement for a lone surrogate or invalid UTF-8";
    if (BIDI_CONTROLS.test(char)) return `must not contain bidirectional control characters: found ${codePointName(char)}`;
    if (INVISIBLE.test(char) && !invisibleAllowed(char, chars[i - 1], chars[i + 1])) {
      return `must not contain invisible characters: found ${codePointName(char)} at character ${i + 1}`;
    }
  }
  return null;
}

// Whitespace at either end is trimmed, but a BOM (which String.prototype.trim also removes) is refused, not hidden.
const EDGE_WHITESPACE = /^[^\S\ufeff]+|[^\S\ufeff]+$/g;

/** The text as an error may show it: what the rule refuses is written out as U+XXXX, so an echo hides nothing. */
export function visibleText(text: string): string {
  return [...text]
    .map((char) =>
      isLoneSurrogate(char) || BIDI_CONTROLS.test(char) || INVISIBLE.test(char) || CONTROL_CHARACTERS.test(char) ? `<${codePointName(char)}>` : char,
    )
    .join("");
}

interface TextOptions {
  maxLength: number;
  multiline?: boolean;
  emptyMessage?: string;
}

/** Trims free text and checks it against the text rule and a length; records one error per field. */
export function checkText(field: string, raw: string, { maxLength, multiline = false, emptyMessage = "must not be empty" }: TextOptions, errors: FieldError[]): string {
  const text = raw.replace(EDGE_WHITESPACE, "");
  if (text.length === 0) {
    errors.push({ key: field, message: emptyMessage, value: echoValue(raw) });
  } else if ([...text].length > maxLength) {
    errors.push({ key: field, message: `must be at most ${maxLength} characters`, value: echoValue(raw) });
  } else {
    const problem = textProblem(text, multiline);
    if (problem !== null) errors.push({ key: field, message: problem, value: echoValue(visibleText(raw)) });
  }
  return text;
}

export const NAME_MAX_LENGTH = 255;

/** A display name (key, project, user) or a revocation reason: trimmed, 1-255 characters, one line, the text rule. */
export function checkName(field: string, raw: string, errors: FieldError[]): string {
  return checkText(field, raw, { maxLength: NAME_MAX_LENGTH }, errors);
}

// RFC 3339 / ISO 8601 date-time with a mandatory offset; seconds and fractions optional.
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Parses an ISO 8601 date-time with offset to epoch milliseconds; null when it is not one or names no real instant. */
export function parseIsoDateTime(value: string): number | null {
  const match = DATE_TIME.exec(value);
  if (!match) return null;
  const [year, month, day, hour, minute, second = 0] = match.slice(1, 7).map((part) => (part === undefined ? undefined : Number(part))) as number[];
  const millis = match[7] ? Number(match[7].slice(0, 3).padEnd(3, "0")) : 0;
  if (month! < 1 || month! > 12 || hour! > 23 || minute! > 59 || second > 59) return null;
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  if (day! < 1 || day! > daysInMonth) return null;
  let offsetMinutes = 0;
  if (!match[8]) {
    const offsetHours = Number(match[10]);
    const offsetMins = Number(match[11]);
    if (offsetHours > 23 || offsetMins > 59) return null;
    offsetMinutes = (match[9] === "-" ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const utc = Date.UTC(year!, month! - 1, day!, hour!, minute!, second, millis);
  // Date.UTC maps years 0-99 to 1900-1999; this format always means the literal year.
  const corrected = year! < 100 ? new Date(utc).setUTCFullYear(year!) : utc;
  return corrected - offsetMinutes * 60_000;
}

export const DAY_MS = 86_400_000;

/** The message for an instant past the latest one keywarden stores (instants.ts). */
export const PAST_MAX_INSTANT = `must be at most ${MAX_INSTANT_TEXT}`;

/**
 * Checks a requested expiry against policy: a real date-time with offset, in the future, at most
 * `maxDays` ahead and at most MAX_INSTANT_TEXT. Returns the canonical UTC form, or undefined after
 * recording the error.
 */
export function checkExpiresAt(
  field: string,
  raw: string,
  now: Date,
  maxDays: number | null,
  errors: FieldError[],
): string | undefined {
  const at = parseIsoDateTime(raw);
  if (at === null) {
    errors.push({ key: field, message: "must be an ISO 8601 date-time with a UTC offset, e.g. 2027-01-31T12:00:00Z", value: echoValue(raw) });
    return undefined;
  }
  if (at <= now.getTime()) {
    errors.push({ key: field, message: "must be in the future", value: echoValue(raw) });
    return undefined;
  }
  if (maxDays !== null && at > now.getTime() + maxDays * DAY_MS) {
    errors.push({ key: field, message: `must be at most ${maxDays} days from now`, value: echoValue(raw) });
    return undefined;
  }
  // Sub-millisecond digits are dropped by the parse: 23:59:59.9995Z is 23:59:59.999Z, still past the bound.
  if (!isStorableInstant(at)) {
    errors.push({ key: field, message: PAST_MAX_INSTANT, value: echoValue(raw) });
    return undefined;
  }
  return toInstant(at);
}

/**
 * `now` plus `ms` as a canonical instant, or undefined after recording on `field` that it would
 * pass MAX_INSTANT_TEXT: every instant computed from a duration (default expiry, --expires-in-days,
 * a rotation's grace) is made here.
 */
export function instantAfter(field: string, now: Date, ms: number, value: unknown, errors: FieldError[]): Instant | undefined {
  const at = now.getTime() + ms;
  if (!isStorableInstant(at)) {
    errors.push({ key: field, message: `would end after ${MAX_INSTANT_TEXT}, the latest instant keywarden stores`, value: echoValue(value) });
    return undefined;
  }
  return toInstant(at);
}

export const SLUG_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const SCOPE_PATTERN = /^[a-z0-9]+(?:[:._-][a-z0-9]+)*$/;
export const SCOPE_MAX_LENGTH = 64;

/** Checks a list of scope names; returns them de-duplicated in their given order. */
export function checkScopes(field: string, scopes: string[], errors: FieldError[]): string[] {
  const bad = scopes.find((scope) => scope.length > SCOPE_MAX_LENGTH || !SCOPE_PATTERN.test(scope));
  if (bad !== undefined) {
    errors.push({ key: field, message: "each scope must be lowercase words joined by : . _ or -, at most 64 characters", value: echoValue(bad) });
  }
  return [...new Set(scopes)];
}

/**
 * The scopes a verification requires: scope names (checkScopes), at most SCOPES_MAX_COUNT. No value
 * is echoed: a caller that mixed up its arguments may have put a token here. The tool and the HTTP
 * endpoint name the field `required_scopes`, the library `requiredScopes`; a library caller in
 * plain JavaScript may pass anything, so a value that is not a list of strings is refused too.
 */
export function checkRequiredScopes(field: string, value: unknown, errors: FieldError[]): string[] {
  if (!Array.isArray(value) || value.some((scope) => typeof scope !== "string")) {
    errors.push({ key: field, message: "must be a list of scope names" });
    return [];
  }
  const found: FieldError[] = [];
  const required = checkScopes(field, value as string[], found);
  if (required.length > SCOPES_MAX_COUNT) found.push({ key: field, message: `must name at most ${SCOPES_MAX_COUNT} scopes` });
  errors.push(...found.map(({ key, message }) => ({ key, message })));
  return required;
}

export const DESCRIPTION_MAX_LENGTH = 1000;

/** A description: null clears it; otherwise trimmed, 1-1000 characters, tab and newlines allowed, the text rule. */
export function checkDescription(field: string, raw: string | null, errors: FieldError[]): string | null {
  if (raw === null) return null;
  return checkText(field, raw, { maxLength: DESCRIPTION_MAX_LENGTH, multiline: true, emptyMessage: "must not be empty; pass null to clear the description" }, errors);
}

/** An integer within [min, max]; `fallback` when absent. */
export function checkInteger(
  field: string,
  raw: number | undefined,
  min: number,
  max: number,
  fallback: number,
  errors: FieldError[],
): number {
  if (raw === undefined) return fallback;
  if (!Number.isInteger(raw) || raw < min || raw > max) {
    errors.push({ key: field, message: `must be an integer from ${min} to ${max}`, value: echoValue(raw) });
    return fallback;
  }
  return raw;
}

export const PAGE_LIMIT_MAX = 100;
export const PAGE_LIMIT_DEFAULT = 50;
/** Rotation grace: at most 30 days. */
export const GRACE_PERIOD_MAX_SECONDS = 30 * 86_400;
export const GRACE_PERIOD_DEFAULT_SECONDS = 0;
export const SCOPES_MAX_COUNT = 50;

/** The longest user agent kept, in last use and in the audit log; the rest of a longer one is cut. */
export const USER_AGENT_MAX_LENGTH = 256;

/** A user agent cut to USER_AGENT_MAX_LENGTH UTF-16 units, never through the middle of a surrogate pair. */
export function capUserAgent(userAgent: string | null): string | null {
  if (userAgent === null || userAgent.length <= USER_AGENT_MAX_LENGTH) return userAgent;
  const highSurrogateLast = (userAgent.charCodeAt(USER_AGENT_MAX_LENGTH - 1) & 0xfc00) === 0xd800;
  return userAgent.slice(0, highSurrogateLast ? USER_AGENT_MAX_LENGTH - 1 : USER_AGENT_MAX_LENGTH);
}

/** The status filters of list_api_keys, in the order the tool's schema names them. */
export const KEY_STATUS_FILTERS = ["active", "revoked", "expired", "all"] as const satisfies readonly KeyStatusFilter[];
