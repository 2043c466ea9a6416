// keywarden admin copy --from <sqlite path> --to postgres://…
import { resolve } from "node:path";
import type { Command } from "commander";
import { ConfigError } from "../config/index.js";
import { copySqliteToPostgres, CopyFailedError, type TableCount } from "../store/copy.js";
import { isPostgresUrl } from "../store/database.js";
import { print } from "./format.js";

export function addCopy(admin: Command): void {
  admin
    .command("copy")
    .description(
      "copy a SQLite database (keys, hashes, events, last use, projects, users) into an empty PostgreSQL database, " +
        "all or nothing, and compare the counts of every table; the SQLite file is only read",
    )
    .requiredOption("--from <path>", "the SQLite database file to copy; stop every keywarden that uses it first")
    .requiredOption("--to <url>", "postgres://user:password@host:port/database of an empty database (what the URL leaves out comes from PG* variables)")
    .option("--json", "print JSON")
    .action(async (options: { from: string; to: string; json?: boolean }) => {
      // Not echoed: a password in a value without its scheme could not be masked.
      if (!isPostgresUrl(options.to)) throw new ConfigError("--to must be a postgres:// or postgresql:// URL (--from takes the SQLite file)");
      if (isPostgresUrl(options.from)) throw new ConfigError("--from takes a SQLite database file; the PostgreSQL database goes in --to");
      try {
        const report = await copySqliteToPostgres({ from: resolve(options.from), to: options.to });
        print(options.json === true, report, `copied ${report.from} to ${report.to} in ${(report.milliseconds / 1000).toFixed(1)} s\n${countTable(report.counts)}\nevery count matches`);
      } catch (error) {
        if (!(error instanceof CopyFailedError)) throw error;
        // A failure after the copy began: the target was rolled back. Not a bad flag: exit 1.
        if (error.counts) process.stdout.write(`${countTable(error.counts)}\n`);
        process.stderr.write(`keywarden: ${error.message}\n`);
        process.exitCode = 1;
      }
    });
}

/** One line per table: rows in the source's snapshot and in the target. */
function countTable(counts: readonly TableCount[]): string {
  const width = Math.max(...counts.map((count) => count.table.length));
  const header = `${"table".padEnd(width)}  ${"source".padStart(9)}  ${"target".padStart(9)}`;
  const rows = counts.map((count) => `${count.table.padEnd(width)}  ${String(count.source).padStart(9)}  ${String(count.target).padStart(9)}${count.source === count.target ? "" : "  DIFFERS"}`);
  return [header, ...rows].join("\n");
}
