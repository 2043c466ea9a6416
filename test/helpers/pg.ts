// PostgreSQL for tests: each caller gets a database of its own on the server the global setup
// provides (test/helpers/pg-global-setup.ts), dropped when it is done.
import { randomBytes } from "node:crypto";
import postgres from "postgres";

/** The server's URL, or null when the PostgreSQL tests are skipped. */
export const PG_URL: string | null = process.env.KEYWARDEN_TEST_PG_URL ?? null;

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A new empty database on the test server. */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (!PG_URL) throw new Error("no PostgreSQL test server (KEYWARDEN_TEST_PG_URL)");
  const name = `keywarden_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(PG_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const admin = postgres(PG_URL!, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
