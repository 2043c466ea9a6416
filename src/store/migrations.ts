import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const MIGRATION_FILE = /^(\d{3})_([a-z0-9_]+)\.sql$/;

/** The numbered SQL files beside this module, in order; version N is the Nth file. */
export function loadMigrations(directory: URL = new URL("./migrations/", import.meta.url)): Migration[] {
  const path = fileURLToPath(directory);
  const migrations = readdirSync(path)
    .map((file) => ({ file, match: MIGRATION_FILE.exec(file) }))
    .filter((entry): entry is { file: string; match: RegExpExecArray } => entry.match !== null)
    .map(({ file, match }) => ({
      version: Number(match[1]),
      name: match[2]!,
      sql: readFileSync(`${path}/${file}`, "utf8"),
    }))
    .sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(`migrations must be numbered 001, 002, … without gaps; found ${migration.version} at position ${index + 1}`);
    }
  });
  return migrations;
}
