// What the tests (test/helpers/spawn.ts, http.ts) and the benchmarks (bench/lib.mjs) share to run
// the built keywarden as a child process: where it is, and a clean environment. Plain JavaScript
// (type-checked with checkJs) so that the benchmarks run it without a build step.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The checkout. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The built binary: tests and benchmarks run what a user runs. `npm test` and `npm run bench` build it first. */
export const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

export function assertBuilt() {
  if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run npm run build (npm test does it)");
}

/**
 * The environment of a spawned keywarden: none of the developer's KEYWARDEN_* settings leak in.
 * @param {Record<string, string>} [extra]
 * @returns {Record<string, string>}
 */
export function cleanEnv(extra = {}) {
  /** @type {Record<string, string>} */
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("KEYWARDEN_")) env[key] = value;
  }
  return { ...env, ...extra };
}

/**
 * Runs the CLI to completion.
 * @param {string[]} args
 * @param {Record<string, string>} [env] added to the clean environment
 * @returns {{ status: number | null, stdout: string, stderr: string }}
 */
export function runCli(args, env = {}) {
  assertBuilt();
  const result = spawnSync(process.execPath, [CLI, ...args], { env: cleanEnv(env), encoding: "utf8", timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
