import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { initializeBody, MCP_HEADERS, mintKey, rawRequest, spawnHttpServer } from "../helpers/http.js";
import { runCli } from "../helpers/spawn.js";

// KEYWARDEN_PEPPER keys the hash of every key created while it is set (README, Configuration):
// without it those keys can never verify, so keywarden refuses to start rather than fail each one.

const PEPPER = "pepper-for-the-e2e-tests-0123456789";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDb(): string {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  return join(dir, "keywarden.db");
}

function mintPeppered(db: string, name: string, scopes: string): { id: string; key: string; key_prefix: string } {
  const made = runCli(["admin", "create-key", "--db", db, "--name", name, "--scopes", scopes, "--json"], { KEYWARDEN_PEPPER: PEPPER });
  expect(made.status, made.stderr).toBe(0);
  return JSON.parse(made.stdout);
}

describe("a database whose keys need KEYWARDEN_PEPPER", () => {
  it("is refused by every command that opens it without the pepper: one line, exit 2; with it, they run", () => {
    const db = tempDb();
    mintPeppered(db, "peppered", "tools:read");
    const line = `keywarden: database ${db} holds keys hashed with hmac-sha256, which needs KEYWARDEN_PEPPER: set it to the pepper those keys were created with\n`;
    for (const args of [[], ["serve", "--port", "0"], ["admin", "list-projects"], ["admin", "create-key", "--name", "x"]]) {
      const result = runCli([...args, "--db", db]);
      expect(result.status, args.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr, args.join(" ")).toBe(line);
    }
    expect(runCli(["admin", "list-projects", "--db", db], { KEYWARDEN_PEPPER: PEPPER }).status).toBe(0);
  });

  it("is refused by every command that opens it with another pepper: one line, exit 2, no key made", () => {
    const db = tempDb();
    const made = mintPeppered(db, "peppered", "tools:read");
    const line = `keywarden: KEYWARDEN_PEPPER is not the pepper database ${db} hashes its keys with: set the one its keys were created with (keys made with another would never verify)\n`;
    const wrong = { KEYWARDEN_PEPPER: `${PEPPER}-not-it` };
    for (const args of [[], ["serve", "--port", "0"], ["admin", "list-keys"], ["admin", "create-key", "--name", "x"]]) {
      const result = runCli([...args, "--db", db], wrong);
      expect(result.status, args.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr, args.join(" ")).toBe(line);
    }
    const keys = JSON.parse(runCli(["admin", "list-keys", "--db", db, "--json"], { KEYWARDEN_PEPPER: PEPPER }).stdout) as { id: string }[];
    expect(keys.map((key) => key.id)).toEqual([made.id]);
  });

  it("names an algorithm this build cannot compute", () => {
    const db = tempDb();
    mintKey(db, "someone", "k", "tools:read");
    const raw = new Database(db);
    raw.prepare("UPDATE api_keys SET hash_algorithm = 'argon2id'").run();
    raw.close();
    const result = runCli(["admin", "list-projects", "--db", db], { KEYWARDEN_PEPPER: PEPPER });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(`keywarden: database ${db} holds keys hashed with "argon2id", which this keywarden cannot compute: upgrade keywarden\n`);
  });

  it("answers a key added later that needs the missing pepper as a failed verification (401, audited, limited), never 500", async () => {
    const db = tempDb();
    const gateway = mintKey(db, "gateway", "gw", "keys:verify");
    const server = await spawnHttpServer(["--db", db, "--auth-failure-limit", "2"]);
    cleanups.push(() => server.stop());
    const peppered = mintPeppered(db, "peppered", "tools:read"); // another process, with the pepper, while the server runs

    const verified = await rawRequest(`${server.base}/v1/keys/verify`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${gateway.key}` },
      body: JSON.stringify({ key: peppered.key }),
    });
    expect(verified.status).toBe(200);
    expect(verified.json()).toMatchObject({ valid: false, code: "not_found", key_id: null });

    const statuses: number[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const mcp = await rawRequest(server.url, {
        method: "POST",
        headers: { ...MCP_HEADERS, Authorization: `Bearer ${peppered.key}` },
        body: initializeBody(),
      });
      statuses.push(mcp.status);
      if (mcp.status === 401) expect(mcp.headers["www-authenticate"]).toMatch(/^Bearer realm="keywarden", error="invalid_token"/);
    }
    // Counted as failures like any bad key: the third from this address meets the limit of 2.
    expect(statuses).toEqual([401, 401, 429]);

    // Failures are written in batches, at most a second late.
    const failed = await vi.waitFor(() => {
      const check = new Database(db, { readonly: true });
      const rows = check.prepare("SELECT detail FROM key_events WHERE event_type = 'auth.failed' ORDER BY rowid").all() as { detail: string }[];
      check.close();
      if (rows.length < 2) throw new Error(`${rows.length} auth.failed rows so far`);
      return rows;
    }, { timeout: 5000, interval: 100 });
    expect(failed.slice(0, 2).map((row) => JSON.parse(row.detail))).toEqual([
      expect.objectContaining({ reason: "not_found", key_prefix: peppered.key_prefix }),
      expect.objectContaining({ reason: "not_found", key_prefix: peppered.key_prefix }),
    ]);
    expect(server.stderr()).not.toContain(peppered.key.slice(peppered.key_prefix.length));
  });
});
