import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import * as z from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allTools } from "../../src/tools/index.js";
import { defineTool } from "../../src/tools/tool.js";
import { makeTempDir } from "../helpers/harness.js";
import { spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";
import { startInProcess, type InProcessServer } from "../helpers/inprocess.js";

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

/** Runs one scenario; every check it made, its stdout for messages. */
async function runScenario(url: string, scenario: string, output: string): Promise<{ checks: Check[]; stdout: string }> {
  const dir = join(output, scenario);
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [conformanceBin, "server", "--url", url, "--scenario", scenario, "--output-dir", dir],
    { timeout: 60_000 },
  );
  const [run] = readdirSync(dir);
  return { checks: JSON.parse(readFileSync(join(dir, run!, "checks.json"), "utf8")) as Check[], stdout };
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
      const { checks, stdout } = await runScenario(server.url, scenario, output);
      expect(checks.length, stdout).toBeGreaterThan(0);
      const notPassed = checks.filter((check) => check.status !== "SUCCESS" && check.status !== "INFO");
      expect(notPassed, stdout).toStrictEqual([]);
      expect(checks.some((check) => check.status === "SUCCESS")).toBe(true);
    });
  }
});

// server-sse-polling (SEP-1699) calls a `test_reconnection` tool that ends its SSE stream before
// its result, and resumes with Last-Event-ID. keywarden has no such tool: this runs keywarden's
// HTTP transport in process, as --no-auth does, with keywarden's tools and that one added.
describe("MCP conformance: server-sse-polling (priming event, retry, Last-Event-ID resumption)", () => {
  let kw: InProcessServer;
  const output = mkdtempSync(join(tmpdir(), "keywarden-conformance-sse-"));
  const testReconnection = defineTool({
    name: "test_reconnection",
    title: "Test reconnection",
    description: "Ends its own SSE stream, then answers: the client must resume with Last-Event-ID to get the result.",
    group: "Audit",
    inputSchema: z.object({}).strict(),
    outputSchema: z.object({ resumed: z.boolean() }).strict(),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    scope: "tools:read",
    handler: async (_input, context) => {
      context.closeStream?.();
      return { resumed: context.closeStream !== undefined };
    },
  });

  beforeAll(async () => {
    kw = await startInProcess({ noAuth: true, tools: [...allTools, testReconnection] });
  });
  afterAll(async () => {
    await kw?.close();
    rmSync(output, { recursive: true, force: true });
  });

  it("passes server-sse-polling with no warning: the result arrives after the client resumes", async () => {
    const { checks, stdout } = await runScenario(kw.url, "server-sse-polling", output);
    const notPassed = checks.filter((check) => check.status !== "SUCCESS" && check.status !== "INFO");
    expect(notPassed, stdout).toStrictEqual([]);
    expect(checks.filter((check) => check.status === "SUCCESS").map((check) => check.id).sort()).toStrictEqual([
      "server-sse-disconnect-resume",
      "server-sse-priming-event",
      "server-sse-retry-field",
    ]);
  });
});
