import { randomFillSync } from "node:crypto";

export const BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** The largest multiple of 62 below 256: bytes at or above it are dropped so every character is equally likely. */
const UNBIASED_BYTE_LIMIT = 248;

/** `length` characters drawn uniformly from the base62 alphabet with the OS CSPRNG. */
export function randomBase62(length: number): string {
  let out = "";
  const buffer = Buffer.allocUnsafe(Math.max(16, Math.ceil(length * 1.1)));
  while (out.length < length) {
    randomFillSync(buffer);
    for (let i = 0; i < buffer.length && out.length < length; i++) {
      const byte = buffer[i]!;
      if (byte < UNBIASED_BYTE_LIMIT) out += BASE62_ALPHABET[byte % 62];
    }
  }
  return out;
}

/** A non-negative integer as exactly `width` base62 digits, most significant first. */
export function encodeBase62Fixed(value: number, width: number): string {
  let rest = value;
  let out = "";
  for (let i = 0; i < width; i++) {
    out = BASE62_ALPHABET[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  if (rest !== 0) throw new RangeError(`${value} does not fit in ${width} base62 digits`);
  return out;
}
