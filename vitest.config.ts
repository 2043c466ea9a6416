import { defineConfig } from "vitest/config";

// The tool tests run twice: on SQLite, and on PostgreSQL (KEYWARDEN_TEST_STORE=postgres makes
// test/helpers/harness.ts open a fresh PostgreSQL database for each harness). The PostgreSQL run
// needs a server: the global setup starts one, or skips loudly (test/helpers/pg-global-setup.ts);
// a test file on PostgreSQL with no server fails, so this project is left out when there is none
// to be had, and KEYWARDEN_REQUIRE_PG=1 (CI) makes that a failure in the global setup.
const pgAvailable =
  Boolean(process.env.KEYWARDEN_TEST_PG_URL) ||
  (await import("./test/helpers/pg-cluster.mjs")).findPgBin() !== null;

export default defineConfig({
  test: {
    // better-sqlite3 is a native addon: separate processes keep each file's databases apart.
    pool: "forks",
    // A PostgreSQL server for the PostgreSQL tests, or a loud skip (test/helpers/pg-global-setup.ts).
    globalSetup: ["test/helpers/pg-global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: "sqlite",
          include: ["test/**/*.test.ts"],
          // The reliability suite has its own config and command (npm run test:reliability).
          exclude: ["test/reliability/**", "node_modules/**"],
        },
      },
      ...(pgAvailable
        ? [{ extends: true as const, test: { name: "tools on postgres", include: ["test/tools/**/*.test.ts"], env: { KEYWARDEN_TEST_STORE: "postgres" } } }]
        : []),
    ],
  },
});
