import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { initializeBody, MCP_HEADERS, mintKey, rawRequest, rpcBody, spawnHttpServer } from "../helpers/http.js";
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
      [["--expires-in-days", "400"], 2, /^keywarden: validation_error: --expires-in-days: must be at most 365 days\n$/],
      [["--project", "nope"], 1, /^keywarden: not_found: no project with this id or slug \(--project: not_found\)\n$/],
      // Past the last instant a date can have: one line naming the flag, never "Invalid time value".
      [["--expires-in-days", "100000000", "--max-expiry-days", "none"], 2, /^keywarden: validation_error: --expires-in-days: would end after 9999-12-31T23:59:59Z, the latest instant keywarden stores\n$/],
      [["--default-expiry-days", "none", "--expires-in-days", "3000000"], 2, /^keywarden: validation_error: --expires-in-days: would end after 9999-12-31T23:59:59Z, the latest instant keywarden stores\n$/],
      [["--expires-in-days", "9007199254740993"], 2, /^keywarden: --expires-in-days must be a positive integer, got "9007199254740993"\n$/],
      [["--default-expiry-days", "100000000", "--max-expiry-days", "none"], 2, /^keywarden: --default-expiry-days \/ KEYWARDEN_DEFAULT_EXPIRY_DAYS: 100000000 days from now is past 9999-12-31T23:59:59Z; none: keys without expires_at never expire\n$/],
      [["--max-expiry-days", "100000000"], 2, /^keywarden: --max-expiry-days \/ KEYWARDEN_MAX_EXPIRY_DAYS: 100000000 days from now is past 9999-12-31T23:59:59Z; none: no limit\n$/],
      [["--name", " "], 2, /^keywarden: validation_error: --name: must not be empty\n$/],
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

