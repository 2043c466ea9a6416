import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { randomBase62 } from "../../src/keys/base62.js";
import { secretOf } from "../helpers/harness.js";
import { rawRequest, spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";
import { forgeToken, newHygieneRecord, runHygieneWorkload, type HygieneRecord } from "./hygiene-workload.js";
import {
  connectHttp,
  ENGINES,
  engineSkipped,
  mintKeys,
  openTestDatabase,
  SecretScanner,
  spawnChild,
  type StdioChild,
  type TestDatabase,
} from "./support.js";

// Secret hygiene: after 1,000 creates and rotations, half over stdio and half over Streamable HTTP,
// at the same time on one database, no secret part of any token (nor its hash, nor the pepper)
// occurs in the database's own files (SQLite: the file and its WAL; PostgreSQL: the cluster's whole
// data directory, WAL segments included), in any row of any table (outside the hash column), in
// either server's log at trace level, in PostgreSQL's server log with every statement and its
// parameters logged, in any key event, any verify endpoint answer or any tool result other than
// the one that minted it. The same workload on each engine.

/** Mints per transport; both transports together make the 1,000 by default. */
const MINTS = Number(process.env.KEYWARDEN_HYGIENE_MINTS ?? 500);

/** Scans and fails naming the place and the first few secrets found there. */
function expectClean(scanner: SecretScanner, where: string, haystack: string | Buffer): void {
  const found = scanner.scan(haystack);
  expect(found.slice(0, 5), `${where}: ${found.length} secrets found`).toEqual([]);
}

/** The public key_prefix of a token: what its row holds in plain text. */
const prefixOf = (token: string) => token.split("_").slice(0, 2).join("_");

/**
 * Scans every file of the database as it is on disk now. A positive control as well: the newest
 * keys' prefixes, written in the same rows as their hashes, are in those bytes, so the scan looks
 * where the keys went. Returns how many files and bytes it read (0 when the files are out of reach).
 */
function expectCleanFiles(scanner: SecretScanner, database: TestDatabase, when: string, newest: string[]): { files: number; bytes: number } {
  const files = database.files();
  if (files.length === 0) return { files: 0, bytes: 0 };
  const unseen = new Set(newest.map(prefixOf));
  let bytes = 0;
  for (const file of files) {
    let content: Buffer;
    try {
      content = readFileSync(file);
    } catch {
      continue; // PostgreSQL removes temporary files while it runs
    }
    bytes += content.length;
    expectClean(scanner, `${file} (${when})`, content);
    for (const prefix of unseen) if (content.includes(prefix, 0, "latin1")) unseen.delete(prefix);
  }
  expect([...unseen], `${when}: prefixes of the newest keys in none of the ${files.length} files`).toEqual([]);
  return { files: files.length, bytes };
}

/** Checks a run's record: every minting result holds its own token only; nothing else holds any. */
function checkRecord(scanner: SecretScanner, record: HygieneRecord, label: string): void {
  expect(record.tokens, label).toHaveLength(MINTS);
  expect(new Set(record.tokens).size).toBe(MINTS);
  for (const { raw, token } of record.mintResults) {
    // A positive control as well: the scanner does find the secret where it must be.
    expect(scanner.scan(raw)).toEqual([`secret of ${token.slice(0, 15)}…`]);
  }
  const leaks = record.otherResults.map((raw) => ({ raw: raw.slice(0, 300), found: scanner.scan(raw) })).filter((r) => r.found.length > 0);
  expect(leaks.slice(0, 3), `${label}: ${leaks.length} non-minting results hold secrets`).toEqual([]);
  expect(record.calls.verify_api_key).toBe((MINTS / 2) * 5);
}

/** The bytes appended to a file since `from`. */
function readFrom(file: string, from: number): Buffer {
  const size = statSync(file).size;
  const buffer = Buffer.alloc(Math.max(0, size - from));
  const fd = openSync(file, "r");
  try {
    readSync(fd, buffer, 0, buffer.length, from);
  } finally {
    closeSync(fd);
  }
  return buffer;
}

for (const engine of ENGINES) {
  describe.skipIf(engineSkipped(engine))(`secret hygiene on ${engine}`, () => {
    let database: TestDatabase | undefined;
    afterAll(async () => database?.close());

    it(`${MINTS} creates and rotations over stdio and ${MINTS} over HTTP at once leave no secret in the database's files and rows, the logs, the events or other results`, async () => {
      database = await openTestDatabase(engine);
      const db = database.db;
      // PostgreSQL: every statement keywarden sends, with its parameters, goes to the server's log
      // (settings of this database only, for its new sessions): a secret sent to the server in
      // any form would be found there, not only one stored.
      const serverLog = database.serverLogFile;
      const serverLogFrom = serverLog ? statSync(serverLog).size : 0;
      if (engine === "postgres") {
        await database.all(
          `DO $$ BEGIN
             EXECUTE format('ALTER DATABASE %I SET log_statement = %L', current_database(), 'all');
             EXECUTE format('ALTER DATABASE %I SET log_parameter_max_length = %L', current_database(), '-1');
           END $$`,
        );
      }
      const pepper = `pepper-${randomBase62(24)}`;
      const scanner = new SecretScanner();
      scanner.add(pepper, "the pepper");
      const [bearer, gateway] = await mintKeys(
        db,
        [
          { user: "hygiene-http", name: "hygiene bearer", scopes: ["tools:read", "tools:execute"] },
          { user: "gateway", name: "hygiene gateway", scopes: ["keys:verify"] },
        ],
        { pepper },
      );
      // The keys callers authenticate with are secrets too: sent on every request, kept nowhere.
      for (const key of [bearer!, gateway!]) scanner.addToken(key.key, { pepper, withHashes: true });

      const stdioRecord = newHygieneRecord();
      const httpRecord = newHygieneRecord();
      const newest = () => [...stdioRecord.tokens.slice(-10), ...httpRecord.tokens.slice(-10)];
      const scanned: string[] = [];
      let stdio: StdioChild | undefined;
      let http: HttpServerProcess | undefined;
      try {
        stdio = spawnChild(["--db", db, "--log-level", "trace"], { KEYWARDEN_USER: "hygiene-stdio", KEYWARDEN_PEPPER: pepper });
        http = await spawnHttpServer(["--db", db, "--log-level", "trace", "--auth-failure-limit", "100000"], { KEYWARDEN_PEPPER: pepper });
        await stdio.connected;
        const { client: httpClient, transport: httpTransport } = await connectHttp(http.url, bearer!.key);

        /** The HTTP extras: the verify endpoint and failed authentications, for a sample of tokens. */
        const httpExtras = async (): Promise<void> => {
          for (const [i, token] of httpRecord.tokens.entries()) {
            if (i % 10 !== 0) continue;
            for (const key of [token, forgeToken(token)]) {
              const answer = await rawRequest(`${http!.base}/v1/keys/verify`, {
                method: "POST",
                headers: { "Content-Type": "application/json", Authorization: `Bearer ${gateway!.key}` },
                body: JSON.stringify({ key, required_scopes: ["tools:read"] }),
              });
              expect(answer.status).toBe(200);
              httpRecord.otherResults.push(answer.text);
            }
            // A minted key is not a key to keywarden if revoked, and a forged one never is: 401, audited, not logged.
            for (const key of [token, forgeToken(token)]) {
              const answer = await rawRequest(http!.url, {
                method: "POST",
                headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", Authorization: `Bearer ${key}` },
                body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
              });
              expect([400, 401]).toContain(answer.status);
              httpRecord.otherResults.push(JSON.stringify({ status: answer.status, headers: answer.headers, body: answer.text }));
            }
          }
        };

        const half = async (label: string) => {
          await Promise.all([
            runHygieneWorkload(stdio!.client, { mints: MINTS / 2, scanner, record: stdioRecord, pepper, label: `stdio-${label}` }),
            runHygieneWorkload(httpClient, { mints: MINTS / 2, scanner, record: httpRecord, pepper, label: `http-${label}` }),
          ]);
        };
        const walHolds = () => {
          const wal = database!.files().find((file) => file.endsWith("-wal"));
          return wal !== undefined && statSync(wal).size > 0;
        };
        await half("a");
        // Halfway, with both servers running: SQLite's newest rows are in the WAL, not yet in the
        // file; PostgreSQL's in pg_wal, and in the relation files only once a checkpoint wrote them.
        if (engine === "sqlite") expect(walHolds()).toBe(true);
        let read = expectCleanFiles(scanner, database, "both servers running, halfway", newest());
        scanned.push(`halfway: ${read.files} files, ${read.bytes} bytes`);
        await half("b");
        await httpExtras();
        if (engine === "sqlite") expect(walHolds()).toBe(true);
        read = expectCleanFiles(scanner, database, "both servers running, at the end", newest());
        scanned.push(`at the end: ${read.files} files, ${read.bytes} bytes`);

        // The raw audit rows and key rows, read straight from the database. Failed authentications
        // are written in batches at most a second late: wait for them.
        const eventTypes = async () => (await database!.all<{ t: string }>("SELECT DISTINCT event_type AS t FROM key_events ORDER BY 1")).map((row) => row.t);
        let types = await eventTypes();
        for (let attempt = 0; attempt < 50 && !types.includes("auth.failed"); attempt++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          types = await eventTypes();
        }
        const [events] = await database.all<{ n: number }>("SELECT CAST(count(*) AS INTEGER) AS n FROM key_events");
        expect(events!.n).toBeGreaterThanOrEqual(MINTS * 4);
        expect(types).toEqual(expect.arrayContaining(["auth.failed", "key.created", "key.revoked", "key.rotated", "key.updated"]));
        const tables = await database.rowsAsText();
        expect(Object.keys(tables)).toEqual(expect.arrayContaining(["api_keys", "key_events", "users"]));
        for (const token of newest()) expect(tables.api_keys).toContain(prefixOf(token));
        for (const [table, text] of Object.entries(tables)) expectClean(scanner, `${table} rows (api_keys without key_hash)`, text);
        expect(tables.key_events).not.toMatch(/key_hash|"hash"/);
        // A positive control: the hash column does hold every minted key's hash as the scanner knows it.
        const hashes = scanner.scan((await database.keyHashesHex()).join("\n")).filter((label) => label.startsWith("hex hash of"));
        expect(hashes).toHaveLength(2 * MINTS + 2);

        await httpTransport.terminateSession().catch(() => undefined);
        await httpClient.close();
        // SIGTERM: the HTTP server flushes pending last-use writes and closes the database.
        expect(await http.stop()).toBe(0);
        await stdio.close();
        // Trace level really logged the calls (the logs are worth scanning).
        expect(stdio.stderr().split("\n").filter((line) => line.includes('"tool call"')).length).toBeGreaterThan(MINTS * 5);
        expect(http.stderr().split("\n").filter((line) => line.includes('"http request"')).length).toBeGreaterThan(MINTS * 5);
        expect(http.stderr()).not.toMatch(/MaxListenersExceeded|"level":50|"level":60/);
        expectClean(scanner, "stdio server log (stderr, trace level)", stdio.stderr());
        expectClean(scanner, "http server log (stderr, trace level)", http.stderr());
        stdio = undefined;
        http = undefined;
        // After a clean shutdown (SQLite folds the WAL into the file): scan what is left.
        read = expectCleanFiles(scanner, database, "after shutdown", newest());
        scanned.push(`after shutdown: ${read.files} files, ${read.bytes} bytes`);
      } finally {
        await stdio?.close();
        await http?.stop("SIGKILL");
      }
      checkRecord(scanner, stdioRecord, "stdio");
      checkRecord(scanner, httpRecord, "http");

      if (serverLog) {
        // The parameters are in the log: the hashes are (keywarden sends them to be stored), so
        // the scan reads them. No secret part and no pepper may be: nothing sends one to the server.
        const log = readFrom(serverLog, serverLogFrom);
        const statements = log.toString("latin1").match(/LOG: {2}(statement|execute [^:]*):/g)?.length ?? 0;
        expect(statements).toBeGreaterThan(MINTS * 10);
        expect(scanner.scan(log).filter((label) => label.startsWith("hex hash of")).length).toBeGreaterThan(MINTS);
        const secretsOnly = new SecretScanner();
        secretsOnly.add(pepper, "the pepper");
        for (const token of [bearer!.key, gateway!.key, ...stdioRecord.tokens, ...httpRecord.tokens]) secretsOnly.addToken(token);
        for (const forged of [...stdioRecord.forged, ...httpRecord.forged]) secretsOnly.add(secretOf(forged), `forged or mistyped ${forged.slice(0, 15)}…`);
        expectClean(secretsOnly, `PostgreSQL server log ${serverLog} (every statement, with parameters)`, log);
        scanned.push(`server log: ${log.length} bytes, ${statements} statements`);
      }
      console.log(
        `${engine}: stdio: ${stdioRecord.tokens.length} tokens, ${stdioRecord.otherResults.length} other results; ` +
          `http: ${httpRecord.tokens.length} tokens, ${httpRecord.otherResults.length} other results; ${scanner.size} needles\n` +
          `scanned ${scanned.length > 0 ? scanned.join("; ") : "no database files (out of reach)"}`,
      );
    });
  });
}
