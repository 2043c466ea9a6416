import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { callError, callOk, openWorld, type World } from "../helpers/lifecycle.js";

let world: World;
beforeEach(async () => {
  world = await openWorld();
});
afterEach(async () => {
  await world.close();
});

describe("list_projects", () => {
  it("is empty at first", async () => {
    expect(await callOk(world.aliceClient, "list_projects")).toEqual({ projects: [] });
  });

  it("lists every project by slug, for any user", async () => {
    const zeta = await callOk<{ id: string }>(world.rootClient, "create_project", { slug: "zeta", name: "Zeta" });
    const alpha = await callOk<{ id: string }>(world.rootClient, "create_project", { slug: "alpha", name: "Alpha", default_scopes: ["orders:read"] });
    for (const client of [world.aliceClient, world.bobClient, world.rootClient]) {
      expect(await callOk(client, "list_projects")).toEqual({
        projects: [
          {
            id: alpha.id,
            organization_id: world.root.organizationId,
            slug: "alpha",
            name: "Alpha",
            default_scopes: ["orders:read"],
            created_at: "2026-06-01T12:00:00.000Z",
          },
          {
            id: zeta.id,
            organization_id: world.root.organizationId,
            slug: "zeta",
            name: "Zeta",
            default_scopes: ["tools:read", "tools:execute"],
            created_at: "2026-06-01T12:00:00.000Z",
          },
        ],
      });
    }
  });

  it("takes no arguments", async () => {
    const error = await callError(world.aliceClient, "list_projects", { slug: "alpha" });
    expect(error).toMatchObject({ code: "validation_error", errors: [{ key: "slug", message: "unknown field" }] });
  });
});
