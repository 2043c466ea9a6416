import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY } from "../../src/service/policy.js";
import type { Principal } from "../../src/service/principal.js";
import type { ApiKeyRecord } from "../../src/service/records.js";
import { KeyService } from "../../src/service/service.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import { connectClient, TestClock } from "../helpers/harness.js";
import { callOk } from "../helpers/lifecycle.js";

const keyArb = fc.record({
  owner: fc.nat({ max: 2 }),
  project: fc.option(fc.nat({ max: 1 }), { nil: null }),
  // Few distinct instants, so that many keys share a created_at and the id must break ties.
  createdStep: fc.nat({ max: 3 }),
  state: fc.constantFrom("active", "revoked", "expired", "never-expires"),
});

const scenarioArb = fc.record({
  keys: fc.array(keyArb, { maxLength: 24 }),
  viewer: fc.nat({ max: 3 }), // 0-2: an ordinary user, 3: the admin
  status: fc.constantFrom(undefined, "active", "revoked", "expired", "all"),
  project: fc.option(fc.nat({ max: 1 }), { nil: null }),
  limit: fc.integer({ min: 1, max: 7 }),
});

describe("list_api_keys pagination (property)", () => {
  it("walking the pages returns every matching key exactly once, in (created_at, id) order", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (scenario) => {
        const store = SqliteKeyStore.open({ path: ":memory:" });
        const clock = new TestClock();
        const start = clock.current.getTime();
        const service = new KeyService({
          store,
          clock: clock.now,
          config: { policy: { ...DEFAULT_POLICY, maxActiveKeysPerUser: 1000, defaultExpiryDays: 90, maxExpiryDays: null }, keyBrand: "kw" },
        });
        try {
          const users: Principal[] = [];
          for (const name of ["u0", "u1", "u2"]) users.push(await service.localPrincipal({ userName: name, transport: "stdio", isAdmin: false }));
          const admin = await service.localPrincipal({ userName: "admin", transport: "stdio", isAdmin: true });
          const projects = [await service.createProject(admin, { slug: "p0", name: "P0" }), await service.createProject(admin, { slug: "p1", name: "P1" })];

          const made: { id: string; owner: number; project: number | null; created_at: string; state: string }[] = [];
          for (const key of [...scenario.keys].sort((a, b) => a.createdStep - b.createdStep)) {
            clock.current = new Date(start + key.createdStep * 1000);
            const owner = users[key.owner]!;
            const created = await service.createApiKey(owner, {
              name: "k",
              ...(key.project === null ? {} : { project_reference: projects[key.project]!.slug }),
              ...(key.state === "expired" ? { expires_at: new Date(start + 10_000).toISOString() } : {}),
            });
            if (key.state === "never-expires") await service.updateApiKey(admin, { id: created.id, expires_at: "9999-01-01T00:00:00Z" });
            if (key.state === "revoked") await service.revokeApiKey(owner, { id: created.id });
            made.push({ id: created.id, owner: key.owner, project: key.project, created_at: created.created_at, state: key.state });
          }
          clock.current = new Date(start + 60_000);

          const viewer = scenario.viewer === 3 ? admin : users[scenario.viewer]!;
          const status = scenario.status ?? "active";
          const expected = made
            .filter((key) => scenario.viewer === 3 || key.owner === scenario.viewer)
            .filter((key) => scenario.project === null || key.project === scenario.project)
            .filter((key) => status === "all" || (key.state === "never-expires" ? "active" : key.state) === status)
            .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1))
            .map((key) => key.id);

          const client = await connectClient(service, viewer);
          try {
            const seen: string[] = [];
            let cursor: string | null = null;
            let pages = 0;
            do {
              const page: { keys: ApiKeyRecord[]; next_cursor: string | null } = await callOk(client, "list_api_keys", {
                limit: scenario.limit,
                ...(scenario.status ? { status: scenario.status } : {}),
                ...(scenario.project === null ? {} : { project_reference: `p${scenario.project}` }),
                ...(cursor ? { cursor } : {}),
              });
              expect(page.keys.length).toBeLessThanOrEqual(scenario.limit);
              // Only the last page is short, and only the last page has no cursor.
              if (page.next_cursor !== null) expect(page.keys).toHaveLength(scenario.limit);
              for (const key of page.keys) if (status !== "all") expect(key.status).toBe(status);
              seen.push(...page.keys.map((key) => key.id));
              cursor = page.next_cursor;
              pages++;
            } while (cursor !== null && pages <= 100);
            expect(seen).toEqual(expected);
            expect(pages).toBe(Math.max(1, Math.ceil(expected.length / scenario.limit)));
          } finally {
            await client.close();
          }
        } finally {
          await store.close();
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});
