import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BASE62_ALPHABET, encodeBase62Fixed } from "../../src/keys/base62.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { createTokenHasher, hashesEqual } from "../../src/keys/hash.js";
import { newApiKeyId, newOrganizationId, newProjectId, newUserId } from "../../src/keys/ids.js";
import { checksumOf, generateToken, parseToken, TOKEN_PATTERN } from "../../src/keys/token.js";

const TOKEN_SHAPE = /^kw_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$/;
const brandArb = fc.stringMatching(/^[a-z0-9]{1,16}$/);

describe("token format", () => {
  it("is brand_publicId_secret+checksum with the prefix as its first two parts", () => {
    const { token, keyPrefix } = generateToken();
    expect(token).toMatch(TOKEN_SHAPE);
    expect(keyPrefix).toBe(token.slice(0, 15));
    expect(token.startsWith(`${keyPrefix}_`)).toBe(true);
    const body = token.slice(0, -6);
    expect(token.slice(-6)).toBe(checksumOf(body));
  });

  it("draws secrets and public ids that do not repeat", () => {
    const tokens = Array.from({ length: 2000 }, () => generateToken());
    expect(new Set(tokens.map((t) => t.token)).size).toBe(2000);
    expect(new Set(tokens.map((t) => t.keyPrefix)).size).toBe(2000);
  });

  it("uses every base62 character for secrets (no bias toward a subset)", () => {
    const seen = new Set(Array.from({ length: 300 }, () => generateToken().token.slice(16, 48)).join(""));
    expect(seen.size).toBe(62);
  });

  it("rejects a brand outside 1-16 of [a-z0-9]", () => {
    for (const brand of ["", "KW", "k_w", "a".repeat(17)]) expect(() => generateToken(brand)).toThrow(/brand/);
  });

  it("encodes the checksum in exactly six base62 digits, even for the largest CRC32", () => {
    expect(encodeBase62Fixed(0xffffffff, 6)).toHaveLength(6);
    expect(encodeBase62Fixed(0, 6)).toBe("000000");
    expect(() => encodeBase62Fixed(62 ** 6, 6)).toThrow(RangeError);
  });
});

describe("parseToken (property tests)", () => {
  it("accepts every generated token of any brand and returns its prefix", () => {
    fc.assert(
      fc.property(brandArb, (brand) => {
        const { token, keyPrefix } = generateToken(brand);
        expect(parseToken(token, brand)).toEqual({ brand, publicId: keyPrefix.slice(brand.length + 1), keyPrefix });
      }),
      { numRuns: 500 },
    );
  });

  it("rejects any single-character substitution (the checksum catches it)", () => {
    fc.assert(
      fc.property(fc.nat(), fc.constantFrom(...BASE62_ALPHABET, "_", "-", " "), (position, replacement) => {
        const { token } = generateToken();
        const index = position % token.length;
        fc.pre(token[index] !== replacement);
        const mistyped = token.slice(0, index) + replacement + token.slice(index + 1);
        expect(parseToken(mistyped, "kw")).toBeNull();
      }),
      { numRuns: 2000 },
    );
  });

  it("rejects a transposition of two different adjacent characters", () => {
    fc.assert(
      fc.property(fc.nat(), (position) => {
        const { token } = generateToken();
        const index = position % (token.length - 1);
        fc.pre(token[index] !== token[index + 1]);
        const swapped = token.slice(0, index) + token[index + 1] + token[index] + token.slice(index + 2);
        expect(parseToken(swapped, "kw")).toBeNull();
      }),
      { numRuns: 2000 },
    );
  });

  it("rejects arbitrary strings and non-strings without throwing", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 120 }), fc.anything()), (value) => {
        expect(parseToken(value, "kw")).toBeNull();
      }),
      { numRuns: 2000 },
    );
  });

  it("rejects a well-formed token of another brand, a truncated one and one with extra characters", () => {
    const { token } = generateToken("acme");
    expect(parseToken(token, "acme")).not.toBeNull();
    expect(parseToken(token, "kw")).toBeNull();
    expect(parseToken(token.slice(0, -1), "acme")).toBeNull();
    expect(parseToken(`${token}A`, "acme")).toBeNull();
    expect(parseToken(` ${token}`, "acme")).toBeNull();
  });
});

