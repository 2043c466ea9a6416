import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
// Importing the command tree parses nothing: were it to read process.argv (vitest's), this file
// would run a command or exit before any test.
import { buildProgram, exitFor } from "../../src/cli/program.js";
import { ConfigError, resolveConfig, resolveHttpConfig } from "../../src/config/index.js";
import { DEFAULT_KEY_WATCH_INTERVAL_MS, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_KEY } from "../../src/transports/http/defaults.js";
import { ServiceError } from "../../src/service/errors.js";
import { StoreOpenError } from "../../src/store/sqlite.js";

describe("buildProgram", () => {
  it("builds the command tree without parsing argv: stdio at the root, serve, and the admin commands", () => {
    const program = buildProgram();
    expect(program.name()).toBe("keywarden");
    expect(program.commands.map((command) => command.name())).toEqual(["serve", "admin"]);
    const admin = program.commands.find((command) => command.name() === "admin")!;
    expect(admin.commands.map((command) => command.name())).toEqual([
      "create-project",
      "create-key",
      "list-projects",
      "list-users",
      "list-keys",
      "revoke-key",
      "list-events",
      "copy",
    ]);
    // copy names its two databases itself (--from, --to): none of the common options apply to it.
    const copy = admin.commands.find((command) => command.name() === "copy")!;
    expect(copy.options.map((option) => option.long)).toEqual(["--from", "--to", "--json"]);
    const usual = admin.commands.filter((command) => command !== copy);
    for (const command of [program, ...program.commands.filter((c) => c.name() === "serve"), ...usual]) {
      expect(command.options.map((option) => option.long), command.name()).toEqual(expect.arrayContaining(["--db", "--user", "--log-level"]));
    }
    for (const command of admin.commands) expect(command.options.map((option) => option.long), command.name()).toContain("--json");
    expect(program.options.map((option) => option.long)).toContain("--admin");
  });

  it("builds a fresh tree each call: parsing one leaves the next untouched", async () => {
    const first = buildProgram().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    await expect(first.parseAsync(["node", "keywarden", "--version"])).rejects.toMatchObject({ code: "commander.version", exitCode: 0 });
    expect(buildProgram().opts()).toEqual({});
  });
});

describe("exitFor", () => {
  it("maps each error to its exit status and one line (README, Configuration: 2 for a bad flag)", () => {
    expect(exitFor(new ConfigError("--port / KEYWARDEN_PORT must be an integer"))).toEqual({ status: 2, message: "keywarden: --port / KEYWARDEN_PORT must be an integer" });
    expect(exitFor(new StoreOpenError("cannot open database /x: no"))).toEqual({ status: 2, message: "keywarden: cannot open database /x: no" });
    expect(exitFor(new ServiceError("not_found", "no project with this id or slug", [{ key: "--project", message: "not_found" }]))).toEqual({
      status: 1,
      message: "keywarden: not_found: no project with this id or slug (--project: not_found)",
    });
    expect(exitFor(new CommanderError(1, "commander.unknownOption", "error: unknown option '--nope'"))).toEqual({ status: 2, message: null });
    expect(exitFor(new CommanderError(0, "commander.version", "0.1.0"))).toEqual({ status: 0, message: null });
    expect(exitFor(new Error("boom"))).toEqual({ status: 1, message: "keywarden: unexpected error: boom" });
  });
});

describe("keywarden --help", () => {
  it("names as each flag's default what the configuration resolves to without it", () => {
    const options = buildProgram().options;
    /** The "(default: …)" of a flag's help line. */
    const helpDefault = (flag: string): string => {
      const option = options.find((candidate) => candidate.long === flag);
      const found = option?.description.match(/\(default: ([^)]*)\)/);
      if (!found) throw new Error(`${flag} has no "(default: …)" in its help`);
      return found[1]!;
    };
    const config = resolveConfig({}, {});
    const postgres = resolveConfig({ db: "postgres://localhost/keywarden" }, {}).database;
    const days = (value: number | null) => (value === null ? "none" : String(value));
    expect(helpDefault("--max-active-keys")).toBe(String(config.service.policy.maxActiveKeysPerUser));
    expect(helpDefault("--default-expiry-days")).toBe(days(config.service.policy.defaultExpiryDays));
    expect(helpDefault("--max-expiry-days")).toBe(days(config.service.policy.maxExpiryDays));
    expect(helpDefault("--default-scopes")).toBe(config.service.policy.defaultScopes.join(","));
    expect(helpDefault("--key-brand")).toBe(config.service.keyBrand);
    expect(helpDefault("--log-level")).toBe(config.logLevel);
    expect(postgres.engine === "postgres" && [helpDefault("--pg-pool-size"), helpDefault("--pg-statement-timeout")]).toEqual([
      String(postgres.engine === "postgres" && postgres.poolSize),
      String(postgres.engine === "postgres" && postgres.statementTimeoutMs),
    ]);
    expect(config.verificationCache).not.toBe(false);
    expect(helpDefault("--verify-cache-entries")).toBe(String(config.verificationCache && config.verificationCache.maxEntries));
    expect(helpDefault("--verify-cache-bytes")).toMatch(new RegExp(`^${config.verificationCache && config.verificationCache.maxBytes}, `));
  });
});

describe("keywarden serve --help", () => {
  it("names as each flag's default what the server runs with without it", () => {
    const serve = buildProgram().commands.find((command) => command.name() === "serve")!;
    const helpDefault = (flag: string): string => {
      const found = serve.options.find((candidate) => candidate.long === flag)?.description.match(/\(default: ([^)]*)\)/);
      if (!found) throw new Error(`${flag} has no "(default: …)" in its help`);
      return found[1]!;
    };
    const http = resolveHttpConfig({}, {});
    expect(helpDefault("--host")).toBe(http.host);
    expect(helpDefault("--port")).toBe(String(http.port));
    expect(helpDefault("--session-idle-timeout")).toBe(String(http.sessionIdleTimeoutMs / 1000));
    expect(helpDefault("--auth-failure-limit")).toBe(String(http.authFailureLimit));
    expect(helpDefault("--auth-failure-window")).toBe(String(http.authFailureWindowMs / 1000));
    // Left to the server when not given (config undefined): its own defaults.
    expect([http.maxSessions, http.maxSessionsPerKey, http.keyWatchIntervalMs]).toEqual([undefined, undefined, undefined]);
    expect(helpDefault("--max-sessions")).toBe(String(DEFAULT_MAX_SESSIONS));
    expect(helpDefault("--max-sessions-per-key")).toBe(String(DEFAULT_MAX_SESSIONS_PER_KEY));
    expect(helpDefault("--key-watch-interval")).toBe(String(DEFAULT_KEY_WATCH_INTERVAL_MS));
  });
});
