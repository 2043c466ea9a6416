import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir, secretOf } from "../helpers/harness.js";
import { runCli, spawnStdioServer, type SpawnedServer } from "../helpers/spawn.js";

const spec = (file: string) => JSON.parse(readFileSync(new URL(`../fixtures/spec/${file}`, import.meta.url), "utf8"));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDb(): string {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  return join(dir, "keywarden.db");
}

async function spawn(db: string, extra: string[] = [], env: Record<string, string> = {}): Promise<SpawnedServer> {
  const server = await spawnStdioServer(["--db", db, ...extra], env);
  cleanups.push(() => server.close());
  return server;
}

const filesOf = (db: string) => [db, `${db}-wal`, `${db}-shm`].filter(existsSync);

describe("keywarden over stdio (spawned binary)", () => {
  it("lists create_api_key with exactly the spec's schemas", async () => {
    const { client } = await spawn(tempDb());
    const { tools } = await client.listTools();
    const tool = tools.find((t) => t.name === "create_api_key");
    expect(tool?.inputSchema).toStrictEqual(spec("create_api_key.input.schema.json"));
    expect(tool?.outputSchema).toStrictEqual(spec("create_api_key.output.schema.json"));
    expect(client.getServerVersion()?.name).toBe("keywarden");
  });

  it("announces version, database and user on stderr and keeps stdout for the protocol", async () => {
    const db = tempDb();
    const server = await spawn(db, ["--user", "carol"]);
    await server.client.listTools();
    const line = JSON.parse(server.stderr().trim().split("\n")[0]!);
    expect(line).toMatchObject({ msg: "keywarden stdio server ready", db, user: "carol", version: expect.any(String) });
    await server.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // A clean shutdown: every stderr line is one of our JSON log lines, nothing else (no exception).
    for (const text of server.stderr().trim().split("\n")) expect(() => JSON.parse(text), text).not.toThrow();
  });

  it("creates a key whose secret appears nowhere in the database, its WAL or the server's stderr", async () => {
    const db = tempDb();
    const server = await spawn(db, ["--log-level", "trace"]);
    const result = await server.client.callTool({ name: "create_api_key", arguments: { name: "demo" } });
    const key = (result.structuredContent as { key: string }).key;
    const secret = secretOf(key);
    expect(secret).toHaveLength(38);
    expect(existsSync(`${db}-wal`)).toBe(true); // the row is in the WAL until a checkpoint
    for (const file of filesOf(db)) expect(readFileSync(file).includes(secret), file).toBe(false);
    expect(server.stderr()).not.toContain(secret);
    expect(server.stderr()).toContain("tool call"); // trace logging is on, and still clean
    await server.close();
    for (const file of filesOf(db)) expect(readFileSync(file).includes(secret), file).toBe(false);
  });

  it("writes a verification's last use by the time the server has shut down (batched, flushed on close)", async () => {
    const db = tempDb();
    const server = await spawn(db);
    const created = await server.client.callTool({ name: "create_api_key", arguments: { name: "used" } });
    const { id, key } = created.structuredContent as { id: string; key: string };
    const verified = await server.client.callTool({ name: "verify_api_key", arguments: { key } });
    expect(verified.structuredContent).toMatchObject({ valid: true, code: "valid" });
    await server.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const check = new Database(db, { readonly: true });
    const row = check.prepare("SELECT last_used_at FROM key_usage WHERE key_id = ?").get(id) as { last_used_at: string } | undefined;
    check.close();
    expect(row?.last_used_at).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  });

  it("shows a non-admin only the tools it may call, and says how to become an admin; --admin and KEYWARDEN_ADMIN=1 see create_project", async () => {
    const db = tempDb();
    const user = await spawn(db);
    const names = (await user.client.listTools()).tools.map((tool) => tool.name);
    expect(names).not.toContain("create_project");
    expect(names).toHaveLength(10);
    const refused = await user.client.callTool({ name: "create_project", arguments: { slug: "web", name: "Web" } });
    expect(refused.isError).toBe(true);
    expect(JSON.parse((refused.content as { text: string }[])[0]!.text).error).toMatchObject({
      code: "forbidden",
      message: "create_project is for admins: start keywarden with --admin or KEYWARDEN_ADMIN=1 to act as one",
    });
    for (const [args, env] of [[["--admin"], {}], [[], { KEYWARDEN_ADMIN: "1" }]] as const) {
      const admin = await spawn(db, [...args], env);
      expect((await admin.client.listTools()).tools.map((tool) => tool.name)).toEqual([...names.slice(0, 9), "create_project", names[9]]);
    }
    const admin = await spawn(db, ["--admin"]);
    const made = await admin.client.callTool({ name: "create_project", arguments: { slug: "web", name: "Web" } });
    expect(made.structuredContent).toMatchObject({ slug: "web" });
  });

  it("makes project-scoped keys after admin create-project, by slug", async () => {
    const db = tempDb();
    const made = runCli(["admin", "create-project", "--db", db, "--slug", "web", "--name", "Web", "--scopes", "web:read", "--json"]);
    expect(made.status).toBe(0);
    const project = JSON.parse(made.stdout);
    expect(project).toMatchObject({ slug: "web", default_scopes: ["web:read"] });
    const listed = runCli(["admin", "list-projects", "--db", db]);
    expect(listed.stdout).toContain(project.id);
    const { client } = await spawn(db);
    const result = await client.callTool({ name: "create_api_key", arguments: { name: "w", project_reference: "web" } });
    expect(result.structuredContent).toMatchObject({ project_id: project.id, scopes: ["web:read"] });
  });

  it("leaves exactly 5 active keys after 20 creates started at once from 4 processes", async () => {
    const db = tempDb();
    const servers = await Promise.all(Array.from({ length: 4 }, () => spawn(db, [], { KEYWARDEN_USER: "shared" })));
    const calls = servers.flatMap(({ client }) =>
      Array.from({ length: 5 }, (_, i) => client.callTool({ name: "create_api_key", arguments: { name: `race ${i}` } })),
    );
    const results = await Promise.all(calls);
    const ok = results.filter((r) => !r.isError);
    const refused = results.filter((r) => r.isError).map((r) => JSON.parse((r.content as { text: string }[])[0]!.text).error.code);
    expect(ok).toHaveLength(5);
    expect(refused).toEqual(Array(15).fill("max_keys_reached"));
    const check = new Database(db, { readonly: true });
    const active = check.prepare("SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL").get() as { n: number };
    const users = check.prepare("SELECT count(*) AS n FROM users").get() as { n: number };
    check.close();
    expect(active.n).toBe(5);
    expect(users.n).toBe(1);
  });
});

