import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { allTools } from "../../src/tools/index.js";
import { connectClient, openHarness, type Harness } from "../helpers/harness.js";

// Every tool gets at least 10,000 random argument objects: wrong types, huge strings, unicode,
// control characters, prototype-pollution keys. Each call must end in a result or a structured
// tool error: never a crash, an unhandled rejection, a protocol error or a stack trace.
const RUNS_PER_TOOL = 10_000;
const ERROR_CODES = new Set(["validation_error", "not_found", "forbidden", "max_keys_reached", "conflict", "confirmation_declined"]);

const nastyString = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("", " ", "\u0000", "\u202e", "🔑", "a\nb", "__proto__", "constructor", "' OR 1=1 --", "%s%n", "\ud800"),
  fc.string({ maxLength: 8 }).map((s) => s.repeat(20_000)), // huge
  fc.constantFrom("2026-13-45T99:99:99Z", "2030-01-01T00:00:00Z", "9999-12-31T23:59:59+23:59", "-000001-01-01T00:00:00Z"),
  fc.constantFrom("kw_AAAAAAAAAAAA_" + "A".repeat(38), "key_" + "A".repeat(20), "prj_" + "A".repeat(20)),
);
const nastyValue = fc.oneof(
  nastyString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(nastyString, { maxLength: 5 }),
  fc.dictionary(nastyString, nastyString, { maxKeys: 3 }),
);
const POLLUTING_KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"];

function argumentsFor(fieldNames: string[]) {
  const keys = fc.constantFrom(...fieldNames, ...POLLUTING_KEYS, "unknown_field");
  return fc
    .array(fc.tuple(fc.oneof(keys, nastyString), nastyValue), { maxLength: 6 })
    .map((entries) => {
      // JSON.parse is how real arguments arrive, and it makes "__proto__" an own key.
      const json = `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"}`).join(",")}}`;
      return JSON.parse(json) as Record<string, unknown>;
    });
}

let harness: Harness;
let client: Client;
const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();
beforeAll(async () => {
  harness = await openHarness({ isAdmin: true });
  client = await connectClient(harness.service, harness.principal);
});
afterAll(async () => {
  await client.close();
  await harness.close();
});

describe("hostile tool arguments", () => {
  for (const tool of allTools) {
    it(`${tool.name}: ${RUNS_PER_TOOL} random argument objects end in a result or a structured error`, async () => {
      const fields = Object.keys(tool.inputSchema.shape);
      const seen = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(argumentsFor(fields), async (args) => {
          const result = await client.callTool({ name: tool.name, arguments: args });
          const text = (result.content as { type: string; text: string }[])[0]?.text ?? "";
          expect(text).not.toMatch(/\n\s+at .+:\d+/); // no stack trace
          if (result.isError) {
            const body = JSON.parse(text) as { error: { code: string; errors: unknown[] } };
            expect(ERROR_CODES.has(body.error.code), text.slice(0, 300)).toBe(true);
            seen.set(body.error.code, (seen.get(body.error.code) ?? 0) + 1);
          } else {
            expect(result.structuredContent).toBeTypeOf("object");
            seen.set("ok", (seen.get("ok") ?? 0) + 1);
          }
        }),
        { numRuns: RUNS_PER_TOOL },
      );
      expect(seen.get("validation_error") ?? 0).toBeGreaterThan(0);
      // Nothing polluted Object.prototype along the way.
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore);
    });
  }
});
