import { join } from "node:path";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import { makeTempDir } from "../helpers/harness.js";
import { describeKeyStoreContract } from "./contract.js";

// A file, as keywarden runs (WAL, synchronous FULL), and the in-memory database `KEYWARDEN_DB=:memory:` gives.
describeKeyStoreContract("SQLite file", async () => {
  const { dir, cleanup } = makeTempDir();
  const store = SqliteKeyStore.open({ path: join(dir, "contract.db") });
  return {
    store,
    close: async () => {
      await store.close();
      cleanup();
    },
  };
});

describeKeyStoreContract("SQLite :memory:", async () => {
  const store = SqliteKeyStore.open({ path: ":memory:" });
  return { store, close: () => store.close() };
});
