import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { rawRequest, spawnHttpServer } from "../helpers/http.js";
import { runCli } from "../helpers/spawn.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDb(): string {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  return join(dir, "keywarden.db");
}

describe("keywarden admin create-key", () => {
  it("prints the key once on stdout and nothing else there; --json prints its fields", () => {
    const db = tempDb();
    const plain = runCli(["admin", "create-key", "--db", db, "--name", "bootstrap", "--scopes", "admin"], { KEYWARDEN_USER: "root-op" });
    expect(plain.status).toBe(0);
    expect(plain.stdout).toMatch(/^kw_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\n$/);
    expect(plain.stderr).toMatch(/^keywarden: created key_\w+ \(kw_\w{12}\) for user root-op, scopes admin, expires \d{4}-.*shown only this once\.\n$/);
    expect(plain.stderr).not.toContain(plain.stdout.trim());

    const json = runCli(["admin", "create-key", "--db", db, "--name", "gw", "--scopes", "keys:verify,orders:read", "--user", "gateway", "--expires-in-days", "7", "--json"]);
    expect(json.status).toBe(0);
    expect(json.stderr).toBe("");
    const created = JSON.parse(json.stdout);
    expect(created).toMatchObject({ name: "gw", scopes: ["keys:verify", "orders:read"], key: expect.stringMatching(/^kw_/) });
    const days = (Date.parse(created.expires_at) - Date.parse(created.created_at)) / 86_400_000;
    expect(Math.round(days)).toBe(7);
  });

  it("refuses bad input with one line on stderr and nothing on stdout", () => {
    const db = tempDb();
    const cases: [string[], number, RegExp][] = [
      [["--scopes", "Not A Scope"], 2, /--scopes: "Not A Scope" is not a valid scope name/],
      [["--expires-in-days", "0"], 2, /--expires-in-days must be a positive integer/],
      [["--expires-in-days", "400"], 1, /validation_error: invalid expires_at: must be at most 365 days from now/],
      [["--project", "nope"], 1, /not_found/],
    ];
    for (const [args, status, message] of cases) {
      const result = runCli(["admin", "create-key", "--db", db, "--name", "x", ...args]);
      expect(result.status, args.join(" ")).toBe(status);
      expect(result.stdout).toBe("");
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
      expect(result.stderr).toMatch(message);
    }
  });
});

describe("keywarden serve options", () => {
  it("refuses --no-auth on a non-loopback address, and bad values, with one line and exit 2", () => {
    const db = tempDb();
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--no-auth", "--host", "0.0.0.0"], {}, /--no-auth is allowed only on a loopback address .*not --host 0\.0\.0\.0/],
      [["--no-auth"], { KEYWARDEN_HOST: "192.0.2.10" }, /--no-auth is allowed only on a loopback address/],
      [["--port", "70000"], {}, /--port \/ KEYWARDEN_PORT must be an integer from 0 to 65535/],
      [[], { KEYWARDEN_PORT: "http" }, /KEYWARDEN_PORT must be an integer/],
      [["--allowed-origins", "example.com"], {}, /--allowed-origins .*"example.com" is not an origin/],
      [["--allowed-origins", "https://a.example/path"], {}, /is not an origin/],
      [["--allowed-hosts", "a.example:8080"], {}, /--allowed-hosts .* is not a host name/],
      [["--session-idle-timeout", "0"], {}, /--session-idle-timeout .* must be a positive integer/],
      [["--auth-failure-limit", "x"], {}, /--auth-failure-limit .* must be a positive integer/],
      [["--trust-proxy", "somewhere"], {}, /--trust-proxy .* must be a hop count/],
      [[], { KEYWARDEN_STATELESS: "maybe" }, /KEYWARDEN_STATELESS must be/],
    ];
    for (const [args, env, message] of cases) {
      const result = runCli(["serve", "--db", db, ...args], env);
      expect(result.status, args.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(result.stderr).toMatch(message);
    }
  });

  it("lets a --port flag beat KEYWARDEN_PORT, and lists the serve options in its help", async () => {
    const server = await spawnHttpServer(["--db", tempDb()], { KEYWARDEN_PORT: "not-a-port" });
    cleanups.push(() => server.stop());
    expect((await rawRequest(`${server.base}/healthz`)).status).toBe(200);
    const help = runCli(["serve", "--help"]).stdout;
    for (const text of ["KEYWARDEN_HOST", "KEYWARDEN_PORT", "--stateless", "--allowed-origins", "--allow-query-key", "--no-auth", "KEYWARDEN_SESSION_IDLE_TIMEOUT"]) {
      expect(help).toContain(text);
    }
  });

  it("refuses a port that is taken with one line and exit 2", async () => {
    const server = await spawnHttpServer(["--db", tempDb(), "--no-auth"]);
    cleanups.push(() => server.stop());
    const result = runCli(["serve", "--db", tempDb(), "--port", String(server.port)]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^keywarden: cannot listen on 127\.0\.0\.1 port \d+: .*EADDRINUSE.*\n$/);
  });
});
