import { timingSafeEqual } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

/** Recorded beside every stored hash so a later algorithm can take over without invalidating old keys. */
export type HashAlgorithm = "sha256" | "hmac-sha256";

/** hmac-sha256 is keyed by KEYWARDEN_PEPPER: without it, such a hash cannot be computed. */
export const PEPPERED_ALGORITHM: HashAlgorithm = "hmac-sha256";

const encoder = new TextEncoder();

export interface TokenHasher {
  /** The algorithm new keys are hashed with. */
  readonly algorithm: HashAlgorithm;
  /** Whether `hash` can compute this algorithm here (a row may name one this build lacks, or need an unset pepper). */
  canHash(algorithm: string): algorithm is HashAlgorithm;
  /** Hashes a token with the given algorithm (a stored row may use an older one); check canHash first. */
  hash(token: string, algorithm?: HashAlgorithm): Uint8Array;
  /** HMAC-SHA-256 of a fixed text keyed by the pepper, in hex: tells two peppers apart, reveals neither. Null without one. */
  readonly pepperFingerprint: string | null;
}

const PEPPER_FINGERPRINT_TEXT = encoder.encode("keywarden pepper fingerprint v1");

/** One buffer per length, reused: tokens of one brand all have one length. */
const asciiScratch: Uint8Array[] = [];

/**
 * The UTF-8 bytes of `text`, for hashing at once: an ASCII text of up to 128 characters (every
 * well-formed token) is written into a buffer kept for its length, which the next call overwrites;
 * anything else through TextEncoder. Verification hashes on every call, and encode() allocated.
 */
function asciiBytesOf(text: string): Uint8Array {
  const length = text.length;
  if (length > 128) return encoder.encode(text);
  const bytes = (asciiScratch[length] ??= new Uint8Array(length));
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return encoder.encode(text);
    bytes[i] = code;
  }
  return bytes;
}

/** SHA-256 of the token, or HMAC-SHA-256 keyed by the pepper when one is configured. */
export function createTokenHasher(pepper?: string): TokenHasher {
  const pepperBytes = pepper ? encoder.encode(pepper) : undefined;
  const algorithm: HashAlgorithm = pepperBytes ? "hmac-sha256" : "sha256";
  return {
    algorithm,
    pepperFingerprint: pepperBytes ? Buffer.from(hmac(sha256, pepperBytes, PEPPER_FINGERPRINT_TEXT)).toString("hex") : null,
    canHash: (candidate): candidate is HashAlgorithm => candidate === "sha256" || (candidate === PEPPERED_ALGORITHM && pepperBytes !== undefined),
    hash(token, using = algorithm) {
      const bytes = asciiBytesOf(token);
      if (using === "sha256") return sha256(bytes);
      if (using !== PEPPERED_ALGORITHM || !pepperBytes) throw new Error(`cannot compute ${String(using)} here`);
      return hmac(sha256, pepperBytes, bytes);
    },
  };
}

/** Compares two hashes in time that depends only on their length. */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
