// tsc compiles TypeScript only: copy the SQL migrations of each engine (src/store/migrations.ts reads them) beside the compiled store and mark the CLI executable.
import { chmodSync, cpSync } from "node:fs";

for (const dir of ["migrations", "migrations-postgres"]) {
  cpSync(`src/store/${dir}`, `dist/store/${dir}`, { recursive: true, filter: (path) => !/\.ts$/.test(path) });
}
chmodSync("dist/cli.js", 0o755);
