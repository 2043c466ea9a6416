import { crc32 } from "node:zlib";
import { BASE62_ALPHABET, encodeBase62Fixed, randomBase62 } from "./base62.js";

/** Public id: the lookup part of the token, 12 base62 characters (about 71 bits). */
export const PUBLIC_ID_LENGTH = 12;
/** Secret: 32 base62 characters, about 190 bits from the CSPRNG. */
export const SECRET_LENGTH = 32;
/** 62^6 > 2^32, so six base62 digits hold any CRC32. */
export const CHECKSUM_LENGTH = 6;
export const DEFAULT_BRAND = "kw";
export const BRAND_PATTERN = /^[a-z0-9]{1,16}$/;

const BASE62_CODES = Array.from(BASE62_ALPHABET, (digit) => digit.charCodeAt(0));

/** The token's format; parseToken checks the same by hand (test/keys/token.test.ts holds them equal). */
export const TOKEN_PATTERN = /^([a-z0-9]{1,16})_([0-9A-Za-z]{12})_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$/;

export interface GeneratedToken {
  /** The whole token: shown once, never stored. */
  token: string;
  /** `brand_publicId`: stored and displayed. */
  keyPrefix: string;
}

export interface ParsedToken {
  brand: string;
  publicId: string;
  keyPrefix: string;
}

export function assertValidBrand(brand: string): void {
  if (!BRAND_PATTERN.test(brand)) {
    throw new RangeError(`key brand must be 1-16 characters of [a-z0-9], got ${JSON.stringify(brand)}`);
  }
}

export function checksumOf(body: string): string {
  return encodeBase62Fixed(crc32(body), CHECKSUM_LENGTH);
}

/** checksumOf(body) === checksum, digit by digit from the least significant, building no string (verification's hot path). */
function checksumMatches(body: string, checksum: string): boolean {
  let rest = crc32(body);
  for (let i = CHECKSUM_LENGTH - 1; i >= 0; i--) {
    if (checksum.charCodeAt(i) !== BASE62_CODES[rest % 62]) return false;
    rest = Math.floor(rest / 62);
  }
  return true;
}

export function generateToken(brand: string = DEFAULT_BRAND): GeneratedToken {
  assertValidBrand(brand);
  const keyPrefix = `${brand}_${randomBase62(PUBLIC_ID_LENGTH)}`;
  const body = `${keyPrefix}_${randomBase62(SECRET_LENGTH)}`;
  return { token: body + checksumOf(body), keyPrefix };
}

/**
 * Parses a token and checks its checksum without any I/O, so a mistyped or invented token is
 * rejected before it costs a database read. Returns null for anything that is not a well-formed
 * token of `expectedBrand` (when given).
 */
export function parseToken(token: unknown, expectedBrand?: string): ParsedToken | null {
  if (typeof token !== "string") return null;
  // Checked character by character rather than with TOKEN_PATTERN: this runs on every
  // verification, and the pattern's captures cost more than the rest of the parse.
  const brandLength = token.length - (2 + PUBLIC_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH);
  if (brandLength < 1 || brandLength > 16) return null;
  for (let i = 0; i < brandLength; i++) if (!isBrandCode(token.charCodeAt(i))) return null;
  const idStart = brandLength + 1;
  const secretStart = idStart + PUBLIC_ID_LENGTH + 1;
  if (token.charCodeAt(brandLength) !== UNDERSCORE || token.charCodeAt(secretStart - 1) !== UNDERSCORE) return null;
  for (let i = idStart; i < secretStart - 1; i++) if (!isBase62Code(token.charCodeAt(i))) return null;
  for (let i = secretStart; i < token.length; i++) if (!isBase62Code(token.charCodeAt(i))) return null;
  const brand = token.slice(0, brandLength);
  if (expectedBrand !== undefined && brand !== expectedBrand) return null;
  const checksumStart = token.length - CHECKSUM_LENGTH;
  if (!checksumMatches(token.slice(0, checksumStart), token.slice(checksumStart))) return null;
  return { brand, publicId: token.slice(idStart, secretStart - 1), keyPrefix: token.slice(0, secretStart - 1) };
}

const UNDERSCORE = 0x5f;
/** [a-z0-9] */
const isBrandCode = (code: number): boolean => (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39);
/** [0-9A-Za-z] */
const isBase62Code = (code: number): boolean => (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || (code >= 0x30 && code <= 0x39);

// A token anywhere in a text (brand_publicid_ then anything base62: a whole, mistyped or cut-off
// token), or a bare run as long as a secret (someone pasted only the part after the prefix).
const TOKEN_IN_TEXT = new RegExp(`([a-z0-9]{1,16}_[0-9A-Za-z]{${PUBLIC_ID_LENGTH}})_[0-9A-Za-z]+|[0-9A-Za-z]{${SECRET_LENGTH},}`, "g");
export const REDACTED = "[redacted]";

/** The text with every token's secret part replaced by REDACTED; the public key_prefix stays, it names the key. */
export function redactTokenSecrets(text: string): string {
  return text.replace(TOKEN_IN_TEXT, (_match, keyPrefix: string | undefined) => (keyPrefix === undefined ? REDACTED : `${keyPrefix}_${REDACTED}`));
}

// Whole tokens in a text: brand, public id, then the secret and checksum run together.
const WHOLE_TOKEN_IN_TEXT = new RegExp(`[a-z0-9]{1,16}_[0-9A-Za-z]{${PUBLIC_ID_LENGTH}}_[0-9A-Za-z]{${SECRET_LENGTH + CHECKSUM_LENGTH}}`, "g");

/** Whether the text holds a whole, well-formed token (its checksum right): a key's full value. */
export function containsToken(text: string): boolean {
  for (const match of text.matchAll(WHOLE_TOKEN_IN_TEXT)) if (parseToken(match[0]) !== null) return true;
  return false;
}