describe("keywarden CLI errors", () => {
  it("exits non-zero with one clear line for a bad flag or environment value", () => {
    const db = tempDb();
    writeFileSync(db, ""); // a regular file: a database path beneath it cannot be created
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--bogus"], {}, /unknown option '--bogus'/],
      [["--db", db, "--max-active-keys", "0"], {}, /--max-active-keys .* must be a positive integer, got "0"/],
      [["--db", db], { KEYWARDEN_DEFAULT_EXPIRY_DAYS: "soon" }, /KEYWARDEN_DEFAULT_EXPIRY_DAYS must be a positive integer/],
      [["--db", db], { KEYWARDEN_KEY_BRAND: "Not_OK" }, /KEYWARDEN_KEY_BRAND: key brand must be 1-16/],
      [["--db", db], { KEYWARDEN_LOG_LEVEL: "loud" }, /KEYWARDEN_LOG_LEVEL must be one of/],
      [["--db", db], { KEYWARDEN_PEPPER: "short" }, /KEYWARDEN_PEPPER must be at least 16 characters/],
      [["--db", db], { KEYWARDEN_ADMIN: "maybe" }, /KEYWARDEN_ADMIN must be/],
      [["--db", db, "--default-expiry-days", "400"], {}, /default expiry days \(400\) exceeds max expiry days \(365\)/],
      [["--db", db, "--max-expiry-days", "none"], { KEYWARDEN_DEFAULT_EXPIRY_DAYS: "100000000" }, /KEYWARDEN_DEFAULT_EXPIRY_DAYS: 100000000 days from now is past 9999-12-31T23:59:59Z/],
      [["--db", join(db, "under-a-file", "keywarden.db")], {}, /cannot open database .*under-a-file/],
    ];
    for (const [args, env, message] of cases) {
      const { status, stdout, stderr } = runCli(args, env);
      expect(status, args.join(" ")).not.toBe(0);
      expect(stdout).toBe("");
      expect(stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(stderr).toMatch(message);
      expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });

  it("answers a usage error (unknown option or command, missing value or argument) with one line and exit 2", () => {
    const cases: [string[], string][] = [
      [["--dbb", "x"], "keywarden: unknown option '--dbb' (Did you mean --db?)"],
      [["serve", "--bogus"], "keywarden: unknown option '--bogus'"],
      [["admin", "create-key"], "keywarden: required option '--name <name>' not specified"],
      [["admin", "revoke-key"], "keywarden: missing required argument 'id'"],
      [["admin", "list-keys", "--status"], "keywarden: option '--status <status>' argument missing"],
      [["admin", "bogus"], "keywarden: unknown command 'bogus'"],
    ];
    for (const [args, line] of cases) {
      const { status, stdout, stderr } = runCli(args);
      expect(status, args.join(" ")).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toBe(`${line}\n`);
    }
    expect(runCli(["--version"]).status).toBe(0);
    expect(runCli(["admin", "create-key", "--help"]).status).toBe(0);
  });

  it("flags beat environment values", () => {
    const db = tempDb();
    const { status } = runCli(["admin", "create-project", "--db", db, "--slug", "p", "--name", "p", "--max-active-keys", "3"], { KEYWARDEN_MAX_ACTIVE_KEYS: "nope" });
    expect(status).toBe(0);
  });

  it("refuses a database from a newer keywarden without touching it", () => {
    const db = tempDb();
    expect(runCli(["admin", "create-project", "--db", db, "--slug", "p", "--name", "p"]).status).toBe(0);
    const raw = new Database(db);
    raw.pragma("user_version = 42");
    raw.close();
    const { status, stderr } = runCli(["admin", "list-projects", "--db", db]);
    expect(status).toBe(2);
    expect(stderr).toMatch(/schema version 42, newer than this keywarden understands/);
  });

  it("prints its version and help", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    expect(runCli(["--version"]).stdout.trim()).toBe(pkg.version);
    const help = runCli(["--help"]).stdout;
    for (const env of ["KEYWARDEN_DB", "KEYWARDEN_USER", "KEYWARDEN_KEY_BRAND", "KEYWARDEN_MAX_ACTIVE_KEYS", "KEYWARDEN_ADMIN", "KEYWARDEN_PEPPER"]) {
      expect(help).toContain(env);
    }
    // Where the commands' own flags are listed.
    expect(help).toContain("keywarden serve --help");
  });
});

describe("keywarden admin options", () => {
  it("takes --db after or before the subcommand, and a flag at any level beats the environment", () => {
    const after = tempDb();
    const before = tempDb();
    const fromEnv = tempDb();
    expect(runCli(["admin", "create-project", "--db", after, "--slug", "a", "--name", "A"]).status).toBe(0);
    expect(runCli(["--db", before, "admin", "create-project", "--slug", "b", "--name", "B"], { KEYWARDEN_DB: fromEnv }).status).toBe(0);
    expect(runCli(["admin", "list-projects", "--db", after, "--json"]).stdout).toContain('"slug": "a"');
    expect(runCli(["admin", "list-projects", "--db", before, "--json"]).stdout).toContain('"slug": "b"');
    expect(existsSync(fromEnv)).toBe(false);
  });
});
