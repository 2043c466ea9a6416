import { timingSafeEqual } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

/** Recorded beside every stored hash so a later algorithm can take over without invalidating old keys. */
export type HashAlgorithm = "sha256" | "hmac-sha256";

const encoder = new TextEncoder();

export interface TokenHasher {
  /** The algorithm new keys are hashed with. */
  readonly algorithm: HashAlgorithm;
  /** Hashes a token with the given algorithm (a stored row may use an older one). */
  hash(token: string, algorithm?: HashAlgorithm): Uint8Array;
}

/** SHA-256 of the token, or HMAC-SHA-256 keyed by the pepper when one is configured. */
export function createTokenHasher(pepper?: string): TokenHasher {
  const pepperBytes = pepper ? encoder.encode(pepper) : undefined;
  const algorithm: HashAlgorithm = pepperBytes ? "hmac-sha256" : "sha256";
  return {
    algorithm,
    hash(token, using = algorithm) {
      const bytes = encoder.encode(token);
      if (using === "sha256") return sha256(bytes);
      if (!pepperBytes) throw new Error("a key was hashed with hmac-sha256 but KEYWARDEN_PEPPER is not set");
      return hmac(sha256, pepperBytes, bytes);
    },
  };
}

/** Compares two hashes in time that depends only on their length. */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
