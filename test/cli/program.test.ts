import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
// Importing the command tree parses nothing: were it to read process.argv (vitest's), this file
// would run a command or exit before any test.
import { buildProgram, exitFor } from "../../src/cli/program.js";
import { ConfigError } from "../../src/config/index.js";
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