describe("keywarden admin: users, keys, revocation and the audit log", () => {
  it("lists users with their active keys, lists keys without secrets, revokes by id and prints the audit log", () => {
    const db = tempDb();
    const bootstrap = runCli(["admin", "create-key", "--db", db, "--name", "boot", "--scopes", "admin"], { KEYWARDEN_USER: "root-op" });
    const asOperator = { KEYWARDEN_USER: "root-op" };
    // --user names the owner; the operator (KEYWARDEN_USER) is the one who acts.
    const gateway = runCli(["admin", "create-key", "--db", db, "--name", "gw", "--scopes", "keys:verify", "--user", "gateway", "--json"], asOperator);
    const gatewayKey = JSON.parse(gateway.stdout) as { id: string; key: string; key_prefix: string };

    const users = runCli(["admin", "list-users", "--db", db, "--json"], asOperator);
    expect(users.status).toBe(0);
    expect((JSON.parse(users.stdout) as { name: string; active_keys: number }[]).map(({ name, active_keys }) => ({ name, active_keys }))).toEqual([
      { name: "gateway", active_keys: 1 },
      { name: "root-op", active_keys: 1 },
    ]);

    const keys = runCli(["admin", "list-keys", "--db", db], asOperator);
    expect(keys.status).toBe(0);
    const lines = keys.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`^${gatewayKey.id}  ${gatewayKey.key_prefix}  active  gateway  "gw"  scopes keys:verify  expires \\d{4}-.*  last used never$`));
    // The listing shows prefixes; no secret part of any token is in it.
    const secret = gatewayKey.key.slice(gatewayKey.key_prefix.length + 1);
    expect(keys.stdout).not.toContain(secret.slice(0, 12));
    expect(bootstrap.stdout.trim().length).toBeGreaterThan(0);
    expect(keys.stdout).not.toContain(bootstrap.stdout.trim().slice(16, 28));

    const revoked = runCli(["admin", "revoke-key", gatewayKey.id, "--db", db, "--reason", "leaked in a log", "--json"], asOperator);
    expect(revoked.status).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ id: gatewayKey.id, status: "revoked", revoked_reason: "leaked in a log" });
    const again = runCli(["admin", "revoke-key", gatewayKey.id, "--db", db], asOperator);
    expect(again.status).toBe(0); // revoking twice is not an error
    expect(again.stdout).toMatch(new RegExp(`^revoked ${gatewayKey.id} \\(${gatewayKey.key_prefix}\\) at `));

    const active = JSON.parse(runCli(["admin", "list-keys", "--db", db, "--json"], asOperator).stdout) as { id: string }[];
    expect(active.map((key) => key.id)).not.toContain(gatewayKey.id);
    const revokedOnly = JSON.parse(runCli(["admin", "list-keys", "--db", db, "--status", "revoked", "--json"], asOperator).stdout) as { id: string }[];
    expect(revokedOnly.map((key) => key.id)).toEqual([gatewayKey.id]);
    expect(JSON.parse(runCli(["admin", "list-users", "--db", db, "--json"], asOperator).stdout)[0]).toMatchObject({ name: "gateway", active_keys: 0 });

    const events = runCli(["admin", "list-events", "--db", db, "--key-id", gatewayKey.id], asOperator);
    expect(events.status).toBe(0);
    const eventLines = events.stdout.trim().split("\n");
    expect(eventLines).toHaveLength(2); // created, revoked once: the second revocation wrote nothing
    // The operator created gateway's key: the log names who acted, not whose key it is.
    expect(eventLines[0]).toMatch(/  key\.created  key key_\w+  by root-op over cli  \{"name":"gw"/);
    expect(eventLines[1]).toMatch(/  key\.revoked  key key_\w+  by root-op over cli  \{"reason":"leaked in a log"\}$/);
    expect(events.stdout).not.toContain(secret.slice(0, 12));
  });

  it("refuses a bad status and an unknown key with one line on stderr", () => {
    const db = tempDb();
    expect(runCli(["admin", "create-project", "--db", db, "--slug", "seed", "--name", "seed"]).status).toBe(0);
    const cases: [string[], RegExp][] = [
      [["list-keys", "--status", "bogus"], /validation_error: .*status: must be one of active, revoked, expired, all/],
      [["revoke-key", "key_doesnotexist0000000"], /not_found: no API key with this id/],
      [["revoke-key"], /missing required argument 'id'/],
      [["revoke-key", "key_doesnotexist0000000", "--reason", ""], /^keywarden: validation_error: --reason: must not be empty\n$/],
      [["create-project", "--slug", "Not A Slug", "--name", "x"], /^keywarden: validation_error: --slug: must match/],
      [["create-project", "--slug", "ok", "--name", "x", "--scopes", ""], /^keywarden: validation_error: --scopes: must name at least one scope\n$/],
    ];
    for (const [args, message] of cases) {
      const result = runCli(["admin", ...args, "--db", db]);
      expect(result.status, args.join(" ")).not.toBe(0);
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
      [["--max-sessions", "0"], {}, /--max-sessions \/ KEYWARDEN_MAX_SESSIONS must be a positive integer/],
      [[], { KEYWARDEN_MAX_SESSIONS_PER_KEY: "ten" }, /--max-sessions-per-key \/ KEYWARDEN_MAX_SESSIONS_PER_KEY must be a positive integer/],
      [["--trust-proxy", "somewhere"], {}, /--trust-proxy .* must be a hop count/],
      // Used to pass here and fail at listen time as "cannot listen on 127.0.0.1 … invalid range".
      [["--trust-proxy", "10.0.0.0/99"], {}, /^keywarden: --trust-proxy .* must be a hop count, true, or addresses\/subnets .*got "10\.0\.0\.0\/99"\n$/],
      [["--trust-proxy", "99999999999999999999999"], {}, /^keywarden: --trust-proxy .*: hop count "99999999999999999999999" is too large\n$/],
      [[], { KEYWARDEN_MAX_EXPIRY_DAYS: "100000000" }, /^keywarden: --max-expiry-days \/ KEYWARDEN_MAX_EXPIRY_DAYS: 100000000 days from now is past 9999-12-31T23:59:59Z; none: no limit\n$/],
      [[], { KEYWARDEN_STATELESS: "maybe" }, /KEYWARDEN_STATELESS must be/],
      [["--key-watch-interval", "2"], {}, /^keywarden: --key-watch-interval \/ KEYWARDEN_KEY_WATCH_INTERVAL is in milliseconds, at least 100, got "2"\n$/],
      [[], { KEYWARDEN_KEY_NOTIFICATIONS: "maybe" }, /KEYWARDEN_KEY_NOTIFICATIONS must be/],
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
    for (const text of ["KEYWARDEN_HOST", "KEYWARDEN_PORT", "--stateless", "--allowed-origins", "--allow-query-key", "--no-auth", "KEYWARDEN_SESSION_IDLE_TIMEOUT", "KEYWARDEN_MAX_SESSIONS", "KEYWARDEN_MAX_SESSIONS_PER_KEY", "KEYWARDEN_KEY_WATCH_INTERVAL", "--no-key-notifications"]) {
      expect(help).toContain(text);
    }
  });

  it("applies --max-sessions-per-key and KEYWARDEN_MAX_SESSIONS: a key's second session closes its first; a full server answers another key 503", async () => {
    const db = tempDb();
    const first = mintKey(db, "alice", "a", "tools:read");
    const second = mintKey(db, "bob", "b", "tools:read");
    const server = await spawnHttpServer(["--db", db, "--max-sessions-per-key", "1"], { KEYWARDEN_MAX_SESSIONS: "1" });
    cleanups.push(() => server.stop());
    const open = (key: string) => rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, Authorization: `Bearer ${key}` }, body: initializeBody() });
    const list = (key: string, id: string) =>
      rawRequest(server.url, { method: "POST", headers: { ...MCP_HEADERS, Authorization: `Bearer ${key}`, "Mcp-Session-Id": id }, body: rpcBody("tools/list") });
    const one = String((await open(first.key)).headers["mcp-session-id"]);
    const two = String((await open(first.key)).headers["mcp-session-id"]);
    expect((await list(first.key, one)).status).toBe(404);
    expect((await list(first.key, two)).status).toBe(200);
    const refused = await open(second.key);
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("60");
    expect(server.stderr()).toContain(`"session":"${one.slice(0, 8)}","key":"${first.id}","why":"evicted"`);
  });

  it("refuses a port that is taken with one line and exit 2", async () => {
    const server = await spawnHttpServer(["--db", tempDb(), "--no-auth"]);
    cleanups.push(() => server.stop());
    const result = runCli(["serve", "--db", tempDb(), "--port", String(server.port)]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^keywarden: cannot listen on 127\.0\.0\.1 port \d+: .*EADDRINUSE.*\n$/);
  });
});

describe("keywarden admin commands that read or change what is there", () => {
  it("refuse a --db where no database is, in one line, and create nothing", () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const missing = join(dir, "typo", "keywarden.db");
    for (const args of [["list-keys"], ["list-users"], ["list-projects"], ["list-events"], ["revoke-key", "key_000000000000"]]) {
      const result = runCli(["admin", ...args, "--db", missing]);
      expect(result.status, args[0]).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toBe(`keywarden: no database at ${missing} (--db / KEYWARDEN_DB): this command creates none; check the path\n`);
      expect(existsSync(join(dir, "typo")), args[0]).toBe(false);
    }
    // The bootstrap command still creates it.
    expect(runCli(["admin", "create-key", "--db", missing, "--name", "first", "--scopes", "admin"]).status).toBe(0);
    expect(runCli(["admin", "list-keys", "--db", missing]).status).toBe(0);
  });
});

