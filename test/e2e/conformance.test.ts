import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";

// The official MCP conformance suite (a pinned devDependency) against `keywarden serve --no-auth`:
// its client sends no Authorization header, and --no-auth is allowed on loopback only.
const SCENARIOS = ["server-initialize", "ping", "tools-list", "server-sse-multiple-streams", "dns-rebinding-protection"];

const require = createRequire(import.meta.url);
const packageJson = require.resolve("@modelcontextprotocol/conformance/package.json");
const conformanceBin = join(dirname(packageJson), (require(packageJson) as { bin: { conformance: string } }).bin.conformance);

interface Check {
  id: string;
  status: string;
  errorMessage?: string;
}

describe("MCP conformance (@modelcontextprotocol/conformance) against keywarden serve --no-auth", () => {
  let server: HttpServerProcess;
  let cleanup: () => void;
  const output = mkdtempSync(join(tmpdir(), "keywarden-conformance-"));

  beforeAll(async () => {
    const temp = makeTempDir();
    cleanup = temp.cleanup;
    server = await spawnHttpServer(["--db", join(temp.dir, "keywarden.db"), "--no-auth"]);
  });
  afterAll(async () => {
    await server?.stop();
    cleanup?.();
    rmSync(output, { recursive: true, force: true });
  });

  for (const scenario of SCENARIOS) {
    it(`passes ${scenario}`, async () => {
      const dir = join(output, scenario);
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [conformanceBin, "server", "--url", server.url, "--scenario", scenario, "--output-dir", dir],
        { timeout: 60_000 },
      );
      const [run] = readdirSync(dir);
      const checks = JSON.parse(readFileSync(join(dir, run!, "checks.json"), "utf8")) as Check[];
      expect(checks.length, stdout).toBeGreaterThan(0);
      const notPassed = checks.filter((check) => check.status !== "SUCCESS" && check.status !== "INFO");
      expect(notPassed, stdout).toStrictEqual([]);
      expect(checks.some((check) => check.status === "SUCCESS")).toBe(true);
    });
  }
});
