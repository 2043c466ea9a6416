import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { createTestDatabase, PG_URL, type TestDatabase } from "../helpers/pg.js";
import { assertBuilt, cleanEnv, ROOT } from "../helpers/spawn.js";

// The package's entry points (package.json "exports"), as a user's program loads them: the built
// files, each in a fresh node, with every module it loads recorded.

const cleanups: (() => void)[] = [];
const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const database of databases) await database.drop();
});
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function tempDir(): string {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  return dir;
}

/**
 * Imports `specifier` in a fresh node and returns every module loaded: ESM and CommonJS entered
 * from ESM by a resolve hook (module.register), CommonJS required from CommonJS by require.cache.
 */
function modulesLoadedBy(specifier: string, args: string[] = []): string[] {
  const dir = tempDir();
  const log = join(dir, "resolved.log");
  writeFileSync(
    join(dir, "hooks.mjs"),
    `import { appendFileSync } from "node:fs";
let log;
export async function initialize(data) { log = data.log; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(log, result.url + "\\n"); // synchronous: logged before the import goes on
  return result;
}
`,
  );
  writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module";\nregister("./hooks.mjs", import.meta.url, { data: { log: ${JSON.stringify(log)} } });\n`);
  writeFileSync(join(dir, "main.mjs"), `import { createRequire } from "node:module";\nawait import(${JSON.stringify(specifier)});\nconsole.log("\\n" + JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));\n`);
  writeFileSync(log, "");
  const result = spawnSync(process.execPath, ["--import", join(dir, "register.mjs"), join(dir, "main.mjs"), ...args], { env: cleanEnv(), encoding: "utf8", timeout: 20_000 });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  const required = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as string[];
  const resolved = readFileSync(log, "utf8").trim().split("\n").filter((url) => url.startsWith("file:")).map((url) => new URL(url).pathname);
  return [...new Set([...resolved, ...required])];
}

/** The packages among loaded modules: "express", "@modelcontextprotocol/sdk", … */
function packagesOf(paths: string[]): string[] {
  const names = paths.flatMap((path) => {
    const match = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
    return match ? [match[1]!] : [];
  });
  return [...new Set(names)].sort();
}

const sdkFiles = (paths: string[]) => paths.flatMap((path) => /@modelcontextprotocol\/sdk\/dist\/esm\/(.*)$/.exec(path)?.[1] ?? []);

