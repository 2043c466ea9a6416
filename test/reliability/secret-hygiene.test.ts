import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { randomBase62 } from "../../src/keys/base62.js";
import { makeTempDir } from "../helpers/harness.js";
import { rawRequest, spawnHttpServer, type HttpServerProcess } from "../helpers/http.js";
import { forgeToken, newHygieneRecord, runHygieneWorkload, type HygieneRecord } from "./hygiene-workload.js";
import { connectHttp, databaseFiles, mintKeys, SecretScanner, spawnChild, type StdioChild } from "./support.js";

// Secret hygiene: after 1,000 creates and rotations, half over stdio and half over Streamable HTTP,
// at the same time on one database, no secret part of any token (nor its hash, nor the pepper)
// occurs in the database file, its WAL, either server's log at trace level, any key event, any
// verify endpoint answer or any tool result other than the one that minted it.

/** Mints per transport; both transports together make the 1,000 by default. */
const MINTS = Number(process.env.KEYWARDEN_HYGIENE_MINTS ?? 500);
const temp = makeTempDir();
afterAll(() => temp.cleanup());

/** Every row of every table as text (api_keys without its key_hash column), and the event types seen. */
function rowsAsText(dbPath: string): { tables: Record<string, string>; eventCount: number; eventTypes: string[] } {
  const db = new Database(dbPath, { readonly: true });
  try {
    const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((row) => row.name);
    const tables: Record<string, string> = {};
    for (const name of names) {
      const rows = db.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[];
      tables[name] = JSON.stringify(rows.map((row) => ({ ...row, key_hash: undefined })));
    }
    const events = db.prepare("SELECT event_type FROM key_events").all() as { event_type: string }[];
    return { tables, eventCount: events.length, eventTypes: [...new Set(events.map((event) => event.event_type))].sort() };
  } finally {
    db.close();
  }
}

/** Scans and fails naming the place and the first few secrets found there. */
function expectClean(scanner: SecretScanner, where: string, haystack: string | Buffer): void {
  const found = scanner.scan(haystack);
  expect(found.slice(0, 5), `${where}: ${found.length} secrets found`).toEqual([]);
}

function expectCleanFiles(scanner: SecretScanner, dbPath: string, when: string): void {
  const files = databaseFiles(dbPath);
  expect(files.length).toBeGreaterThan(0);
  for (const { file, bytes } of files) expectClean(scanner, `${file} (${when})`, bytes);
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

describe("secret hygiene", () => {
  it(`${MINTS} creates and rotations over stdio and ${MINTS} over HTTP at once leave no secret in the database, its WAL, the logs, the events or other results`, async () => {
    const dbPath = join(temp.dir, "hygiene.db");
    const pepper = `pepper-${randomBase62(24)}`;
    const scanner = new SecretScanner();
    scanner.add(pepper, "the pepper");
    const [bearer, gateway] = await mintKeys(
      dbPath,
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
    let stdio: StdioChild | undefined;
    let http: HttpServerProcess | undefined;
    try {
      stdio = spawnChild(["--db", dbPath, "--log-level", "trace"], { KEYWARDEN_USER: "hygiene-stdio", KEYWARDEN_PEPPER: pepper });
      http = await spawnHttpServer(["--db", dbPath, "--log-level", "trace", "--auth-failure-limit", "100000"], { KEYWARDEN_PEPPER: pepper });
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
      await half("a");
      // Halfway, with both servers running: the newest rows are in the WAL, not yet in the file.
      expect(existsSync(`${dbPath}-wal`) && statSync(`${dbPath}-wal`).size > 0).toBe(true);
      expectCleanFiles(scanner, dbPath, "both servers running, halfway");
      await half("b");
      await httpExtras();
      expect(statSync(`${dbPath}-wal`).size).toBeGreaterThan(0);
      expectCleanFiles(scanner, dbPath, "both servers running, at the end");

      // The raw audit rows and key rows, read straight from the database. Failed authentications
      // are written in batches at most a second late: wait for them.
      let rows = rowsAsText(dbPath);
      for (let attempt = 0; attempt < 50 && !rows.eventTypes.includes("auth.failed"); attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        rows = rowsAsText(dbPath);
      }
      expect(rows.eventCount).toBeGreaterThanOrEqual(MINTS * 4);
      expect(rows.eventTypes).toEqual(expect.arrayContaining(["auth.failed", "key.created", "key.revoked", "key.rotated", "key.updated"]));
      expect(Object.keys(rows.tables)).toEqual(expect.arrayContaining(["api_keys", "key_events", "users"]));
      for (const [table, text] of Object.entries(rows.tables)) expectClean(scanner, `${table} rows (api_keys without key_hash)`, text);
      expect(rows.tables.key_events).not.toMatch(/key_hash|"hash"/);

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
      // After a clean shutdown the WAL is folded into the file: scan what is left.
      expectCleanFiles(scanner, dbPath, "after shutdown");
    } finally {
      await stdio?.close();
      await http?.stop("SIGKILL");
    }
    checkRecord(scanner, stdioRecord, "stdio");
    checkRecord(scanner, httpRecord, "http");
    console.log(
      `stdio: ${stdioRecord.tokens.length} tokens, ${stdioRecord.otherResults.length} other results; ` +
        `http: ${httpRecord.tokens.length} tokens, ${httpRecord.otherResults.length} other results; ${scanner.size} needles`,
    );
  });
});
