import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Principal } from "../../src/service/principal.js";
import { allTools } from "../../src/tools/index.js";
import { connectClient, openHarness, type Harness } from "../helpers/harness.js";

// Every tool gets at least 10,000 random argument objects: wrong types, huge strings, unicode,
// control characters, prototype-pollution keys, and real ids, prefixes, tokens and slugs (so that
// hostile values also reach the code behind the lookups). The calls are spread over three callers:
// an admin, an ordinary user and a caller acting with an API key (scopes, narrowing). Each call
// must end in a result that matches the tool's output schema or in a structured tool error: never
// a crash, an unhandled rejection, a protocol error, an internal_error or a stack trace. No error
// body carries a piece of a token's secret part, and no result carries text the text rule refuses.
const RUNS_PER_TOOL = 10_000;
const ERROR_CODES = new Set(["validation_error", "not_found", "forbidden", "max_keys_reached", "conflict", "confirmation_declined"]);

/** Instants past 9999-12-31T23:59:59Z: beyond it, offsets that cross it, extended years. */
const FAR_FUTURE = ["9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59.001Z", "9999-12-31T23:30:00-00:30", "+010000-01-01T00:00:59.000Z", "+275760-09-13T00:00:00Z", "10000-01-01T00:00:00Z"];

let harness: Harness;
let callers: { name: string; client: Client }[] = [];
/** Real values from the database, mixed into the random strings. */
let realValues: string[] = [];
const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();
/** 16-character pieces of every real token's secret part: no error body may contain one. */
let secretPieces: string[] = [];
/** What the text rule refuses, written to the store through no path (JSON escapes a lone surrogate as \udXXX). */
const HIDDEN_TEXT = /[\u202a-\u202e\u2066-\u2069\u200b\u2060\ufeff\ufffd\u{e0000}-\u{e007f}]|\\ud[89a-f][0-9a-f]{2}/iu;

beforeAll(async () => {
  harness = await openHarness({ isAdmin: true, userName: "root" });
  const { service } = harness;
  const admin = harness.principal;
  const alice = await service.localPrincipal({ userName: "alice", transport: "stdio", isAdmin: false });
  const project = await service.createProject(admin, { slug: "hostile-prj", name: "Hostile", default_scopes: ["tools:read", "orders:read"] });
  const aliceKeys = await Promise.all([
    service.createApiKey(alice, { name: "alice one" }),
    service.createApiKey(alice, { name: "alice two", project_reference: project.slug }),
  ]);
  const adminKeys = await Promise.all([service.createApiKey(admin, { name: "root one" }), service.createApiKey(admin, { name: "root two" })]);
  // A caller acting with one of alice's keys, as over HTTP: its scopes bound what it may mint.
  const withKey: Principal = { ...alice, transport: "http", keyId: aliceKeys[0]!.id, scopes: [...aliceKeys[0]!.scopes], clientAddress: "127.0.0.1" };
  realValues = [
    project.id,
    project.slug,
    admin.userId,
    alice.userId,
    ...[...aliceKeys, ...adminKeys].flatMap((key) => [key.id, key.key_prefix, key.key]),
  ];
  secretPieces = [...aliceKeys, ...adminKeys].flatMap(({ key }) => {
    const secret = key.split("_").slice(2).join("_");
    return Array.from({ length: secret.length - 15 }, (_, i) => secret.slice(i, i + 16));
  });
  callers = [
    { name: "admin", client: await connectClient(service, admin) },
    { name: "user", client: await connectClient(service, alice) },
    { name: "key", client: await connectClient(service, withKey) },
  ];
  // With the tool list cached, the SDK client checks every structuredContent against the tool's
  // output schema and throws on a mismatch: a malformed success fails the property.
  for (const { client } of callers) await client.listTools();
});
afterAll(async () => {
  for (const { client } of callers) await client.close();
  await harness.close();
});

