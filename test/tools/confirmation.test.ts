import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { DEFAULT_REQUEST_TIMEOUT_MSEC } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { ElicitRequestSchema, type ElicitRequest, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CONFIRMATION_TIMEOUT_MS, createServer } from "../../src/server.js";
import type { Principal } from "../../src/service/principal.js";
import type { ApiKeyRecord } from "../../src/service/records.js";
import { connectClient, openHarness, type ElicitationAnswer, type Harness } from "../helpers/harness.js";
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
      const before = await harness.tableCounts();
      const error = await callError(client, "revoke_api_key", { id: key.id });
      expect(error).toEqual({
        code: "confirmation_declined",
        message: "the user declined; nothing was changed",
        errors: [{ key: "id", message: "declined", value: key.id }],
      });
      expect(await harness.tableCounts()).toEqual(before);
      expect((await callOk<{ code: string }>(client, "verify_api_key", { key: key.key })).code).toBe("valid");

      const beforeRotation = await harness.tableCounts(); // the verification recorded a use
      const rotateError = await callError(client, "rotate_api_key", { id: key.id });
      expect(rotateError.code).toBe("confirmation_declined");
      expect(await harness.tableCounts()).toEqual(beforeRotation);
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

  it("refuses, without asking, on a server that never saw the client's initialize (serve --stateless): it cannot know whom to ask", async () => {
    const server = createServer({ service: harness.service, principalOf: () => harness.principal, version: "test" });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const received: JSONRPCMessage[] = [];
    clientSide.onmessage = (message) => void received.push(message);
    await clientSide.start();
    const before = await harness.tableCounts();
    for (const [id, name, args] of [[1, "revoke_api_key", { id: key.id }], [2, "rotate_api_key", { id: key.id }]] as const) {
      await clientSide.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
    }
    await vi.waitFor(() => expect(received).toHaveLength(2));
    for (const message of received) {
      const result = (message as unknown as { result: { isError: boolean; content: { text: string }[] } }).result;
      expect(result.isError).toBe(true);
      expect(JSON.parse(result.content[0]!.text)).toMatchObject({
        error: { code: "confirmation_declined", errors: [{ key: "id", message: "cannot_ask", value: key.id }] },
      });
    }
    expect(await harness.tableCounts()).toEqual(before);
    await server.close();
  });

  it("treats a client that fails to answer as a no", async () => {
    const failing = await connectClient(harness.service, harness.principal, () => {
      throw new Error("the user interface is gone");
    });
    const before = await harness.tableCounts();
    const error = await callError(failing, "revoke_api_key", { id: key.id });
    expect(error).toMatchObject({ code: "confirmation_declined", errors: [{ key: "id", message: "not_confirmed" }] });
    expect(await harness.tableCounts()).toEqual(before);
  });
});

/**
 * A client whose user answers with `answer`, linked to a server that reports each finished tool
 * call (its debug log line) and waits `confirmationTimeoutMs` for answers.
 */
async function observedClient(
  principal: Principal,
  answer: (request: ElicitRequest, signal: AbortSignal) => Promise<{ action: "accept" | "decline" | "cancel" }>,
  confirmationTimeoutMs?: number,
): Promise<{ client: Client; finished: string[] }> {
  const finished: string[] = [];
  const logger = {
    debug: (entry: Record<string, unknown>) => void finished.push(`${String(entry.tool)}:${String(entry.outcome)}`),
    info: () => {},
    error: () => {},
  };
  const server = createServer({ service: harness.service, principalOf: () => principal, version: "test", logger, confirmationTimeoutMs });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  const client = new Client({ name: "keywarden-test", version: "0" }, { capabilities: { elicitation: {} } });
  client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
    asked.push(request.params);
    const { action } = await answer(request, extra.signal);
    return action === "accept" ? { action, content: {} } : { action };
  });
  await client.connect(clientTransport);
  return { client, finished };
}

