import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreatedApiKey } from "../../../src/service/types.js";
import { rawRequest } from "../../helpers/http.js";
import { startInProcess, type InProcessServer } from "../../helpers/inprocess.js";

// The HTTP verify path goes through KeyService.verifyApiKey, so through the verification cache
// (README, "Verification cache"): the gateway's own bearer key and the key it asks about are each
// read from the store once, and a revocation is seen by the very next request.

describe("POST /v1/keys/verify and the verification cache", () => {
  let server: InProcessServer;
  let gateway: CreatedApiKey;
  let checked: CreatedApiKey;
  let reads = 0;

  beforeAll(async () => {
    server = await startInProcess();
    gateway = await server.mint("gateway", ["keys:verify"], "ops");
    checked = await server.mint("checked", ["orders:read"], "alice");
    // Counted on the store object the server's service reads: a count, not a stand-in.
    const find = server.store.findKeyForVerification.bind(server.store);
    server.store.findKeyForVerification = (prefix) => {
      reads++;
      return find(prefix);
    };
  });
  afterAll(async () => {
    await server.close();
  });

  const ask = async (path: string) =>
    (
      await rawRequest(`http://127.0.0.1:${server.server.port}${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${gateway.key}` },
        body: JSON.stringify({ key: checked.key, required_scopes: ["orders:read"] }),
      })
    ).json() as { valid: boolean; code: string };

  it("reads the bearer key and the asked key once, on the fast path and through Express, and sees a revocation at once", async () => {
    for (const path of ["/v1/keys/verify", "/v1/keys/verify?via=express", "/v1/keys/verify", "/v1/keys/verify?via=express"]) {
      expect(await ask(path)).toMatchObject({ valid: true, code: "valid" });
    }
    expect(reads).toBe(2);
    await server.service.revokeApiKey(await server.operator("alice"), { id: checked.id });
    expect(await ask("/v1/keys/verify")).toMatchObject({ valid: false, code: "revoked" });
    expect(await ask("/v1/keys/verify?via=express")).toMatchObject({ valid: false, code: "revoked" });
  });
});