describe("package entry points", () => {
  it("keywarden (dist/index.js) loads neither the MCP SDK nor Express: only the store's and the hash's packages", () => {
    assertBuilt();
    const loaded = modulesLoadedBy(join(ROOT, "dist/index.js"));
    expect(packagesOf(loaded)).toEqual(["@noble/hashes", "better-sqlite3"]);
    const ours = loaded.filter((path) => path.startsWith(join(ROOT, "dist/"))).map((path) => path.slice(join(ROOT, "dist/").length));
    expect(ours).toContain("store/sqlite.js");
    expect(ours).toContain("service/verify.js");
    expect(ours.filter((file) => /^(server|mcp|http)\.js$|^tools\/|^transports\/|^cli/.test(file))).toEqual([]);
  });

  it("keywarden/mcp loads the SDK's server but not its HTTP transport nor Express; keywarden/http loads both", () => {
    const mcp = modulesLoadedBy(join(ROOT, "dist/mcp.js"));
    expect(packagesOf(mcp)).not.toContain("express");
    expect(sdkFiles(mcp)).toContain("server/index.js");
    expect(sdkFiles(mcp).filter((file) => /streamableHttp|sse|express/i.test(file))).toEqual([]);

    const http = modulesLoadedBy(join(ROOT, "dist/http.js"));
    expect(packagesOf(http)).toContain("express");
    expect(sdkFiles(http)).toContain("server/streamableHttp.js");
  });

  it("keywarden/postgres loads the PostgreSQL driver and the store: no MCP SDK, no Express, no better-sqlite3", () => {
    const loaded = modulesLoadedBy(join(ROOT, "dist/postgres.js"));
    expect(packagesOf(loaded)).toEqual(["postgres"]);
  });

  it("the admin commands load neither the MCP SDK nor Express (src/cli/serve.ts loads them for stdio and serve)", () => {
    const loaded = modulesLoadedBy(join(ROOT, "dist/cli.js"), ["admin", "list-users", "--db", ":memory:", "--user", "op"]);
    const packages = packagesOf(loaded);
    // It ran (it opened the database and logged) without the MCP SDK, zod or Express.
    expect(packages).toEqual(expect.arrayContaining(["better-sqlite3", "commander", "pino"]));
    expect(packages.filter((name) => /^(express|zod|@modelcontextprotocol\/.*)$/.test(name))).toEqual([]);
  });

  it("keywarden, keywarden/mcp, keywarden/http and keywarden/postgres work from the packed tarball; deep imports are closed", async () => {
    assertBuilt();
    // keywarden/postgres is tried on the test server when there is one (the global setup's, or none: then "skipped").
    const database = PG_URL ? await createTestDatabase() : null;
    if (database) databases.push(database);
    const dir = tempDir();
    // --ignore-scripts: "prepare" would rebuild dist/ under the other tests' feet; npm test has built it.
    const pack = spawnSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(pack.status, pack.stderr).toBe(0);
    const [{ filename }] = JSON.parse(pack.stdout) as [{ filename: string }];

    // The tarball unpacked as npm would, its dependencies linked to this checkout's node_modules
    // rather than installed: the same versions, without a rebuild of better-sqlite3 or the network.
    const project = join(dir, "project");
    const installed = join(project, "node_modules/keywarden");
    mkdirSync(installed, { recursive: true });
    const untar = spawnSync("tar", ["-xzf", join(dir, filename), "-C", installed, "--strip-components=1"], { encoding: "utf8" });
    expect(untar.status, untar.stderr).toBe(0);
    const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    for (const name of [...Object.keys(manifest.dependencies), "@modelcontextprotocol/sdk"]) {
      const link = join(project, "node_modules", name);
      mkdirSync(dirname(link), { recursive: true });
      try {
        symlinkSync(join(ROOT, "node_modules", name), link);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
    }
    writeFileSync(join(project, "package.json"), `{"name": "consumer", "type": "module", "private": true}\n`);
    writeFileSync(
      join(project, "main.js"),
      `import { KeyService, SqliteKeyStore, verifyApiKey } from "keywarden";
import { allTools, createServer } from "keywarden/mcp";
import { startHttpServer } from "keywarden/http";
import { PostgresKeyStore } from "keywarden/postgres";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";

const store = SqliteKeyStore.open({ path: ":memory:" });
const service = new KeyService({ store });
const principal = await service.localPrincipal({ userName: "consumer", transport: "stdio", isAdmin: true });
const gateway = await service.createApiKey(principal, { name: "gateway", scopes: ["keys:verify"] });
const out = { library: (await verifyApiKey(store, gateway.key)).code };

const server = createServer({ service, principalOf: () => principal, version: "0" });
const client = new Client({ name: "consumer", version: "0" });
const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
await Promise.all([client.connect(clientSide), server.connect(serverSide)]);
out.mcp = { tools: (await client.listTools()).tools.length, allTools: allTools.length, whoami: (await client.callTool({ name: "whoami", arguments: {} })).structuredContent?.user_name };
await client.close();

const logger = { debug() {}, info() {}, warn() {}, error() {} };
const http = await startHttpServer({ service, version: "0", logger, host: "127.0.0.1", port: 0 });
const base = new URL(http.url).origin;
const health = await fetch(base + "/healthz");
const verified = await fetch(base + "/v1/keys/verify", {
  method: "POST",
  headers: { authorization: "Bearer " + gateway.key, "content-type": "application/json" },
  body: JSON.stringify({ key: gateway.key }),
});
out.http = { healthz: health.status, verify: verified.status, code: (await verified.json()).code };
await http.close();

out.deep = await import("keywarden/dist/transports/http.js").then(() => "loaded", (error) => error.code);
await store.close();

const databaseUrl = process.env.CONSUMER_DATABASE_URL;
if (databaseUrl) {
  const shared = await PostgresKeyStore.open({ url: databaseUrl });
  const onPostgres = new KeyService({ store: shared });
  const owner = await onPostgres.localPrincipal({ userName: "consumer", transport: "stdio", isAdmin: false });
  const minted = await onPostgres.createApiKey(owner, { name: "on postgres" });
  out.postgres = (await verifyApiKey(shared, minted.key)).code;
  await shared.close();
} else {
  out.postgres = "skipped";
}
console.log(JSON.stringify(out));
`,
    );
    const env = cleanEnv(database ? { CONSUMER_DATABASE_URL: database.url } : {});
    const run = spawnSync(process.execPath, [join(project, "main.js")], { cwd: project, env, encoding: "utf8", timeout: 30_000 });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      library: "valid",
      mcp: { tools: 11, allTools: 11, whoami: "consumer" },
      http: { healthz: 200, verify: 200, code: "valid" },
      deep: "ERR_PACKAGE_PATH_NOT_EXPORTED",
      postgres: database ? "valid" : "skipped",
    });
  });
});
