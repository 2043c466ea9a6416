import { afterEach, describe, expect, it } from "vitest";
import { ServiceError } from "../../src/service/errors.js";
import type { KeyService } from "../../src/service/service.js";
import type { Principal } from "../../src/service/principal.js";
import { openSqliteHarness, tableCounts, type Harness } from "../helpers/harness.js";
import type { SqliteKeyStore } from "../../src/store/sqlite.js";

// One text rule for every free-text field, on the library path: what people cannot see but a
// model reads (bidi controls, invisible characters) and broken text (lone surrogates, U+FFFD) are
// refused with a validation_error naming the field; what real names need is kept.

let harness: Harness<SqliteKeyStore>;
afterEach(() => harness?.close());

async function refusal(promise: Promise<unknown>): Promise<ServiceError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServiceError);
  return error as ServiceError;
}

/** Text that must be refused, with the message the caller gets. */
const REFUSED: [label: string, text: string, message: string][] = [
  ["right-to-left override", "invoice\u202etxt.exe", "must not contain bidirectional control characters: found U+202E"],
  ["left-to-right embedding", "\u202aname", "must not contain bidirectional control characters: found U+202A"],
  ["first strong isolate", "a\u2068b\u2069", "must not contain bidirectional control characters: found U+2068"],
  ["pop directional isolate", "ab\u2069", "must not contain bidirectional control characters: found U+2069"],
  ["zero-width space", "deploy\u200bbot", "must not contain invisible characters: found U+200B at character 7"],
  ["word joiner", "deploy\u2060bot", "must not contain invisible characters: found U+2060 at character 7"],
  ["BOM at the start", "\ufeffdeploy", "must not contain invisible characters: found U+FEFF at character 1"],
  ["BOM inside", "de\ufeffploy", "must not contain invisible characters: found U+FEFF at character 3"],
  ["Unicode tags", "bot\u{e0049}\u{e0047}\u{e004e}", "must not contain invisible characters: found U+E0049 at character 4"],
  ["cancel tag", "bot\u{e007f}", "must not contain invisible characters: found U+E007F at character 4"],
  ["soft hyphen", "de\u00adploy", "must not contain invisible characters: found U+00AD at character 3"],
  ["Hangul filler", "\u3164", "must not contain invisible characters: found U+3164 at character 1"],
  ["ZWJ at the start", "\u200dbot", "must not contain invisible characters: found U+200D at character 1"],
  ["ZWNJ before a space", "bot\u200c x", "must not contain invisible characters: found U+200C at character 4"],
  ["two ZWNJ in a row", "\u0645\u200c\u200c\u06cc", "must not contain invisible characters: found U+200C at character 2"],
  ["variation selectors piled up", "a\ufe0f\ufe0f", "must not contain invisible characters: found U+FE0F at character 3"],
  ["ideographic variation selector after a Latin letter", "a\u{e0100}", "must not contain invisible characters: found U+E0100 at character 2"],
  ["lone high surrogate", "bot\ud800", "must be valid Unicode text: found a lone surrogate (U+D800)"],
  ["lone low surrogate", "\udc00bot", "must be valid Unicode text: found a lone surrogate (U+DC00)"],
  ["replacement character", "bot\ufffd\ufffd\ufffd", "must be valid Unicode text: found U+FFFD, the replacement for a lone surrogate or invalid UTF-8"],
];

/** Real names that use invisible characters the way they are meant to be used. */
const KEPT = [
  "👨\u200d👩\u200d👧 family bot", // ZWJ emoji sequence
  "🏳\ufe0f\u200d🌈 pride", // ZWJ after an emoji presentation selector
  "👩🏽\u200d💻 dev", // ZWJ after a skin-tone modifier
  "❤\ufe0f\u200d🔥",
  "1\ufe0f\u20e3 first", // keycap
  "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", // Persian: ZWNJ between letters
  "\u0915\u094d\u200d\u0937", // Devanagari: ZWJ after a virama
  "\u845b\u{e0100}", // an ideographic variation sequence
  "מפתח 2",
  "clé d'API — production",
];

describe("the text rule, on every free-text field of the library", () => {
  /** Every free-text field, each through its own operation. */
  const fields: [field: string, attempt: (service: KeyService, principal: Principal, keyId: string, text: string) => Promise<unknown>][] = [
    ["name", (service, principal, _id, text) => service.createApiKey(principal, { name: text })],
    ["name", (service, principal, id, text) => service.updateApiKey(principal, { id, name: text })],
    ["description", (service, principal, id, text) => service.updateApiKey(principal, { id, description: text })],
    ["reason", (service, principal, id, text) => service.revokeApiKey(principal, { id, reason: text })],
    ["name", (service, principal, _id, text) => service.createProject(principal, { slug: "p", name: text })],
    ["user_name", (service, _principal, _id, text) => service.localPrincipal({ userName: text, transport: "cli", isAdmin: false })],
  ];

  it("refuses bidi controls, invisible characters, lone surrogates and U+FFFD in every field, naming it, and writes nothing", async () => {
    harness = await openSqliteHarness({ isAdmin: true });
    const { service, principal, store } = harness;
    const key = await service.createApiKey(principal, { name: "target" });
    const before = tableCounts(store);
    for (const [field, attempt] of fields) {
      for (const [label, text, message] of REFUSED) {
        const error = await refusal(attempt(service, principal, key.id, text));
        expect(error.code, `${field}: ${label}`).toBe("validation_error");
        expect(error.errors.map(({ key, message }) => ({ key, message })), `${field}: ${label}`).toEqual([{ key: field, message }]);
      }
    }
    expect(tableCounts(store)).toEqual(before);
  });

  it("echoes a refused value with what it hides written out, so the error hides nothing either", async () => {
    harness = await openSqliteHarness();
    const error = await refusal(harness.service.createApiKey(harness.principal, { name: "invoice\u202etxt.exe" }));
    expect(error.toBody().error).toEqual({
      code: "validation_error",
      message: "invalid name: must not contain bidirectional control characters: found U+202E",
      errors: [{ key: "name", message: "must not contain bidirectional control characters: found U+202E", value: "invoice<U+202E>txt.exe" }],
    });
  });

  it("keeps ZWJ in emoji and Indic words, ZWNJ between Persian letters, and variation selectors after a character", async () => {
    harness = await openSqliteHarness({ isAdmin: true });
    const { service, principal } = harness;
    for (const name of KEPT) {
      const key = await service.createApiKey(principal, { name });
      expect(key.name).toBe(name);
      expect((await service.updateApiKey(principal, { id: key.id, description: `${name}\n${name}` })).description).toBe(`${name}\n${name}`);
      expect((await service.revokeApiKey(principal, { id: key.id, reason: name })).revoked_reason).toBe(name);
    }
    expect((await service.localPrincipal({ userName: KEPT[5]!, transport: "cli", isAdmin: false })).userName).toBe(KEPT[5]);
  });
});
