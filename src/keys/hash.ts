import { timingSafeEqual } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Hash } from "@noble/hashes/utils.js";

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

/**
 * A hash started once and copied for each input. noble's one-shot sha256() and hmac() build a new
 * hasher on every call (its buffers and a DataView; for HMAC, the pepper's two key blocks hashed
 * again): a third of a cached verification's time (CPU profile of the README call over 20,000
 * cached keys, 2026-11-27; bench/verify-inprocess.mjs's rows went from 1.5x to 1.8-2.0x the floor).
 * `_cloneInto(to)`, part of noble's Hash interface ("copies the current hash state into an
 * existing instance"), resets the working hasher to the pristine state and allocates nothing.
 * From the copy to the digest nothing yields, so calls never share state; each digest is a new
 * array, as callers keep it across awaits.
 */
function hashFunctionOf<T extends Hash<T>>(pristine: T): (bytes: Uint8Array) => Uint8Array {
  const working = pristine.clone();
  return (bytes) => {
    pristine._cloneInto(working);
    // digest(), not digestInto(array): it writes through the hasher's own DataView before copying
    // out, where digestInto builds a DataView over the array it is given, each call.
    return working.update(bytes).digest();
  };
}

const sha256Of = hashFunctionOf(sha256.create());

/** The shortest pepper accepted, wherever one is given (KEYWARDEN_PEPPER, a KeyService's or verifyApiKey's `pepper`). */
export const PEPPER_MIN_LENGTH = 16;

/** What is wrong with a pepper, as the end of a sentence naming it; null when nothing is. Never quotes the pepper. */
export function pepperProblem(pepper: string): string | null {
  return pepper.length < PEPPER_MIN_LENGTH ? `must be at least ${PEPPER_MIN_LENGTH} characters` : null;
}

/** SHA-256 of the token, or HMAC-SHA-256 keyed by the pepper when one is given; throws RangeError for a pepper pepperProblem refuses. */
export function createTokenHasher(pepper?: string): TokenHasher {
  const problem = pepper === undefined ? null : pepperProblem(pepper);
  if (problem !== null) throw new RangeError(`the pepper ${problem}`);
  const pepperBytes = pepper === undefined ? undefined : encoder.encode(pepper);
  const algorithm: HashAlgorithm = pepperBytes ? "hmac-sha256" : "sha256";
  const hmacOf = pepperBytes ? hashFunctionOf(hmac.create(sha256, pepperBytes)) : undefined;
  return {
    algorithm,
    pepperFingerprint: pepperBytes ? Buffer.from(hmac(sha256, pepperBytes, PEPPER_FINGERPRINT_TEXT)).toString("hex") : null,
    canHash: (candidate): candidate is HashAlgorithm => candidate === "sha256" || (candidate === PEPPERED_ALGORITHM && pepperBytes !== undefined),
    hash(token, using = algorithm) {
      const bytes = asciiBytesOf(token);
      if (using === "sha256") return sha256Of(bytes);
      if (using !== PEPPERED_ALGORITHM || !hmacOf) throw new Error(`cannot compute ${String(using)} here`);
      return hmacOf(bytes);
    },
  };
}

/** Compares two hashes in time that depends only on their length. */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