const nastyString = () =>
  fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.constantFrom("", " ", "\u0000", "\u202e", "🔑", "a\nb", "__proto__", "constructor", "' OR 1=1 --", "%s%n", "\ud800", "\u0085", "\ufeffname"),
    // Format characters and broken text the text rule refuses, and what it keeps (ZWJ, ZWNJ in context).
    fc.constantFrom("a\u200bb", "x\u2066y\u2069", "bot\u{e0041}\u{e007f}", "\u2060", "\udc00x", "a\ufffd", "👩\u200d💻", "\u0645\u200c\u06cc", "\u200d"),
    // Huge: past every length limit; now and then a megabyte.
    fc.oneof(
      { arbitrary: fc.string({ maxLength: 8 }).map((s) => s.repeat(2_000)), weight: 19 },
      { arbitrary: fc.constantFrom("A".repeat(1_000_000), "é".repeat(400_000)), weight: 1 },
    ),
    fc.constantFrom("2026-13-45T99:99:99Z", "2030-01-01T00:00:00Z", "9999-12-31T23:59:59+23:59", "-000001-01-01T00:00:00Z", "2026-06-01T12:00:00.000Z", "2026-07-01T00:00:00+02:00"),
    fc.constantFrom(...FAR_FUTURE),
    fc.constantFrom("kw_AAAAAAAAAAAA_" + "A".repeat(38), "key_" + "A".repeat(20), "prj_" + "A".repeat(20)),
    fc.constantFrom(...realValues),
    fc.constantFrom(...realValues).map((value) => value.slice(0, -1)),
    fc.constantFrom(...realValues).map((value) => `see ${value}\u202e`),
  );
