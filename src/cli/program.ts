// The command tree and the exit codes. buildProgram() parses nothing: the bin entry (src/cli.ts)
// calls run(process.argv); tests import buildProgram to inspect the tree.
import { Command, CommanderError } from "commander";
import { ConfigError } from "../config/index.js";
import { PEPPER_MIN_LENGTH } from "../keys/hash.js";
import { ServiceError } from "../service/errors.js";
import { StoreOpenError } from "../store/errors.js";
import { VERSION } from "../version.js";
import { addCopy } from "./admin-copy.js";
import { addListEvents } from "./admin-events.js";
import { addCreateKey, addListKeys, addRevokeKey } from "./admin-keys.js";
import { addCreateProject, addListProjects, addListUsers } from "./admin-projects.js";
import { addCommonOptions } from "./options.js";
import { addServeCommand, addStdioAction } from "./serve.js";

export function buildProgram(): Command {
  const program = addCommonOptions(new Command("keywarden"))
    .description("An MCP server that issues and manages API keys. Without a command it serves MCP over stdio.")
    .version(VERSION, "-v, --version")
    // Options after a subcommand belong to it (`keywarden admin list-projects --db x`); without
    // this, commander hands them to the root command and the subcommand silently uses the default.
    .enablePositionalOptions()
    // A usage error (unknown option, missing value or argument) is a bad flag: one line, exit 2,
    // like every other (README, Configuration). Subcommands made below inherit both settings.
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`keywarden: ${text.replace(/^error: /, "").replace(/\s*\n(?=.)/g, " ")}`) });
  addStdioAction(program);
  addServeCommand(program);
  // Settings that are no flag (a secret belongs in the environment, not in a command line that
  // `ps` shows), and where each command's own flags are listed (README, Configuration).
  program.addHelpText(
    "after",
    [
      "",
      "Environment only:",
      `  KEYWARDEN_PEPPER  when set (${PEPPER_MIN_LENGTH}+ characters), keys are hashed with HMAC-SHA-256 keyed by it; keep it secret and stable`,
      "",
      "Each command's own flags: keywarden serve --help, keywarden admin <command> --help.",
    ].join("\n"),
  );

  const admin = program.command("admin").description("operator commands that act on the database directly").enablePositionalOptions();
  // In the order `keywarden admin --help` lists them.
  for (const add of [addCreateProject, addCreateKey, addListProjects, addListUsers, addListKeys, addRevokeKey, addListEvents, addCopy]) add(admin);
  return program;
}

/**
 * The exit status of an error, and the one line that tells it (null: already written). 2 for a bad
 * flag, environment value or database (README, Configuration); 1 for a refusal or anything else.
 */
export function exitFor(error: unknown): { status: number; message: string | null } {
  if (error instanceof CommanderError) {
    // Commander has written its line already; help and --version end here too, with their own code.
    return { status: error.exitCode === 0 || error.code === "commander.help" ? error.exitCode : 2, message: null };
  }
  if (error instanceof ConfigError || error instanceof StoreOpenError) return { status: 2, message: `keywarden: ${error.message}` };
  if (error instanceof ServiceError) {
    const fields = error.errors.map((field) => `${field.key}: ${field.message}`).join("; ");
    return { status: 1, message: `keywarden: ${error.code}: ${error.message}${fields ? ` (${fields})` : ""}` };
  }
  return { status: 1, message: `keywarden: unexpected error: ${(error as Error)?.message ?? String(error)}` };
}

/** Parses argv and runs the command; on error, one clear line on stderr and its exit status, never a stack trace. */
export async function run(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    const { status, message } = exitFor(error);
    if (message !== null) process.stderr.write(`${message}\n`);
    process.exit(status);
  }
}
