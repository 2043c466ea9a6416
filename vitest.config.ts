import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The reliability suite has its own config and command (npm run test:reliability).
    exclude: ["test/reliability/**", "node_modules/**"],
    // better-sqlite3 is a native addon: separate processes keep each file's databases apart.
    pool: "forks",
    // A PostgreSQL server for the PostgreSQL tests, or a loud skip (test/helpers/pg-global-setup.ts).
    globalSetup: ["test/helpers/pg-global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
