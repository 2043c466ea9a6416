import { defineConfig } from "vitest/config";

// The reliability suite (crashes, races, secret hygiene, hostile input, soak): slower than unit
// tests and run by `npm run test:reliability`, which .ci/run calls after `npm test`.
export default defineConfig({
  test: {
    include: ["test/reliability/**/*.test.ts"],
    pool: "forks",
    // A PostgreSQL server for the PostgreSQL tests, or a loud skip (test/helpers/pg-global-setup.ts).
    globalSetup: ["test/helpers/pg-global-setup.ts"],
    // One file at a time: races and soak measure the machine, and it has two cores.
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 60_000,
  },
});
