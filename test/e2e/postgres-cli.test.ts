import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { secretOf } from "../helpers/harness.js";
import { rawRequest, spawnHttpServer } from "../helpers/http.js";
import { findPgBin, freePort, startPgCluster, type PgCluster } from "../helpers/pg-cluster.mjs";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";
import { runCli, spawnStdioServer } from "../helpers/spawn.js";

// The built binary on PostgreSQL (--db postgres://…): the admin commands, a stdio session and
// serve, and what an operator sees when the database cannot be used: one line, exit 2, never a
// password or a stack trace.

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh database's URL with a password added: the test server trusts every connection, so any password works, and none may show. */
async function databaseUrl(password = "hunter2-in-the-url"): Promise<string> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const url = new URL(db.url);
  url.password = password;
  return url.toString();
}

const masked = (url: string) => url.replace(/:[^:@/]+@/, ":***@");

async function tableNames(url: string): Promise<string[]> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    const rows = await sql<{ name: string }[]>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1`;
    return rows.map((row) => row.name);
  } finally {
    await sql.end();
  }
}


describe.skipIf(!PG_URL)("keywarden on PostgreSQL (spawned binary)", () => {
  it("admin create-key, list-keys, revoke-key, list-users and list-events work on a postgres:// URL", async () => {
    const url = await databaseUrl();
    const cli = (args: string[]) => runCli(args, { KEYWARDEN_USER: "operator" });
    const made = cli(["admin", "create-key", "--db", url, "--name", "bootstrap", "--scopes", "admin", "--user", "ops", "--json"]);
    expect(made.status, made.stderr).toBe(0);
    const key = JSON.parse(made.stdout) as { id: string; key: string; scopes: string[] };
    expect(key.scopes).toEqual(["admin"]);

    const listed = cli(["admin", "list-keys", "--db", url, "--json"]);
    expect(listed.status, listed.stderr).toBe(0);
    const keys = JSON.parse(listed.stdout) as { id: string; status: string }[];
    expect(keys.map((k) => [k.id, k.status])).toEqual([[key.id, "active"]]);
    expect(listed.stdout).not.toContain(secretOf(key.key));

    const users = JSON.parse(cli(["admin", "list-users", "--db", url, "--json"]).stdout) as { name: string; active_keys: number }[];
    expect(users.map((user) => [user.name, user.active_keys]).sort()).toEqual([["operator", 0], ["ops", 1]]);

    const revoked = cli(["admin", "revoke-key", key.id, "--db", url, "--reason", "rotated out", "--json"]);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ id: key.id, status: "revoked", revoked_reason: "rotated out" });

    const events = JSON.parse(cli(["admin", "list-events", "--db", url, "--key-id", key.id, "--json"]).stdout) as { event_type: string }[];
    expect(events.map((event) => event.event_type)).toEqual(["key.created", "key.revoked"]);
    // The URL's password appears in no output of any of them.
    for (const result of [made, listed, revoked]) expect(result.stdout + result.stderr).not.toContain("hunter2");
  });

  it("a command that only reads refuses a database without keywarden's schema and creates none there", async () => {
    const url = await databaseUrl();
    const result = runCli(["admin", "list-keys", "--db", url]);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(`keywarden: database ${masked(url)} has no keywarden schema (--db / KEYWARDEN_DB): this command creates none; check the URL\n`);
    expect(await tableNames(url)).toEqual([]);
  });

  it("serves MCP over stdio on it, naming the database without its password", async () => {
    const url = await databaseUrl();
    const server = await spawnStdioServer(["--db", url, "--user", "dana", "--pg-pool-size", "2", "--pg-statement-timeout", "2000"]);
    cleanups.push(() => server.close());
    const created = await server.client.callTool({ name: "create_api_key", arguments: { name: "over stdio" } });
    const key = (created.structuredContent as { id: string; key: string }).key;
    const verified = await server.client.callTool({ name: "verify_api_key", arguments: { key } });
    expect(verified.structuredContent).toMatchObject({ valid: true, code: "valid" });
    const listed = await server.client.callTool({ name: "list_api_keys", arguments: {} });
    expect((listed.structuredContent as { keys: { name: string }[] }).keys.map((k) => k.name)).toEqual(["over stdio"]);
    const ready = JSON.parse(server.stderr().trim().split("\n")[0]!);
    expect(ready).toMatchObject({ msg: "keywarden stdio server ready", db: masked(url), user: "dana" });
    expect(server.stderr()).not.toContain("hunter2");
    expect(server.stderr()).not.toContain(secretOf(key));
  });

  it("serve verifies on it what admin create-key minted, and says the database answers", async () => {
    const url = await databaseUrl();
    const gateway = runCli(["admin", "create-key", "--db", url, "--name", "gateway", "--scopes", "keys:verify", "--json"]);
    expect(gateway.status, gateway.stderr).toBe(0);
    const { key } = JSON.parse(gateway.stdout) as { key: string };
    const server = await spawnHttpServer(["--db", url]);
    cleanups.push(() => server.stop());
    const health = await rawRequest(`${server.base}/healthz`);
    expect([health.status, health.json()]).toEqual([200, { status: "ok", database: "ok" }]);
    const verified = await rawRequest(`${server.base}/v1/keys/verify`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
      body: JSON.stringify({ key }),
    });
    expect(verified.status).toBe(200);
    expect(verified.json()).toMatchObject({ valid: true, code: "valid", scopes: ["keys:verify"] });
    expect(server.stderr()).toContain(`"db":"${masked(url)}"`);
    expect(server.stderr()).not.toContain("hunter2");
  });

  it("the pepper refusals name the database without its password", async () => {
    const url = await databaseUrl();
    const pepper = "pepper-for-the-postgres-e2e-0123";
    expect(runCli(["admin", "create-key", "--db", url, "--name", "peppered"], { KEYWARDEN_PEPPER: pepper }).status).toBe(0);
    const without = runCli(["admin", "list-keys", "--db", url]);
    expect([without.status, without.stderr]).toEqual([
      2,
      `keywarden: database ${masked(url)} holds keys hashed with hmac-sha256, which needs KEYWARDEN_PEPPER: set it to the pepper those keys were created with\n`,
    ]);
    const other = runCli(["admin", "list-keys", "--db", url], { KEYWARDEN_PEPPER: `${pepper}-not-it` });
    expect([other.status, other.stderr]).toEqual([
      2,
      `keywarden: KEYWARDEN_PEPPER is not the pepper database ${masked(url)} hashes its keys with: set the one its keys were created with (keys made with another would never verify)\n`,
    ]);
  });

  it("an unreachable server: one line naming the database without its password, exit 2, no stack trace", async () => {
    const port = await freePort();
    const url = `postgres://keywarden:unreachable-secret@127.0.0.1:${port}/keywarden`;
    for (const args of [["admin", "list-keys"], ["admin", "create-key", "--name", "x"], []]) {
      const result = runCli([...args, "--db", url]);
      expect(result.status, args.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toBe(`keywarden: cannot open PostgreSQL database postgres://keywarden:***@127.0.0.1:${port}/keywarden: connect ECONNREFUSED 127.0.0.1:${port}\n`);
    }
  });

  it("refuses a bad pool size or statement timeout, naming the flag", () => {
    const url = "postgres://nobody@127.0.0.1:1/none";
    const pool = runCli(["admin", "list-keys", "--db", url, "--pg-pool-size", "0"]);
    expect([pool.status, pool.stderr]).toEqual([2, 'keywarden: --pg-pool-size / KEYWARDEN_PG_POOL_SIZE must be a positive integer, got "0"\n']);
    const timeout = runCli(["admin", "list-keys", "--db", url], { KEYWARDEN_PG_STATEMENT_TIMEOUT: "5s" });
    expect([timeout.status, timeout.stderr]).toEqual([2, 'keywarden: --pg-statement-timeout / KEYWARDEN_PG_STATEMENT_TIMEOUT must be a positive integer, got "5s"\n']);
  });
});

