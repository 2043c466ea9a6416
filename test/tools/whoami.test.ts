import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Principal } from "../../src/service/principal.js";
import { connectClient } from "../helpers/harness.js";
import { callError, callOk, openWorld, type World } from "../helpers/lifecycle.js";

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(async () => {
  await world.close();
});

describe("whoami", () => {
  it("shows the acting user over stdio: not an admin, no key", async () => {
    expect(await callOk(world.aliceClient, "whoami")).toEqual({
      user_id: world.alice.userId,
      user_name: "alice",
      organization_id: world.alice.organizationId,
      transport: "stdio",
      is_admin: false,
      key_id: null,
      scopes: null,
    });
  });

  it("shows an admin as one", async () => {
    expect(await callOk(world.rootClient, "whoami")).toMatchObject({ user_name: "root", is_admin: true, user_id: world.root.userId });
  });

  it("shows the authenticating key's id and scopes when a key is used", async () => {
    const principal: Principal = { ...world.bob, transport: "http", keyId: "key_abcdefghijklmnopqrst", scopes: ["tools:read"], clientAddress: "127.0.0.1" };
    const client = await connectClient(world.harness.service, principal);
    try {
      expect(await callOk(client, "whoami")).toEqual({
        user_id: world.bob.userId,
        user_name: "bob",
        organization_id: world.bob.organizationId,
        transport: "http",
        is_admin: false,
        key_id: "key_abcdefghijklmnopqrst",
        scopes: ["tools:read"],
      });
    } finally {
      await client.close();
    }
  });

  it("takes no arguments", async () => {
    const error = await callError(world.aliceClient, "whoami", { user: "root" });
    expect(error).toMatchObject({ code: "validation_error", errors: [{ key: "user", message: "unknown field" }] });
  });
});
