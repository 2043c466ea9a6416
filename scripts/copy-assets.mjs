// tsc compiles TypeScript only: copy the SQL migrations beside the compiled store and mark the CLI executable.
import { chmodSync, cpSync } from "node:fs";

cpSync("src/store/migrations", "dist/store/migrations", { recursive: true, filter: (path) => !/\.ts$/.test(path) });
chmodSync("dist/cli.js", 0o755);
