import type { VerifyResult } from "../../src/service/types.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { randomBase62 } from "../../src/keys/base62.js";
import { checksumOf, generateToken } from "../../src/keys/token.js";
import type { ApiKeyRecord } from "../../src/service/records.js";
import { callError, callOk, errorKeys, openWorld, type World } from "../helpers/lifecycle.js";

interface Created {
  id: string;
  key: string;
  key_prefix: string;
  expires_at: string | null;
  project_id: string | null;
}
type Verified = VerifyResult;

const UNKNOWN = { key_id: null, key_prefix: null, user_id: null, organization_id: null, project_id: null, scopes: null, expires_at: null };

let world: World;
let key: Created;
beforeEach(async () => {
  world = await openWorld();
  key = await callOk<Created>(world.aliceClient, "create_api_key", { name: "gateway" });
});
afterEach(async () => {
  await world.close();
});

const verify = async (args: Record<string, unknown>, client = world.aliceClient) => {
  const result = await callOk<Verified>(client, "verify_api_key", args);
  // Whatever the outcome, the answer never carries the token.
  if (typeof args.key === "string" && args.key.length > 0) expect(JSON.stringify(result)).not.toContain(args.key);
  return result;
};

/** A well-formed token (good checksum) with the given prefix and a secret that was never issued. */
const forged = (prefix: string) => {
  const body = `${prefix}_${randomBase62(32)}`;
  return body + checksumOf(body);
};

describe("verify_api_key", () => {
  it("answers valid with the key's id, prefix, owner, organization, project, scopes and expiry", async () => {
    expect(await verify({ key: key.key })).toEqual({
      valid: true,
      code: "valid",
      key_id: key.id,
      key_prefix: key.key_prefix,
      user_id: world.alice.userId,
      organization_id: world.alice.organizationId,
      project_id: null,
      scopes: ["tools:read", "tools:execute"],
      expires_at: key.expires_at,
    });
  });

  it("records the last use of a valid key, and only of a valid key", async () => {
    world.harness.clock.advance(30_000);
    await verify({ key: key.key });
    const record = await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { id: key.id });
    expect(record).toMatchObject({ last_used_at: world.harness.clock.current.toISOString(), last_used_ip: null, last_used_user_agent: null });

    world.harness.clock.advance(30_000);
    await verify({ key: key.key, required_scopes: ["orders:write"] });
    expect((await callOk<ApiKeyRecord>(world.aliceClient, "get_api_key", { id: key.id })).last_used_at).toBe(record.last_used_at);
  });

  it("answers for any caller: whoever holds the token may check it", async () => {
    expect((await verify({ key: key.key }, world.bobClient)).code).toBe("valid");
  });

  it("answers malformed for garbage, a typo (checksum) or another brand, with nothing about any key", async () => {
    const typo = key.key.slice(0, 20) + (key.key[20] === "A" ? "B" : "A") + key.key.slice(21);
    for (const bad of ["", "hello", key.key.slice(0, -1), `${key.key} `, typo, generateToken("acme").token, "x".repeat(10_000)]) {
      expect(await verify({ key: bad })).toEqual({ valid: false, code: "malformed", ...UNKNOWN });
    }
  });

  it("answers not_found for a well-formed token that was never issued, or whose secret differs", async () => {
    expect(await verify({ key: generateToken("kw").token })).toEqual({ valid: false, code: "not_found", ...UNKNOWN });
    // Same prefix as a real key, good checksum, wrong secret: the hash comparison fails.
    expect(await verify({ key: forged(key.key_prefix) })).toEqual({ valid: false, code: "not_found", ...UNKNOWN });
  });

  it("answers revoked and expired with the key's details", async () => {
    const short = await callOk<Created>(world.aliceClient, "create_api_key", {
      name: "short",
      expires_at: new Date(world.harness.clock.current.getTime() + 1000).toISOString(),
    });
    await callOk(world.aliceClient, "revoke_api_key", { id: key.id });
    world.harness.clock.advance(1000);
    expect(await verify({ key: key.key })).toMatchObject({ valid: false, code: "revoked", key_id: key.id, key_prefix: key.key_prefix });
    expect(await verify({ key: short.key })).toMatchObject({ valid: false, code: "expired", key_id: short.id, expires_at: short.expires_at });
  });

  it("checks required_scopes exactly: all must be held, and admin implies nothing", async () => {
    expect((await verify({ key: key.key, required_scopes: ["tools:read"] })).code).toBe("valid");
    expect((await verify({ key: key.key, required_scopes: ["tools:read", "tools:execute"] })).code).toBe("valid");
    expect((await verify({ key: key.key, required_scopes: [] })).code).toBe("valid");
    expect(await verify({ key: key.key, required_scopes: ["tools:read", "orders:read"] })).toMatchObject({
      valid: false,
      code: "insufficient_scope",
      key_id: key.id,
      scopes: ["tools:read", "tools:execute"],
    });

    await callOk(world.rootClient, "create_project", { slug: "ops", name: "Ops", default_scopes: ["admin"] });
    const adminKey = await callOk<Created>(world.rootClient, "create_api_key", { name: "ops", project_reference: "ops" });
    expect((await verify({ key: adminKey.key, required_scopes: ["tools:read"] })).code).toBe("insufficient_scope");
    expect(await verify({ key: adminKey.key, required_scopes: ["admin"] })).toMatchObject({ code: "valid", project_id: adminKey.project_id });
  });

  it("refuses an invalid scope name in required_scopes, without echoing any value", async () => {
    const error = await callError(world.aliceClient, "verify_api_key", { key: key.key, required_scopes: [key.key] });
    expect(error.code).toBe("validation_error");
    expect(error.errors).toEqual([
      { key: "required_scopes", message: "each scope must be lowercase words joined by : . _ or -, at most 64 characters" },
    ]);
    expect(JSON.stringify(error)).not.toContain(key.key);
  });

  it("never echoes the token in a validation error, whatever else is wrong with the request", async () => {
    const before = await world.harness.tableCounts();
    for (const args of [
      { key: key.key, extra: key.key },
      { key: key.key, required_scopes: key.key },
      { key: [key.key] },
      { key: { token: key.key } },
      { token: key.key },
    ]) {
      const error = await callError(world.aliceClient, "verify_api_key", args);
      expect(error.code).toBe("validation_error");
      expect(JSON.stringify(error), JSON.stringify(Object.keys(args))).not.toContain(key.key);
      expect(JSON.stringify(error)).not.toContain(key.key.slice(16));
    }
    expect(await world.harness.tableCounts()).toEqual(before);
  });

  it.each([
    [{}, "key", "required"],
    [{ key: 12 }, "key", "expected string"],
    [{ key: "kw_x", required_scopes: [1] }, "required_scopes.0", "expected string"],
  ])("refuses %j with a validation_error naming %s", async (args, field, message) => {
    const error = await callError(world.aliceClient, "verify_api_key", args);
    expect(error.code).toBe("validation_error");
    expect(errorKeys(error)).toEqual([field]);
    expect(error.errors[0]!.message).toBe(message);
  });
});
