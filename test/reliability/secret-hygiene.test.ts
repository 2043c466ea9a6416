import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { randomBase62 } from "../../src/keys/base62.js";
import { makeTempDir } from "../helpers/harness.js";
import { newHygieneRecord, runHygieneWorkload, type HygieneRecord } from "./hygiene-workload.js";
import { databaseFiles, SecretScanner, spawnChild, type StdioChild } from "./support.js";

// Secret hygiene: after 1,000 creates and rotations, no secret part of any token (nor its hash,
// nor the pepper) occurs in the database file, its WAL, the server's log at trace level, any key
// event or any tool result other than the one that minted it.

const MINTS = 1000;
const temp = makeTempDir();
afterAll(() => temp.cleanup());

/** Everything the database holds outside the hash column, as text: events whole, keys without key_hash. */
function rowsAsText(dbPath: string): { events: string; keys: string; eventCount: number } {
  const db = new Database(dbPath, { readonly: true });
  try {
    const events = db.prepare("SELECT * FROM key_events").all();
    const keys = db.prepare("SELECT * FROM api_keys").all().map((row) => ({ ...(row as Record<string, unknown>), key_hash: undefined }));
    return { events: JSON.stringify(events), keys: JSON.stringify(keys), eventCount: events.length };
  } finally {
    db.close();
  }
}

/** Scans and fails naming the place and the first few secrets found there. */
function expectClean(scanner: SecretScanner, where: string, haystack: string | Buffer): void {
  const found = scanner.scan(haystack);
  expect(found.slice(0, 5), `${where}: ${found.length} secrets found`).toEqual([]);
}

function scanFiles(scanner: SecretScanner, dbPath: string): Record<string, string[]> {
  const found: Record<string, string[]> = {};
  for (const { file, bytes } of databaseFiles(dbPath)) {
    const leaks = scanner.scan(bytes);
    if (leaks.length > 0) found[file] = leaks.slice(0, 5);
  }
  return found;
}

/** Checks a run's record: every minting result holds its own token only; nothing else holds any. */
function checkRecord(scanner: SecretScanner, record: HygieneRecord): void {
  expect(record.tokens).toHaveLength(MINTS);
  expect(new Set(record.tokens).size).toBe(MINTS);
  for (const { raw, token } of record.mintResults) {
    // A positive control as well: the scanner does find the secret where it must be.
    expect(scanner.scan(raw)).toEqual([`secret of ${token.slice(0, 15)}…`]);
  }
  const leaks = record.otherResults.map((raw) => ({ raw: raw.slice(0, 300), found: scanner.scan(raw) })).filter((r) => r.found.length > 0);
  expect(leaks.slice(0, 3), `${leaks.length} non-minting tool results hold secrets`).toEqual([]);
}

describe("secret hygiene", () => {
  it(`over stdio: ${MINTS} creates and rotations leave no secret in the database, its WAL, the log, the events or other results`, async () => {
    const dbPath = join(temp.dir, "stdio.db");
    const pepper = `pepper-${randomBase62(24)}`;
    const scanner = new SecretScanner();
    scanner.add(pepper, "the pepper");
    const record = newHygieneRecord();
    let server: StdioChild | undefined = spawnChild(["--db", dbPath, "--log-level", "trace"], {
      KEYWARDEN_USER: "hygiene",
      KEYWARDEN_PEPPER: pepper,
    });
    try {
      await server.connected;
      await runHygieneWorkload(server.client, { mints: MINTS / 2, scanner, record, pepper, label: "stdio" });
      // Halfway, while the server runs: the newest rows are in the WAL, not yet in the file.
      expect(existsSync(`${dbPath}-wal`) && statSync(`${dbPath}-wal`).size > 0).toBe(true);
      expect(scanFiles(scanner, dbPath), "database, WAL and shm while running, halfway").toEqual({});
      await runHygieneWorkload(server.client, { mints: MINTS / 2, scanner, record, pepper, label: "stdio2" });
      expect(statSync(`${dbPath}-wal`).size).toBeGreaterThan(0);
      expect(scanFiles(scanner, dbPath), "database, WAL and shm while running, at the end").toEqual({});

      // The raw audit rows and key rows, read straight from the database.
      const rows = rowsAsText(dbPath);
      expect(rows.eventCount).toBeGreaterThanOrEqual(MINTS * 2);
      expectClean(scanner, "key_events rows", rows.events);
      expectClean(scanner, "api_keys rows (but key_hash)", rows.keys);
      expect(rows.events).not.toMatch(/key_hash|"hash"/);

      const stderr = server.stderr();
      // Trace level really logged the calls (the log is worth scanning).
      expect(stderr.split("\n").filter((line) => line.includes('"tool call"')).length).toBeGreaterThan(MINTS * 5);
      expectClean(scanner, "server log (stderr, trace level)", stderr);

      await server.close();
      server = undefined;
      // After a clean shutdown the WAL is folded into the file: scan what is left.
      expect(scanFiles(scanner, dbPath), "database after shutdown").toEqual({});
    } finally {
      await server?.close();
    }
    checkRecord(scanner, record);
    expect(record.calls.verify_api_key).toBe((MINTS / 2) * 5);
    console.log(`stdio: ${record.tokens.length} tokens, ${record.forged.length} forged, ${record.otherResults.length} other results scanned`);
  });
});