describe("parseToken against the format's definition (TOKEN_PATTERN)", () => {
  /** What parseToken must answer, from the pattern and the checksum, as it was written before the hand parser. */
  const byPattern = (token: string, brand?: string) => {
    const match = TOKEN_PATTERN.exec(token);
    if (!match || (brand !== undefined && match[1] !== brand) || checksumOf(token.slice(0, -6)) !== match[4]) return null;
    return { brand: match[1], publicId: match[2], keyPrefix: `${match[1]}_${match[2]}` };
  };
  // Strings near the format: generated tokens with a character replaced, inserted or removed,
  // including characters just outside each class ('/', ':', '@', '[', '`', '{', non-ASCII).
  // Half of them get the checksum of their edited body, so that only the shape decides.
  const nearArb = fc
    .tuple(brandArb, fc.nat(80), fc.constantFrom("replace", "insert", "remove", "none"), fc.constantFrom("_", "/", ":", "@", "[", "`", "{", "A", "a", "0", "é", "\u0000"), fc.boolean())
    .map(([brand, at, edit, char, rechecksum]) => {
      const { token } = generateToken(brand);
      const i = at % (token.length + 1);
      const edited =
        edit === "replace" ? token.slice(0, i) + char + token.slice(i + 1) : edit === "insert" ? token.slice(0, i) + char + token.slice(i) : edit === "remove" ? token.slice(0, i) + token.slice(i + 1) : token;
      return rechecksum && edited.length > 6 ? edited.slice(0, -6) + checksumOf(edited.slice(0, -6)) : edited;
    });

  it("answers as the pattern and the checksum do, with and without an expected brand", () => {
    fc.assert(
      fc.property(nearArb, fc.option(brandArb, { nil: undefined }), (token, brand) => {
        expect(parseToken(token, brand)).toEqual(byPattern(token, brand));
        expect(parseToken(token)).toEqual(byPattern(token));
      }),
      { numRuns: 3000 },
    );
  });
});

describe("hashing", () => {
  const encoder = new TextEncoder();
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

  it("is SHA-256 of the token without a pepper", () => {
    const hasher = createTokenHasher();
    expect(hasher.algorithm).toBe("sha256");
    expect(hex(hasher.hash("abc"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("is HMAC-SHA-256 keyed by the pepper when one is set", () => {
    const hasher = createTokenHasher("a-pepper-of-sixteen-or-more");
    expect(hasher.algorithm).toBe("hmac-sha256");
    // printf %s 'The quick brown fox jumps over the lazy dog' | openssl dgst -sha256 -hmac a-pepper-of-sixteen-or-more
    expect(hex(hasher.hash("The quick brown fox jumps over the lazy dog"))).toBe(
      "15556ec9316ceb39f2c0c63e41028c33dd2e68732b8853f74d23adc87e9a935b",
    );
    // A row stored before the pepper was set still verifies with its own algorithm.
    expect(hex(hasher.hash("abc", "sha256"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("refuses a pepper shorter than 16 characters, the empty one too, without quoting it", () => {
    for (const pepper of ["", "key", "fifteen-chars-x"]) {
      expect(() => createTokenHasher(pepper)).toThrow(new RangeError("the pepper must be at least 16 characters"));
    }
    expect(createTokenHasher("sixteen-chars-xx").algorithm).toBe("hmac-sha256");
  });

  it("cannot hash an hmac row without a pepper, nor an algorithm it does not know, and says so through canHash", () => {
    expect(createTokenHasher().canHash("hmac-sha256")).toBe(false);
    expect(createTokenHasher("a-pepper-of-sixteen-or-more").canHash("hmac-sha256")).toBe(true);
    expect(createTokenHasher().canHash("sha256")).toBe(true);
    expect(createTokenHasher("a-pepper-of-sixteen-or-more").canHash("argon2id")).toBe(false);
    expect(() => createTokenHasher().hash("abc", "hmac-sha256")).toThrow(/cannot compute hmac-sha256/);
  });

  it("gives noble's one-shot digests call after call, interleaving algorithms, and never overwrites a digest already returned", () => {
    const pepper = "a-pepper-of-sixteen-or-more";
    const hasher = createTokenHasher(pepper);
    const plain = createTokenHasher();
    // Tokens, texts longer than a 64-byte block, and non-ASCII (hashed as UTF-8).
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string({ maxLength: 200 }), fc.constant(generateToken().token)), { minLength: 1, maxLength: 8 }), (texts) => {
        const digests = texts.flatMap((text) => [hasher.hash(text), hasher.hash(text, "sha256"), plain.hash(text)] as const);
        texts.forEach((text, i) => {
          const bytes = encoder.encode(text);
          expect(hex(digests[3 * i]!)).toBe(hex(hmac(sha256, encoder.encode(pepper), bytes)));
          expect(hex(digests[3 * i + 1]!)).toBe(hex(sha256(bytes)));
          expect(hex(digests[3 * i + 2]!)).toBe(hex(sha256(bytes)));
        });
      }),
      { numRuns: 300 },
    );
  });

  it("compares hashes by value and length", () => {
    const a = encoder.encode("0123456789abcdef0123456789abcdef");
    expect(hashesEqual(a, Uint8Array.from(a))).toBe(true);
    expect(hashesEqual(a, encoder.encode("0123456789abcdef0123456789abcdeX"))).toBe(false);
    expect(hashesEqual(a, a.slice(1))).toBe(false);
  });
});

describe("typed ids", () => {
  it("carry their kind as a prefix and 20 base62 characters", () => {
    expect(newApiKeyId()).toMatch(/^key_[0-9A-Za-z]{20}$/);
    expect(newUserId()).toMatch(/^usr_[0-9A-Za-z]{20}$/);
    expect(newProjectId()).toMatch(/^prj_[0-9A-Za-z]{20}$/);
    expect(newOrganizationId()).toMatch(/^org_[0-9A-Za-z]{20}$/);
  });
});