describe("a confirmation and the call around it", () => {
  it("a cancelled call ends the question, and a yes that comes later changes nothing", async () => {
    const cancel = new AbortController();
    const { client, finished } = await observedClient(harness.principal, async () => {
      cancel.abort("the user closed the chat"); // the client gives up on the call (notifications/cancelled)
      await new Promise((resolve) => setTimeout(resolve, 10)); // the person answers afterwards
      finished.push("answered yes");
      return { action: "accept" };
    });
    const before = await harness.tableCounts();
    await expect(client.callTool({ name: "revoke_api_key", arguments: { id: key.id } }, undefined, { signal: cancel.signal })).rejects.toThrow();
    await vi.waitFor(() => expect(finished).toHaveLength(2)); // the server is done with the call, and the yes was sent
    // The cancellation ended the question: the call was over before the answer came.
    expect(finished).toEqual(["revoke_api_key:confirmation_declined", "answered yes"]);
    expect(await harness.tableCounts()).toEqual(before);
    expect((await harness.store.getKeyById(key.id))?.revoked_at).toBeNull();
  });

  it("waits for an answer less long than clients wait for the call; no answer in time is confirmation_declined", async () => {
    expect(CONFIRMATION_TIMEOUT_MS).toBeLessThan(DEFAULT_REQUEST_TIMEOUT_MSEC);
    // A person who never answers: the question ends when the server stops waiting.
    const { client } = await observedClient(
      harness.principal,
      (_request, questionEnded) => new Promise((resolve) => questionEnded.addEventListener("abort", () => resolve({ action: "accept" }))),
      50,
    );
    const before = await harness.tableCounts();
    const error = await callError(client, "rotate_api_key", { id: key.id });
    expect(error).toEqual({
      code: "confirmation_declined",
      message: "the client gave no answer to the confirmation request; nothing was changed",
      errors: [{ key: "id", message: "not_confirmed", value: key.id }],
    });
    expect(await harness.tableCounts()).toEqual(before);
  });

  /** A caller acting with an API key (as over HTTP), and that key. */
  async function actingKey(scopes: string[]): Promise<{ principal: Principal; id: string }> {
    const admin = await harness.service.localPrincipal({ userName: "alice", transport: "cli", isAdmin: true });
    const created = await harness.service.createApiKey(admin, { name: "agent key", scopes });
    const principal: Principal = { ...harness.principal, transport: "http", keyId: created.id, scopes, isAdmin: false, clientAddress: "127.0.0.1" };
    return { principal, id: created.id };
  }

  const changesWhileAsking = [
    {
      what: "revoked",
      tool: "revoke_api_key",
      scopes: ["tools:read", "tools:execute"],
      change: { revoke: true },
      expected: { code: "forbidden", errors: [{ key: "key", message: "acting_key_not_active" }] },
    },
    {
      what: "narrowed to tools:read",
      tool: "revoke_api_key",
      scopes: ["tools:read", "tools:execute"],
      change: { scopes: ["tools:read"] },
      expected: { code: "forbidden", errors: [{ key: "scopes", message: "scope_removed", value: "tools:read" }] },
    },
    {
      what: "narrowed below the target's scopes",
      tool: "rotate_api_key",
      scopes: ["tools:read", "tools:execute", "orders:read"],
      change: { scopes: ["tools:read", "tools:execute"] },
      expected: { code: "forbidden", errors: [{ key: "id", message: "missing scopes: orders:read" }] },
    },
  ] as const;
  for (const { what, tool, scopes, change, expected } of changesWhileAsking) {
    it(`${tool}: an acting key ${what} while the question is open does not complete it`, async () => {
      const admin = await harness.service.localPrincipal({ userName: "alice", transport: "cli", isAdmin: true });
      const acting = await actingKey([...scopes]);
      const target = await harness.service.createApiKey(admin, { name: "target", scopes: [...scopes] });
      let before: Record<string, number> = {};
      const { client } = await observedClient(acting.principal, async () => {
        if ("revoke" in change) await harness.service.revokeApiKey(admin, { id: acting.id });
        else await harness.service.updateApiKey(admin, { id: acting.id, scopes: [...change.scopes] });
        before = await harness.tableCounts();
        return { action: "accept" };
      });
      const error = await callError(client, tool, { id: target.id });
      expect(error).toMatchObject(expected);
      expect(await harness.tableCounts()).toEqual(before);
      expect((await harness.store.getKeyById(target.id))).toMatchObject({ revoked_at: null, replaced_by: null });
    });
  }

  it("does not ask before revoking an expired key: it stops nothing", async () => {
    const expiring = await callOk<Created>(await connectClient(harness.service, harness.principal), "create_api_key", {
      name: "short-lived",
      expires_at: "2026-06-02T12:00:00Z",
    });
    harness.clock.advance(2 * 86_400_000);
    const client = await clientAnswering("decline");
    const record = await callOk<ApiKeyRecord>(client, "revoke_api_key", { id: expiring.id, reason: "cleanup" });
    expect(record).toMatchObject({ status: "revoked", revoked_reason: "cleanup" });
    expect(asked).toHaveLength(0);
  });
});