const nastyValue = () =>
  fc.oneof(
    nastyString(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constantFrom(0, -1, 1, 100, 101, 2_592_000, 2_592_001, Number.MAX_SAFE_INTEGER),
    fc.array(nastyString(), { maxLength: 5 }),
    fc.array(fc.constantFrom("tools:read", "tools:execute", "admin", "orders:read", "keys:verify"), { maxLength: 4 }),
    fc.dictionary(nastyString(), nastyString(), { maxKeys: 3 }),
  );
const POLLUTING_KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"];

/** Mostly strings (most fields are strings), real ids among them, sometimes anything at all. */
const plausibleValue = () =>
  fc.oneof(
    { arbitrary: nastyString(), weight: 5 },
    { arbitrary: fc.constantFrom(...realValues), weight: 3 },
    { arbitrary: fc.array(fc.oneof(nastyString(), fc.constantFrom("tools:read", "tools:execute", "orders:read")), { maxLength: 4 }), weight: 1 },
    { arbitrary: fc.constantFrom(0, 1, 50, 100, 3600, 2_592_000, -1, 1.5), weight: 1 },
    { arbitrary: nastyValue(), weight: 1 },
  );

function argumentsFor(fieldNames: string[]) {
  const keys = fc.constantFrom(...fieldNames, ...POLLUTING_KEYS, "unknown_field");
  // Anything: random keys (the tool's, polluting ones, unknown ones) with random values.
  const anything = fc.array(fc.tuple(fc.oneof({ arbitrary: keys, weight: 4 }, { arbitrary: nastyString(), weight: 1 }), nastyValue()), { maxLength: 6 });
  // Shaped like the tool's input (only its own fields), with hostile but plausible values: these
  // get past the schema and reach the service and the store.
  const shaped = fc
    .array(fc.tuple(fc.constantFrom(...(fieldNames.length > 0 ? fieldNames : ["unknown_field"])), plausibleValue()), { maxLength: fieldNames.length })
    .map((entries) => entries.filter(([key], i) => entries.findIndex(([other]) => other === key) === i));
  return fc.oneof(anything, shaped).map((entries) => {
    // JSON.parse is how real arguments arrive, and it makes "__proto__" an own key.
    const json = `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"}`).join(",")}}`;
    return JSON.parse(json) as Record<string, unknown>;
  });
}

describe("hostile tool arguments", () => {
  for (const tool of allTools) {
    it(`${tool.name}: ${RUNS_PER_TOOL} random argument objects end in a result or a structured error`, async () => {
      const fields = Object.keys(tool.inputSchema.shape);
      const seen = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: callers.length - 1 }), argumentsFor(fields), async (callerIndex, args) => {
          const caller = callers[callerIndex]!;
          const result = await caller.client.callTool({ name: tool.name, arguments: args });
          const content = result.content as { type: string; text: string }[];
          expect(content).toHaveLength(1);
          const text = content[0]!.text;
          expect(text).not.toMatch(/\n\s+at .+:\d+|node_modules|SqliteError/); // no stack trace, no internals
          if (result.isError) {
            expect(result.structuredContent).toBeUndefined();
            expect(secretPieces.find((piece) => text.includes(piece)), text.slice(0, 300)).toBeUndefined();
            const body = JSON.parse(text) as { error: { code: string; message: unknown; errors: { key: unknown; message: unknown }[] } };
            expect(ERROR_CODES.has(body.error.code), text.slice(0, 300)).toBe(true);
            expect(typeof body.error.message).toBe("string");
            expect(Array.isArray(body.error.errors)).toBe(true);
            for (const field of body.error.errors) {
              expect(typeof field.key).toBe("string");
              expect(typeof field.message).toBe("string");
            }
            seen.set(`${caller.name}:${body.error.code}`, (seen.get(`${caller.name}:${body.error.code}`) ?? 0) + 1);
          } else {
            expect(result.structuredContent).toBeTypeOf("object");
            expect(text, text.slice(0, 300)).not.toMatch(HIDDEN_TEXT);
            expect(JSON.parse(text)).toEqual(result.structuredContent);
            seen.set(`${caller.name}:ok`, (seen.get(`${caller.name}:ok`) ?? 0) + 1);
          }
        }),
        { numRuns: RUNS_PER_TOOL },
      );
      console.log(`${tool.name}: ${JSON.stringify(Object.fromEntries([...seen.entries()].sort()))}`);
      const outcomes = [...seen.entries()].reduce((sum, [, n]) => sum + n, 0);
      expect(outcomes).toBe(RUNS_PER_TOOL);
      expect([...seen.keys()].some((key) => key.endsWith(":validation_error"))).toBe(true);
      // Nothing polluted Object.prototype along the way.
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore);
    });
  }
});

describe("far-future instants under a policy without expiry limits", () => {
  it("are refused on create and update by every caller, naming expires_at; SQL and code still agree on every key's status", async () => {
    const open = await openHarness({ policy: { defaultExpiryDays: null, maxExpiryDays: null, maxActiveKeysPerUser: 2 } });
    try {
      const { service, store, principal } = open;
      const existing = await service.createApiKey(principal, { name: "existing" });
      const withKey: Principal = { ...principal, transport: "http", keyId: existing.id, scopes: [...existing.scopes] };
      for (const caller of [principal, { ...principal, isAdmin: true }, withKey]) {
        for (const expires_at of FAR_FUTURE) {
          for (const attempt of [() => service.createApiKey(caller, { name: "far", expires_at }), () => service.updateApiKey(caller, { id: existing.id, expires_at })]) {
            await expect(attempt()).rejects.toMatchObject({ code: "validation_error", errors: [{ key: "expires_at" }] });
          }
        }
      }
      const now = open.clock.current.toISOString();
      const listed = await store.listKeys({ organizationId: principal.organizationId, userId: null, projectId: null, status: "active", now, after: null, limit: 100 });
      expect(listed.map((key) => key.id)).toEqual([existing.id]);
      expect(await store.countActiveKeys(principal.userId, now)).toBe(1);
    } finally {
      await open.close();
    }
  });
});
