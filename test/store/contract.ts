// The KeyStore contract: what every store implementation must do, through the KeyStore interface
// alone (no SQL, no engine handle), so that the same suite runs unchanged against each engine.
// A store holds no rule: the deciders here are small stand-ins, the real ones are in src/service.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  ApiKeyRow,
  CurrentRows,
  Decision,
  KeyEventRow,
  KeyStore,
  OrganizationRow,
  PlannedEvent,
  ProjectRow,
  UserRow,
  WritePlan,
} from "../../src/store/types.js";

/** A fresh, empty store, and how to dispose of it. */
export interface OpenedStore {
  store: KeyStore;
  close(): Promise<void>;
}

const T0 = "2026-06-01T12:00:00.000Z";
const at = (seconds: number): string => new Date(Date.parse(T0) + seconds * 1000).toISOString();
const EMPTY_PLAN: WritePlan = { insertKeys: [], updateKeys: [], events: [] };

export function describeKeyStoreContract(name: string, openStore: () => Promise<OpenedStore>): void {
  describe(`KeyStore contract: ${name}`, () => {
    let opened: OpenedStore;
    let store: KeyStore;
    let org: OrganizationRow;
    let alice: UserRow;
    let bob: UserRow;
    let serial = 0;

    beforeEach(async () => {
      opened = await openStore();
      store = opened.store;
      org = await store.ensureDefaultOrganization(T0);
      alice = await store.ensureUser(org.id, "alice", T0);
      bob = await store.ensureUser(org.id, "bob", T0);
    });
    afterEach(async () => {
      await opened.close();
    });

    /** A whole key row of `owner`, distinct from every other this suite makes. */
    function keyRow(owner: UserRow, fields: Partial<ApiKeyRow> = {}): ApiKeyRow {
      const n = String(++serial).padStart(12, "0");
      return {
        id: `key_contract${n}`,
        organization_id: org.id,
        user_id: owner.id,
        project_id: null,
        name: `key ${n}`,
        description: null,
        key_prefix: `kw_${n}`,
        key_hash: Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + serial) % 256),
        hash_algorithm: "sha256",
        scopes: ["tools:read"],
        created_at: T0,
        created_by_user_id: owner.id,
        created_by_key_id: null,
        expires_at: at(3600),
        last_used_at: null,
        last_used_ip: null,
        last_used_user_agent: null,
        revoked_at: null,
        revoked_reason: null,
        rotated_from: null,
        replaced_by: null,
        ...fields,
      };
    }

    function event(keyId: string | null, eventType: string, occurredAt = T0, detail: Record<string, unknown> = {}): PlannedEvent {
      return {
        organization_id: org.id,
        key_id: keyId,
        event_type: eventType,
        actor_user_id: alice.id,
        actor_key_id: null,
        transport: "library",
        client_address: "203.0.113.7",
        occurred_at: occurredAt,
        detail,
      };
    }

    /** Inserts keys through a decider that always plans them (and one event each). */
    async function insert(...keys: ApiKeyRow[]): Promise<void> {
      const outcome = await store.write({ keyIds: [] }, () => ({
        ok: true,
        plan: { insertKeys: keys, updateKeys: [], events: keys.map((key) => event(key.id, "key.created")) },
        result: null,
      }));
      expect(outcome).toEqual({ ok: true, result: null });
    }

    /** The rows a decider is handed for these reads, and nothing written. */
    async function rowsFor(keyIds: string[], activeKeysOf?: { userId: string; now: string }): Promise<CurrentRows> {
      let seen: CurrentRows | undefined;
      await store.write({ keyIds, activeKeysOf }, (rows) => {
        seen = rows;
        return { ok: false, refusal: "look only" };
      });
      return seen!;
    }

    describe("organizations and users", () => {
      it("creates the default organization and a user once, and reads users back", async () => {
        expect(await store.ensureDefaultOrganization(at(5))).toEqual(org);
        expect(await store.ensureUser(org.id, "alice", at(5))).toEqual(alice);
        expect(alice).toMatchObject({ organization_id: org.id, name: "alice", created_at: T0 });
        expect(alice.id).not.toBe(bob.id);
        expect(await store.getUserById(bob.id)).toEqual(bob);
        expect(await store.getUserById("usr_nobody")).toBeNull();
      });

      it("lists users by name, each with the keys the cap counts", async () => {
        await insert(keyRow(bob), keyRow(bob), keyRow(bob, { revoked_at: T0 }));
        const users = await store.listUsers(org.id, T0);
        expect(users.map((user) => [user.name, user.active_keys])).toEqual([
          ["alice", 0],
          ["bob", 2],
        ]);
        expect(users[1]).toMatchObject({ id: bob.id, organization_id: org.id, created_at: T0 });
      });
    });

    describe("projects", () => {
      const project = (slug: string, fields: Partial<ProjectRow> = {}): ProjectRow => ({
        id: `prj_${slug.replace(/-/g, "")}`,
        organization_id: org.id,
        slug,
        name: `Project ${slug}`,
        default_scopes: ["orders:read", "orders:write"],
        created_at: T0,
        ...fields,
      });
      const projectEvent = (id: string, projectId: string): KeyEventRow => ({ id, ...event(null, "project.created", T0, { project_id: projectId }) });

      it("inserts a project with its event, and finds it by id or by slug", async () => {
        const web = project("web");
        expect(await store.insertProject(web, projectEvent("evt_contract_p1", web.id))).toEqual({ ok: true });
        expect(await store.findProject(org.id, web.id)).toEqual(web);
        expect(await store.findProject(org.id, "web")).toEqual(web);
        expect(await store.findProject(org.id, "nope")).toBeNull();
        expect(await store.findProject("org_other", "web")).toBeNull();
        const events = await store.listKeyEvents({ organizationId: org.id, keyId: null, ownerUserId: null, after: null, limit: 10 });
        expect(events.map((entry) => entry.event.id)).toEqual(["evt_contract_p1"]);
      });

      it("refuses a second project with the same slug or id, writing nothing", async () => {
        await store.insertProject(project("web"), projectEvent("evt_contract_p1", "prj_web"));
        expect(await store.insertProject(project("web", { id: "prj_other" }), projectEvent("evt_contract_p2", "prj_other"))).toEqual({ ok: false, reason: "conflict" });
        expect(await store.insertProject(project("other", { id: "prj_web" }), projectEvent("evt_contract_p3", "prj_web"))).toEqual({ ok: false, reason: "conflict" });
        expect((await store.listProjects(org.id)).map((p) => p.id)).toEqual(["prj_web"]);
        const events = await store.listKeyEvents({ organizationId: org.id, keyId: null, ownerUserId: null, after: null, limit: 10 });
        expect(events.map((entry) => entry.event.id)).toEqual(["evt_contract_p1"]);
      });

      it("lists projects by slug", async () => {
        for (const [i, slug] of ["zeta", "alpha", "mid-one"].entries()) await store.insertProject(project(slug), projectEvent(`evt_contract_p${i}`, `prj_${slug}`));
        expect((await store.listProjects(org.id)).map((p) => p.slug)).toEqual(["alpha", "mid-one", "zeta"]);
        expect(await store.listProjects("org_other")).toEqual([]);
      });
    });

    describe("reads of keys", () => {
      it("gives a key back whole, by id and by prefix, and null for an unknown one", async () => {
        const key = keyRow(alice, { description: "d", scopes: ["a:b", "c"], created_by_key_id: "key_creator" });
        await insert(key);
        expect(await store.getKeyById(key.id)).toEqual(key);
        expect(await store.getKeyByPrefix(key.key_prefix)).toEqual(key);
        expect(await store.getKeyById("key_unknown")).toBeNull();
        expect(await store.getKeyByPrefix("kw_unknown")).toBeNull();
      });

      it("keeps a key that never expires, and an unknown hash algorithm, as written", async () => {
        const key = keyRow(alice, { expires_at: null, hash_algorithm: "argon2id" as ApiKeyRow["hash_algorithm"] });
        await insert(key);
        expect(await store.getKeyById(key.id)).toEqual(key);
      });

      it("reads what verification needs by prefix", async () => {
        const key = keyRow(alice, { project_id: null, scopes: ["x"], revoked_at: at(1) });
        await insert(key);
        const found = await store.findKeyForVerification(key.key_prefix);
        expect({ ...found, key_hash: new Uint8Array(found!.key_hash) }).toEqual({
          id: key.id,
          organization_id: org.id,
          user_id: alice.id,
          project_id: null,
          key_prefix: key.key_prefix,
          key_hash: key.key_hash,
          hash_algorithm: "sha256",
          scopes: ["x"],
          expires_at: key.expires_at,
          revoked_at: at(1),
          last_used_at: null,
          last_used_ip: null,
          last_used_user_agent: null,
        });
        // With its last use, which a verification cache compares new uses with.
        await store.recordKeyUse(key.id, { at: at(2), ip: "10.0.0.1", userAgent: "gw/1" });
        expect(await store.findKeyForVerification(key.key_prefix)).toMatchObject({ last_used_at: at(2), last_used_ip: "10.0.0.1", last_used_user_agent: "gw/1" });
        expect(await store.findKeyForVerification("kw_unknown")).toBeNull();
      });

      it("reads the standings of many keys at once, leaving unknown ids out", async () => {
        const a = keyRow(alice, { scopes: ["s1"] });
        const b = keyRow(bob, { revoked_at: at(2), expires_at: null });
        await insert(a, b);
        const standings = await store.getKeyStandings([b.id, "key_unknown", a.id]);
        expect(standings.sort((x, y) => x.id.localeCompare(y.id))).toEqual(
          [
            { id: a.id, scopes: ["s1"], expires_at: a.expires_at, revoked_at: null },
            { id: b.id, scopes: ["tools:read"], expires_at: null, revoked_at: at(2) },
          ].sort((x, y) => x.id.localeCompare(y.id)),
        );
        expect(await store.getKeyStandings([])).toEqual([]);
      });

      it("keeps the first pepper fingerprint recorded, and answers it to every later one", async () => {
        // Reading records nothing.
        expect(await store.pepperFingerprint()).toBeNull();
        expect(await store.pepperFingerprint()).toBeNull();
        expect(await store.recordPepperFingerprint("aa11", "2026-01-01T00:00:00.000Z")).toBe("aa11");
        expect(await store.pepperFingerprint()).toBe("aa11");
        expect(await store.recordPepperFingerprint("bb22", "2026-01-02T00:00:00.000Z")).toBe("aa11");
        expect(await store.recordPepperFingerprint("aa11", "2026-01-03T00:00:00.000Z")).toBe("aa11");
      });

      it("lists the hash algorithms in use, each once", async () => {
        expect(await store.listHashAlgorithms()).toEqual([]);
        await insert(keyRow(alice), keyRow(alice), keyRow(bob, { hash_algorithm: "hmac-sha256" }));
        expect((await store.listHashAlgorithms()).sort()).toEqual(["hmac-sha256", "sha256"]);
      });
    });

    describe("writes through deciders", () => {
      it("hands the decider the named keys as they are now, and the cap's count when asked", async () => {
        const a = keyRow(alice);
        await insert(a, keyRow(alice));
        const rows = await rowsFor([a.id, "key_unknown"]);
        expect([...rows.keys.keys()]).toEqual([a.id]);
        expect(rows.keys.get(a.id)).toEqual(a);
        expect(rows.activeKeys).toBeNull();
        expect((await rowsFor([], { userId: alice.id, now: T0 })).activeKeys).toBe(2);
        expect((await rowsFor([], { userId: bob.id, now: T0 })).activeKeys).toBe(0);
      });

      it("commits a plan's inserts, updates and events together, and hands back the decider's result", async () => {
        const old = keyRow(alice);
        await insert(old);
        const successor = keyRow(alice, { rotated_from: old.id });
        const outcome = await store.write({ keyIds: [old.id] }, (rows): Decision<string, never> => ({
          ok: true,
          // The update names the key the same plan inserts: inserts come first.
          plan: {
            insertKeys: [successor],
            updateKeys: [{ id: old.id, set: { replaced_by: successor.id, expires_at: at(60) } }],
            events: [event(old.id, "key.rotated", T0, { n: 1 }), event(successor.id, "key.rotated", T0, { n: 2 })],
          },
          result: rows.keys.get(old.id)!.name,
        }));
        expect(outcome).toEqual({ ok: true, result: old.name });
        expect(await store.getKeyById(successor.id)).toEqual(successor);
        expect(await store.getKeyById(old.id)).toEqual({ ...old, replaced_by: successor.id, expires_at: at(60) });
        const events = [...(await store.listEvents(old.id)), ...(await store.listEvents(successor.id))];
        expect(events.map((e) => [e.key_id, e.event_type, e.detail])).toEqual([
          [old.id, "key.created", {}],
          [old.id, "key.rotated", { n: 1 }],
          [successor.id, "key.rotated", { n: 2 }],
        ]);
        // The store names each planned event, every one differently.
        expect(new Set(events.map((e) => e.id)).size).toBe(3);
        expect(events[1]).toMatchObject({ organization_id: org.id, actor_user_id: alice.id, transport: "library", client_address: "203.0.113.7", occurred_at: T0 });
      });

      it("changes exactly the columns an update names, nulls included", async () => {
        const key = keyRow(alice, { description: "before", revoked_reason: null });
        await insert(key);
        await store.write({ keyIds: [] }, () => ({
          ok: true,
          plan: { ...EMPTY_PLAN, updateKeys: [{ id: key.id, set: { description: null, scopes: ["n1", "n2"], revoked_at: at(9), revoked_reason: "why" } }] },
          result: null,
        }));
        expect(await store.getKeyById(key.id)).toEqual({ ...key, description: null, scopes: ["n1", "n2"], revoked_at: at(9), revoked_reason: "why" });
        await store.write({ keyIds: [] }, () => ({ ok: true, plan: { ...EMPTY_PLAN, updateKeys: [{ id: key.id, set: { name: "renamed", expires_at: null } }] }, result: null }));
        expect(await store.getKeyById(key.id)).toEqual({ ...key, name: "renamed", expires_at: null, description: null, scopes: ["n1", "n2"], revoked_at: at(9), revoked_reason: "why" });
      });

      it("writes nothing on a refusal, and hands the refusal back as it was", async () => {
        const refusal = { why: "no" };
        const outcome = await store.write({ keyIds: [] }, (): Decision<never, typeof refusal> => ({ ok: false, refusal }));
        expect(outcome).toEqual({ ok: false, refusal });
        expect((outcome as { refusal: unknown }).refusal).toBe(refusal);
        expect(await store.countActiveKeys(alice.id, T0)).toBe(0);
        expect(await store.listKeyEvents({ organizationId: org.id, keyId: null, ownerUserId: null, after: null, limit: 10 })).toEqual([]);
      });

      it("writes nothing when the decider throws, and rethrows what it threw", async () => {
        const key = keyRow(alice);
        await insert(key);
        const thrown = new Error("decider failed");
        await expect(store.write({ keyIds: [key.id] }, () => { throw thrown; })).rejects.toBe(thrown);
        expect(await store.getKeyById(key.id)).toEqual(key);
      });

      it("writes nothing of a plan whose write fails part-way (a duplicate prefix)", async () => {
        const existing = keyRow(alice);
        await insert(existing);
        const first = keyRow(alice);
        const clash = keyRow(alice, { key_prefix: existing.key_prefix });
        await expect(
          store.write({ keyIds: [] }, () => ({
            ok: true,
            plan: { insertKeys: [first, clash], updateKeys: [{ id: existing.id, set: { name: "changed" } }], events: [event(first.id, "key.created")] },
            result: null,
          })),
        ).rejects.toThrow();
        expect(await store.getKeyById(first.id)).toBeNull();
        expect(await store.getKeyById(existing.id)).toEqual(existing);
        expect(await store.listEvents(first.id)).toEqual([]);
      });

      it("serialises concurrent writes: a cap decided on the count holds when they race", async () => {
        const cap = 3;
        const attempts = Array.from({ length: 12 }, () => keyRow(alice));
        const outcomes = await Promise.all(
          attempts.map((key) =>
            store.write({ keyIds: [], activeKeysOf: { userId: alice.id, now: T0 } }, (rows): Decision<string, number> =>
              rows.activeKeys! >= cap ? { ok: false, refusal: rows.activeKeys! } : { ok: true, plan: { ...EMPTY_PLAN, insertKeys: [key] }, result: key.id },
            ),
          ),
        );
        expect(outcomes.filter((o) => o.ok)).toHaveLength(cap);
        expect(outcomes.filter((o) => !o.ok).map((o) => (o as { refusal: number }).refusal)).toEqual(Array(12 - cap).fill(cap));
        expect(await store.countActiveKeys(alice.id, T0)).toBe(cap);
      });

      it("serialises concurrent writes: of racing decisions on one row, one sees it unchanged", async () => {
        const key = keyRow(alice);
        await insert(key);
        const outcomes = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            store.write({ keyIds: [key.id] }, (rows): Decision<number, string> =>
              rows.keys.get(key.id)!.revoked_at !== null
                ? { ok: false, refusal: "already" }
                : { ok: true, plan: { ...EMPTY_PLAN, updateKeys: [{ id: key.id, set: { revoked_at: at(i), revoked_reason: `r${i}` } }] }, result: i },
            ),
          ),
        );
        expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
        const winner = (outcomes.find((o) => o.ok) as { result: number }).result;
        expect(await store.getKeyById(key.id)).toMatchObject({ revoked_at: at(winner), revoked_reason: `r${winner}` });
      });
    });

    describe("the cap's count", () => {
      it("counts active keys not replaced by a rotation; expires_at at now is expired", async () => {
        await insert(
          keyRow(alice),
          keyRow(alice, { expires_at: null }),
          keyRow(alice, { expires_at: at(1) }),
          keyRow(alice, { expires_at: T0 }),
          keyRow(alice, { expires_at: at(-1) }),
          keyRow(alice, { revoked_at: at(-10) }),
          keyRow(bob),
        );
        const successor = keyRow(alice);
        const replaced = keyRow(alice);
        await insert(successor, replaced);
        await store.write({ keyIds: [] }, () => ({ ok: true, plan: { ...EMPTY_PLAN, updateKeys: [{ id: replaced.id, set: { replaced_by: successor.id } }] }, result: null }));
        expect(await store.countActiveKeys(alice.id, T0)).toBe(4);
        expect(await store.countActiveKeys(alice.id, at(1))).toBe(3);
        expect((await rowsFor([], { userId: alice.id, now: at(1) })).activeKeys).toBe(3);
        expect(await store.countActiveKeys(bob.id, T0)).toBe(1);
        expect(await store.countActiveKeys("usr_nobody", T0)).toBe(0);
      });
    });

    describe("listing keys", () => {
      it("filters by status at the given instant, by owner and by project", async () => {
        const web: ProjectRow = { id: "prj_web", organization_id: org.id, slug: "web", name: "Web", default_scopes: ["a"], created_at: T0 };
        await store.insertProject(web, { id: "evt_contract_web", ...event(null, "project.created") });
        const active = keyRow(alice, { project_id: web.id });
        const edge = keyRow(alice, { expires_at: at(10) });
        const revoked = keyRow(alice, { revoked_at: at(-1), expires_at: at(-100) });
        const expired = keyRow(alice, { expires_at: at(-1) });
        const bobs = keyRow(bob, { expires_at: null });
        await insert(active, edge, revoked, expired, bobs);
        const list = (status: "active" | "revoked" | "expired" | "all", now: string, userId: string | null = null, projectId: string | null = null) =>
          store.listKeys({ organizationId: org.id, userId, projectId, status, now, after: null, limit: 50 }).then((rows) => rows.map((row) => row.id).sort());
        expect(await list("active", T0)).toEqual([active.id, edge.id, bobs.id].sort());
        // At its expiry instant a key is expired: the one definition (store/instants.ts).
        expect(await list("active", at(10))).toEqual([active.id, bobs.id].sort());
        expect(await list("expired", at(10))).toEqual([edge.id, expired.id].sort());
        expect(await list("revoked", at(10))).toEqual([revoked.id]);
        expect(await list("all", T0)).toEqual([active.id, edge.id, revoked.id, expired.id, bobs.id].sort());
        expect(await list("all", T0, bob.id)).toEqual([bobs.id]);
        expect(await list("all", T0, null, web.id)).toEqual([active.id]);
        expect(await list("all", T0, bob.id, web.id)).toEqual([]);
        expect(await store.listKeys({ organizationId: "org_other", userId: null, projectId: null, status: "all", now: T0, after: null, limit: 50 })).toEqual([]);
        expect((await store.listKeys({ organizationId: org.id, userId: alice.id, projectId: null, status: "all", now: T0, after: null, limit: 50 })).find((row) => row.id === active.id)).toEqual(active);
      });

      it("pages in (created_at, id) order, strictly after the position, at most limit rows", async () => {
        const keys = [at(3), at(1), at(2), at(1), at(3), at(1)].map((created) => keyRow(alice, { created_at: created }));
        await insert(...keys);
        const order = [...keys].sort((a, b) => (a.created_at === b.created_at ? (a.id < b.id ? -1 : 1) : a.created_at < b.created_at ? -1 : 1)).map((k) => k.id);
        const seen: string[] = [];
        let after: { at: string; id: string } | null = null;
        for (;;) {
          const page = await store.listKeys({ organizationId: org.id, userId: null, projectId: null, status: "all", now: T0, after, limit: 4 });
          expect(page.length).toBeLessThanOrEqual(4);
          if (page.length === 0) break;
          seen.push(...page.map((row) => row.id));
          const last = page.at(-1)!;
          after = { at: last.created_at, id: last.id };
        }
        expect(seen).toEqual(order);
        const afterSecond = await store.listKeys({ organizationId: org.id, userId: null, projectId: null, status: "all", now: T0, after: { at: at(1), id: order[1]! }, limit: 50 });
        expect(afterSecond.map((row) => row.id)).toEqual(order.slice(2));
      });
    });

    describe("last use", () => {
      it("records a use, keeps the newest, and ignores a use of an unknown key", async () => {
        const key = keyRow(alice);
        await insert(key);
        await store.recordKeyUse(key.id, { at: at(10), ip: "10.0.0.2", userAgent: "new" });
        await store.recordKeyUse(key.id, { at: at(5), ip: "10.0.0.1", userAgent: "old" });
        await store.recordKeyUse("key_unknown", { at: at(20), ip: null, userAgent: null });
        expect(await store.getKeyById(key.id)).toEqual({ ...key, last_used_at: at(10), last_used_ip: "10.0.0.2", last_used_user_agent: "new" });
        await store.recordKeyUse(key.id, { at: at(10), ip: "10.0.0.3", userAgent: null });
        expect(await store.getKeyById(key.id)).toMatchObject({ last_used_at: at(10), last_used_ip: "10.0.0.3", last_used_user_agent: null });
      });

      it("records many uses at once, each as one use would be", async () => {
        const a = keyRow(alice);
        const b = keyRow(bob);
        await insert(a, b);
        await store.recordKeyUses([
          [a.id, { at: at(3), ip: "1.1.1.1", userAgent: "a3" }],
          [b.id, { at: at(2), ip: null, userAgent: "b2" }],
          ["key_unknown", { at: at(9), ip: null, userAgent: null }],
          [a.id, { at: at(1), ip: "1.1.1.0", userAgent: "a1" }],
        ]);
        await store.recordKeyUses([]);
        expect(await store.getKeyById(a.id)).toMatchObject({ last_used_at: at(3), last_used_ip: "1.1.1.1", last_used_user_agent: "a3" });
        expect(await store.getKeyById(b.id)).toMatchObject({ last_used_at: at(2), last_used_ip: null, last_used_user_agent: "b2" });
      });

      it("keeps last use apart from a key's writes", async () => {
        const key = keyRow(alice);
        await insert(key);
        await store.recordKeyUse(key.id, { at: at(4), ip: null, userAgent: "ua" });
        await store.write({ keyIds: [] }, () => ({ ok: true, plan: { ...EMPTY_PLAN, updateKeys: [{ id: key.id, set: { name: "n" } }] }, result: null }));
        expect(await store.getKeyById(key.id)).toMatchObject({ name: "n", last_used_at: at(4), last_used_user_agent: "ua" });
      });
    });

    describe("events", () => {
      const row = (id: string, keyId: string | null, occurredAt: string, fields: Partial<KeyEventRow> = {}): KeyEventRow => ({ id, ...event(keyId, "auth.failed", occurredAt), ...fields });

      it("appends events alone or together, and lists a key's in (occurred_at, insertion) order", async () => {
        const key = keyRow(alice);
        await insert(key);
        await store.appendEvent(row("evt_c1", key.id, at(5), { detail: { why: "x" }, actor_user_id: null, client_address: null }));
        await store.appendEvents([row("evt_c2", key.id, at(1)), row("evt_c3", key.id, at(5)), row("evt_c4", null, at(2))]);
        await store.appendEvents([]);
        const events = await store.listEvents(key.id);
        expect(events.map((e) => e.id).slice(1)).toEqual(["evt_c2", "evt_c1", "evt_c3"]);
        expect(events[2]).toEqual(row("evt_c1", key.id, at(5), { detail: { why: "x" }, actor_user_id: null, client_address: null }));
      });

      it("lists the audit log by key, by owner, after a position, in pages", async () => {
        const a = keyRow(alice);
        const b = keyRow(bob);
        await insert(a, b);
        await store.appendEvents([row("evt_c1", a.id, at(1)), row("evt_c2", b.id, at(1)), row("evt_c3", null, at(1)), row("evt_c4", a.id, at(2))]);
        const list = (query: Partial<Parameters<KeyStore["listKeyEvents"]>[0]>) =>
          store.listKeyEvents({ organizationId: org.id, keyId: null, ownerUserId: null, after: null, limit: 50, ...query });
        const all = await list({});
        expect(all.map((e) => e.event.event_type)).toEqual(["key.created", "key.created", "auth.failed", "auth.failed", "auth.failed", "auth.failed"]);
        expect(all.slice(2).map((e) => e.event.id)).toEqual(["evt_c1", "evt_c2", "evt_c3", "evt_c4"]);
        const seqs = all.map((e) => e.seq);
        expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(seqs.length);
        expect((await list({ keyId: a.id })).map((e) => e.event.key_id)).toEqual([a.id, a.id, a.id]);
        // A user's view: events of keys it owns (an event naming no key is nobody's).
        expect((await list({ ownerUserId: bob.id })).map((e) => e.event.id).slice(1)).toEqual(["evt_c2"]);
        expect(await list({ organizationId: "org_other" })).toEqual([]);
        const third = all[2]!;
        expect((await list({ after: { at: third.event.occurred_at, seq: third.seq } })).map((e) => e.event.id)).toEqual(["evt_c2", "evt_c3", "evt_c4"]);
        expect((await list({ limit: 2 })).map((e) => e.seq)).toEqual(seqs.slice(0, 2));
      });
    });

    it("answers a ping", async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
