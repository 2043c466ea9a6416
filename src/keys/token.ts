import { crc32 } from "node:zlib";
import { encodeBase62Fixed, randomBase62 } from "./base62.js";

/** Public id: the lookup part of the token, 12 base62 characters (about 71 bits). */
export const PUBLIC_ID_LENGTH = 12;
/** Secret: 32 base62 characters, about 190 bits from the CSPRNG. */
export const SECRET_LENGTH = 32;
/** 62^6 > 2^32, so six base62 digits hold any CRC32. */
export const CHECKSUM_LENGTH = 6;
export const DEFAULT_BRAND = "kw";
export const BRAND_PATTERN = /^[a-z0-9]{1,16}$/;

const TOKEN_PATTERN = /^([a-z0-9]{1,16})_([0-9A-Za-z]{12})_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$/;

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
  if (typeof token !== "string" || token.length > 16 + 2 + PUBLIC_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH) {
    return null;
  }
  const match = TOKEN_PATTERN.exec(token);
  if (!match) return null;
  const [, brand, publicId, , checksum] = match as unknown as [string, string, string, string, string];
  if (expectedBrand !== undefined && brand !== expectedBrand) return null;
  if (checksumOf(token.slice(0, token.length - CHECKSUM_LENGTH)) !== checksum) return null;
  return { brand, publicId, keyPrefix: `${brand}_${publicId}` };
}

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

