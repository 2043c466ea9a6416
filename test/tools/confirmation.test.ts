import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { ElicitRequest } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ApiKeyRecord } from "../../src/service/records.js";
import { connectClient, openHarness, tableCounts, type ElicitationAnswer, type Harness } from "../helpers/harness.js";
import { callError, callOk } from "../helpers/lifecycle.js";

// revoke_api_key, and rotate_api_key with grace 0, stop a working key: a client that can ask its
// user (MCP elicitation) is asked first; a "no" is confirmation_declined and changes nothing.

interface Created {
  id: string;
  key: string;
  key_prefix: string;
}

let harness: Harness;
let key: Created;
const asked: ElicitRequest["params"][] = [];
beforeEach(async () => {
  harness = await openHarness();
  asked.length = 0;
  const plain = await connectClient(harness.service, harness.principal);
  key = await callOk<Created>(plain, "create_api_key", { name: "deploy bot" });
});
afterEach(() => harness.close());

const clientAnswering = (action: "accept" | "decline" | "cancel"): Promise<Client> => {
  const answer: ElicitationAnswer = (request) => {
    asked.push(request.params);
    return { action, ...(action === "accept" ? { content: {} } : {}) };
  };
  return connectClient(harness.service, harness.principal, answer);
};

describe("confirmation of steps that stop a working key", () => {
  it("asks before revoking, naming the key, and revokes on yes", async () => {
    const client = await clientAnswering("accept");
    const record = await callOk<ApiKeyRecord>(client, "revoke_api_key", { id: key.id, reason: "leaked" });
    expect(record.status).toBe("revoked");
    expect(asked).toHaveLength(1);
    expect(asked[0]!.message).toBe(
      `Revoke the API key "deploy bot" (${key.key_prefix}, scopes tools:read, tools:execute)? It stops working everywhere at once, and this cannot be undone.`,
    );
    expect("requestedSchema" in asked[0]! && asked[0].requestedSchema).toEqual({ type: "object", properties: {} });
    // The question never carries the token or its secret part.
    expect(JSON.stringify(asked)).not.toContain(key.key.slice(key.key_prefix.length + 1, key.key_prefix.length + 13));
  });

  for (const action of ["decline", "cancel"] as const) {
    it(`answers ${action} with confirmation_declined and changes nothing`, async () => {
      const client = await clientAnswering(action);
      const before = tableCounts(harness.store);
      const error = await callError(client, "revoke_api_key", { id: key.id });
      expect(error).toEqual({
        code: "confirmation_declined",
        message: "the user declined; nothing was changed",
        errors: [{ key: "id", message: "declined", value: key.id }],
      });
      expect(tableCounts(harness.store)).toEqual(before);
      expect((await callOk<{ code: string }>(client, "verify_api_key", { key: key.key })).code).toBe("valid");

      const beforeRotation = tableCounts(harness.store); // the verification recorded a use
      const rotateError = await callError(client, "rotate_api_key", { id: key.id });
      expect(rotateError.code).toBe("confirmation_declined");
      expect(tableCounts(harness.store)).toEqual(beforeRotation);
      expect(asked.map((question) => question.message.split(" ")[0])).toEqual(["Revoke", "Rotate"]);
    });
  }

  it("does not ask when nothing working stops: a rotation with grace, a second revocation, an unknown id", async () => {
    const client = await clientAnswering("decline");
    // Bad input is refused before anyone is asked.
    expect((await callError(client, "revoke_api_key", { id: key.id, reason: "   " })).code).toBe("validation_error");
    expect((await callError(client, "rotate_api_key", { id: key.id, grace_period_seconds: -1 })).code).toBe("validation_error");
    expect(asked).toHaveLength(0);
    const rotated = await callOk<Created & { previous_key_id: string }>(client, "rotate_api_key", { id: key.id, grace_period_seconds: 600 });
    expect(rotated.previous_key_id).toBe(key.id);
    expect(asked).toHaveLength(0);

    const yes = await clientAnswering("accept");
    await callOk(yes, "revoke_api_key", { id: rotated.id });
    asked.length = 0;
    expect((await callOk<ApiKeyRecord>(client, "revoke_api_key", { id: rotated.id })).status).toBe("revoked"); // already revoked
    expect((await callError(client, "revoke_api_key", { id: "key_doesnotexist0000000" })).code).toBe("not_found");
    expect((await callError(client, "rotate_api_key", { id: rotated.id })).code).toBe("conflict");
    expect(asked).toHaveLength(0);
  });

  it("does not ask a client that cannot: its own approval of a destructive tool stands", async () => {
    const plain = await connectClient(harness.service, harness.principal);
    expect((await callOk<ApiKeyRecord>(plain, "revoke_api_key", { id: key.id })).status).toBe("revoked");
  });

  it("treats a client that fails to answer as a no", async () => {
    const failing = await connectClient(harness.service, harness.principal, () => {
      throw new Error("the user interface is gone");
    });
    const before = tableCounts(harness.store);
    const error = await callError(failing, "revoke_api_key", { id: key.id });
    expect(error).toMatchObject({ code: "confirmation_declined", errors: [{ key: "id", message: "not_confirmed" }] });
    expect(tableCounts(harness.store)).toEqual(before);
  });
});
