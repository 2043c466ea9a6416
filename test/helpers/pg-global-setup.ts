// Vitest global setup (both configs): gives the PostgreSQL tests a server. KEYWARDEN_TEST_PG_URL
// names one to use; otherwise, when PostgreSQL's binaries are installed, a throwaway cluster is
// started for the run and stopped after it. With neither, the PostgreSQL tests are skipped and
// the run says so loudly; KEYWARDEN_REQUIRE_PG=1 (set by .ci/run and `npm run test:pg`) turns
// that skip into a failure. A cluster started here is also named by KEYWARDEN_TEST_PG_DATA (its
// data directory) and KEYWARDEN_TEST_PG_LOG (its server log), which the secret-hygiene test scans;
// a server given by URL has neither.
import { findPgBin, startPgCluster, type PgCluster } from "./pg-cluster.mjs";

export default async function setup(): Promise<() => void> {
  let cluster: PgCluster | undefined;
  if (!process.env.KEYWARDEN_TEST_PG_URL) {
    const bin = findPgBin();
    if (bin) {
      cluster = await startPgCluster(bin, { durable: false });
      process.env.KEYWARDEN_TEST_PG_URL = cluster.url;
      process.env.KEYWARDEN_TEST_PG_DATA = cluster.dataDir;
      process.env.KEYWARDEN_TEST_PG_LOG = cluster.logFile;
    }
  }
  if (!process.env.KEYWARDEN_TEST_PG_URL) {
    const why = "no KEYWARDEN_TEST_PG_URL and no PostgreSQL binaries (/usr/lib/postgresql/*/bin or PG_BIN)";
    if (process.env.KEYWARDEN_REQUIRE_PG === "1") throw new Error(`KEYWARDEN_REQUIRE_PG=1 but ${why}`);
    process.stderr.write(`\n*** PostgreSQL tests SKIPPED: ${why}. Run \`npm run test:pg\` to require them. ***\n\n`);
  }
  return () => cluster?.stop();
}
