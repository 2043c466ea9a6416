import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Principal } from "../../src/service/principal.js";
import type { KeyEventRecord } from "../../src/service/records.js";
import { connectClient } from "../helpers/harness.js";
import { callOk, openWorld, type World } from "../helpers/lifecycle.js";

// Where another actor called from (an admin acting on your key, someone trying your revoked key)
// is for admins to see; a user sees the addresses of their own calls.

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(() => world.close());

describe("list_key_events: client addresses", () => {
  it("shows a user their own address and no one else's; an admin sees every address", async () => {
    const { service } = world.harness;
    const alice: Principal = { ...world.alice, transport: "http", clientAddress: "203.0.113.9" };
    const root: Principal = { ...world.root, transport: "http", clientAddress: "198.51.100.7" };
    const aliceClient = await connectClient(service, alice);
    const rootClient = await connectClient(service, root);
    const { id, key } = await callOk<{ id: string; key: string }>(aliceClient, "create_api_key", { name: "mine" });
    await callOk(rootClient, "revoke_api_key", { id, reason: "policy" });
    const refused = await service.authenticateKey(key, { transport: "http", clientAddress: "192.0.2.66", userAgent: "curl/8" });
    if (refused.ok) throw new Error("a revoked key authenticated");
    await service.recordAuthenticationFailure(refused, { transport: "http", clientAddress: "192.0.2.66", userAgent: "curl/8" });

    const seenBy = async (client: typeof aliceClient) =>
      (await callOk<{ events: KeyEventRecord[] }>(client, "list_key_events", { key_id: id })).events.map((event) => [event.event_type, event.client_address]);
    expect(await seenBy(aliceClient)).toEqual([
      ["key.created", "203.0.113.9"],
      ["key.revoked", null],
      ["auth.failed", null],
    ]);
    expect(await seenBy(rootClient)).toEqual([
      ["key.created", "203.0.113.9"],
      ["key.revoked", "198.51.100.7"],
      ["auth.failed", "192.0.2.66"],
    ]);
  });
});