// A server that checks passwords: the test server trusts every connection, so this one is started
// for these tests alone (when PostgreSQL's binaries are installed).
const PG_BIN = findPgBin();

describe.skipIf(!PG_BIN)("keywarden on a PostgreSQL server that checks passwords", () => {
  const PASSWORD = "the-right-password";
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await startPgCluster(PG_BIN!, { password: PASSWORD, durable: false });
  }, 60_000);
  afterAll(() => cluster?.stop());

  const withPassword = (password: string) => {
    const url = new URL(cluster.url);
    url.password = password;
    return url.toString();
  };

  it("a wrong password: one line without it, exit 2; the right one (in the URL or in PGPASSWORD) works", () => {
    const wrong = runCli(["admin", "create-key", "--db", withPassword("wrong-password-42"), "--name", "x"]);
    expect(wrong.status).toBe(2);
    expect(wrong.stdout).toBe("");
    expect(wrong.stderr).toBe(
      `keywarden: cannot open PostgreSQL database ${masked(withPassword("wrong-password-42"))}: password authentication failed for user "${new URL(cluster.url).username}"\n`,
    );
    expect(wrong.stderr).not.toContain("wrong-password-42");

    const right = runCli(["admin", "create-key", "--db", withPassword(PASSWORD), "--name", "k", "--json"]);
    expect(right.status, right.stderr).toBe(0);
    const fromEnvironment = runCli(["admin", "list-keys", "--db", cluster.url, "--json"], { PGPASSWORD: PASSWORD });
    expect(fromEnvironment.status, fromEnvironment.stderr).toBe(0);
    expect((JSON.parse(fromEnvironment.stdout) as { name: string }[]).map((key) => key.name)).toEqual(["k"]);
    expect(right.stderr + fromEnvironment.stderr).not.toContain(PASSWORD);
  });
});
