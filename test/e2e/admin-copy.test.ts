import { copyFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import Database from "better-sqlite3";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { KeyService } from "../../src/service/service.js";
import { COPIED_TABLES } from "../../src/store/copy.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { makeTempDir } from "../helpers/harness.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";
import { runCli } from "../helpers/spawn.js";

// `keywarden admin copy` as an operator runs it (README, "Moving a SQLite database to PostgreSQL"):
// what it prints, its exit status, and what it refuses.

const PASSWORD = "S3cret-pw-never-shown";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function target(): Promise<string> {
  const database = await createTestDatabase();
  cleanups.push(() => database.drop());
  return database.url;
}

/** A SQLite database made with the CLI: a project, two keys (one revoked); their tokens. */
function sqliteSource(): { db: string; live: { id: string; key: string }; revoked: { id: string; key: string } } {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  const db = join(dir, "keywarden.db");
  const run = (...args: string[]) => {
    const result = runCli(["admin", ...args, "--db", db]);
    expect(result.status, result.stderr).toBe(0);
    return result.stdout;
  };
  run("create-project", "--slug", "web", "--name", "Web", "--scopes", "web:read");
  const live = JSON.parse(run("create-key", "--name", "live", "--project", "web", "--json"));
  const revoked = JSON.parse(run("create-key", "--name", "gone", "--scopes", "tools:read", "--json"));
  run("revoke-key", revoked.id);
  return { db, live, revoked };
}

async function counts(url: string): Promise<number[]> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    return await Promise.all(COPIED_TABLES.map(async ({ name }) => Number((await sql.unsafe(`SELECT count(*) AS n FROM ${name}`))[0]!.n)));
  } finally {
    await sql.end();
  }
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const port = (server.address() as { port: number }).port;
  await new Promise((done) => server.close(done));
  return port;
}

