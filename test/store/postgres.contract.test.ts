import { describe } from "vitest";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { createTestDatabase, PG_URL } from "../helpers/pg.js";
import { describeKeyStoreContract } from "./contract.js";

// The contract, unchanged, on PostgreSQL: a fresh database for each test (test/helpers/pg.ts).
describe.skipIf(!PG_URL)("PostgreSQL", () => {
  describeKeyStoreContract("PostgreSQL", async () => {
    const database = await createTestDatabase();
    const store = await PostgresKeyStore.open({ url: database.url });
    return {
      store,
      close: async () => {
        await store.close();
        await database.drop();
      },
    };
  });
});
