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

/** SHA-256 of the token, or HMAC-SHA-256 keyed by the pepper when one is configured. */
export function createTokenHasher(pepper?: string): TokenHasher {
  const pepperBytes = pepper ? encoder.encode(pepper) : undefined;
  const algorithm: HashAlgorithm = pepperBytes ? "hmac-sha256" : "sha256";
  return {
    algorithm,
    pepperFingerprint: pepperBytes ? Buffer.from(hmac(sha256, pepperBytes, PEPPER_FINGERPRINT_TEXT)).toString("hex") : null,
    canHash: (candidate): candidate is HashAlgorithm => candidate === "sha256" || (candidate === PEPPERED_ALGORITHM && pepperBytes !== undefined),
    hash(token, using = algorithm) {
      const bytes = encoder.encode(token);
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