describe.skipIf(!PG_URL)("keywarden admin copy", () => {
  it("copies, prints every table's counts in the source and the target, exits 0; the tokens verify on PostgreSQL", async () => {
    const source = sqliteSource();
    const url = await target();
    const result = runCli(["admin", "copy", "--from", source.db, "--to", url]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const [first, ...rest] = result.stdout.split("\n");
    expect(first).toMatch(new RegExp(`^copied ${source.db} to ${url} in \\d+\\.\\d s$`));
    expect(rest.join("\n")).toBe(
      [
        "table                   source     target",
        "organizations                1          1",
        "users                        1          1",
        "projects                     1          1",
        "key_hash_algorithms          1          1",
        "pepper_fingerprint           0          0",
        "api_keys                     2          2",
        "key_usage                    0          0",
        "key_events                   4          4",
        "every count matches",
        "",
      ].join("\n"),
    );

    // Every admin listing on --db postgres://… answers what it answered on the SQLite file.
    for (const listing of [["list-keys", "--status", "all"], ["list-events"], ["list-users"], ["list-projects"]]) {
      const [before, after] = [source.db, url].map((db) => runCli(["admin", ...listing, "--db", db, "--json"]));
      expect(after!.status, after!.stderr).toBe(0);
      expect(JSON.parse(after!.stdout), listing[0]).toEqual(JSON.parse(before!.stdout));
    }
    expect(JSON.parse(runCli(["admin", "list-keys", "--status", "all", "--db", url, "--json"]).stdout).map((key: { status: string }) => key.status).sort()).toEqual([
      "active",
      "revoked",
    ]);

    const store = await PostgresKeyStore.open({ url });
    cleanups.push(() => store.close());
    const service = new KeyService({ store, useRecorder: { record: () => undefined } });
    expect(await service.verifyApiKey(source.live.key)).toMatchObject({ valid: true, code: "valid", key_id: source.live.id, scopes: ["web:read"] });
    expect(await service.verifyApiKey(source.revoked.key)).toMatchObject({ valid: false, code: "revoked", key_id: source.revoked.id });
  });

  it("prints the report as JSON with --json", async () => {
    const source = sqliteSource();
    const url = await target();
    const result = runCli(["admin", "copy", "--from", source.db, "--to", url, "--json"]);
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ from: source.db, to: url, sourceSchemaVersion: 7 });
    expect(report.counts.find((count: { table: string }) => count.table === "key_events")).toEqual({ table: "key_events", source: 4, target: 4 });
  });

  it("refuses a second copy into the same target: one line, exit 2, the target unchanged", async () => {
    const source = sqliteSource();
    const url = await target();
    expect(runCli(["admin", "copy", "--from", source.db, "--to", url]).status).toBe(0);
    const before = await counts(url);
    expect(before).toEqual([1, 1, 1, 1, 0, 2, 0, 4]);
    const withPassword = new URL(url);
    withPassword.password = PASSWORD;
    const again = runCli(["admin", "copy", "--from", source.db, "--to", withPassword.toString()]);
    expect(again.status).toBe(2);
    expect(again.stdout).toBe("");
    const shown = withPassword.toString().replace(PASSWORD, "***");
    expect(again.stderr).toBe(
      `keywarden: database ${shown} already holds keywarden data (organizations: 1, users: 1, projects: 1, key_hash_algorithms: 1, api_keys: 2, key_events: 4): ` +
        "admin copy never merges into or overwrites a database; copy into a new, empty database\n",
    );
    expect(await counts(url)).toEqual(before);
  });

  it("compares the counts before it commits: a difference rolls the whole copy back, exit 1, the counts printed", async () => {
    const source = sqliteSource();
    // A hand-edited source: the set of hash algorithms misses the one its keys use, which the
    // target's trigger records (src/store/migrations-postgres/001_initial.sql).
    const edit = new Database(source.db);
    edit.prepare("DELETE FROM key_hash_algorithms").run();
    edit.close();
    const url = await target();
    const result = runCli(["admin", "copy", "--from", source.db, "--to", url]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe(
      [
        "table                   source     target",
        "organizations                1          1",
        "users                        1          1",
        "projects                     1          1",
        "key_hash_algorithms          0          1  DIFFERS",
        "pepper_fingerprint           0          0",
        "api_keys                     2          2",
        "key_usage                    0          0",
        "key_events                   4          4",
        "",
      ].join("\n"),
    );
    expect(result.stderr).toBe("keywarden: the counts differ (key_hash_algorithms: 0 in the source, 1 in the target): nothing was copied\n");
    expect(await counts(url)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("answers a bad target or source in one line, exit 2, never showing the password", async () => {
    const source = sqliteSource();
    const notSqlite = join(source.db, "..", "notes.txt");
    writeFileSync(notSqlite, "not a database, just text that is long enough to have a header of its own\n".repeat(3));
    const newer = join(source.db, "..", "newer.db");
    copyFileSync(source.db, newer);
    const bump = new Database(newer);
    bump.pragma("user_version = 99");
    bump.close();
    const port = await closedPort();
    const missing = new URL(PG_URL!);
    missing.password = PASSWORD;
    missing.pathname = "/no_such_database";
    const cases: [from: string, to: string, line: string][] = [
      [source.db, `postgres://kw:${PASSWORD}@127.0.0.1:${port}/kw`, `cannot open PostgreSQL database postgres://kw:***@127.0.0.1:${port}/kw: connect ECONNREFUSED 127.0.0.1:${port}`],
      [source.db, `postgres://kw:${PASSWORD}@db.example:not-a-port/kw`, "cannot open PostgreSQL database postgres://kw:***@db.example:not-a-port/kw: Invalid URL"],
      [source.db, missing.toString(), `cannot open PostgreSQL database ${missing.toString().replace(PASSWORD, "***")}: database "no_such_database" does not exist`],
      [source.db, `kw:${PASSWORD}@db.example/kw`, "--to must be a postgres:// or postgresql:// URL (--from takes the SQLite file)"],
      [join(source.db, "..", "nope.db"), `postgres://kw:${PASSWORD}@127.0.0.1:${port}/kw`, `no SQLite database at ${join(source.db, "..", "nope.db")} (--from): check the path`],
      [notSqlite, `postgres://kw:${PASSWORD}@127.0.0.1:${port}/kw`, `cannot read database ${notSqlite}: file is not a database`],
      [newer, `postgres://kw:${PASSWORD}@127.0.0.1:${port}/kw`, `database ${newer} has schema version 99, newer than this keywarden understands (7); upgrade keywarden, the database was not modified`],
      [`postgres://kw:${PASSWORD}@127.0.0.1:${port}/kw`, source.db, "--to must be a postgres:// or postgresql:// URL (--from takes the SQLite file)"],
    ];
    for (const [from, to, line] of cases) {
      const result = runCli(["admin", "copy", "--from", from, "--to", to]);
      expect(result.status, to).toBe(2);
      expect(result.stdout, to).toBe("");
      expect(result.stderr, to).toBe(`keywarden: ${line}\n`);
    }
    const stillNewer = new Database(newer, { readonly: true });
    expect(stillNewer.pragma("user_version", { simple: true })).toBe(99);
    stillNewer.close();
  });
});
