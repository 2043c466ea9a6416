import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { ElicitRequestSchema, type ElicitRequest, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { createServer } from "../../src/server.js";
import { DEFAULT_POLICY, type Policy } from "../../src/service/policy.js";
import type { Principal } from "../../src/service/principal.js";
import { KeyService } from "../../src/service/service.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { SqliteKeyStore } from "../../src/store/sqlite.js";
import type { KeyStore } from "../../src/store/types.js";
import postgres from "postgres";
import { createTestDatabase } from "./pg.js";

/** A clock the test moves by hand. */
export class TestClock {
  constructor(public current = new Date("2026-06-01T12:00:00.000Z")) {}
  now = (): Date => new Date(this.current.getTime());
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

export function makeTempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "keywarden-test-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Harness<S extends KeyStore = KeyStore> {
  dir: string;
  dbPath: string;
  store: S;
  service: KeyService;
  clock: TestClock;
  principal: Principal;
  /** Row counts of every table: "nothing was written" is these being equal before and after. */
  tableCounts(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  policy?: Partial<Policy>;
  pepper?: string;
  userName?: string;
  isAdmin?: boolean;
}

/**
 * The engine tests that are not about one engine run on: SQLite, or PostgreSQL when
 * KEYWARDEN_TEST_STORE=postgres (the "on PostgreSQL" project of vitest.config.ts).
 */
export const TEST_STORE: "sqlite" | "postgres" = process.env.KEYWARDEN_TEST_STORE === "postgres" ? "postgres" : "sqlite";

/** A real service on a real store of TEST_STORE's engine (a fresh database), with a test clock. */
export async function openHarness(options: HarnessOptions = {}): Promise<Harness> {
  if (TEST_STORE === "sqlite") return openSqliteHarness(options);
  const database = await createTestDatabase();
  const store = await PostgresKeyStore.open({ url: database.url });
  const counter = postgres(database.url, { max: 1, onnotice: () => undefined });
  return harnessOver(store, options, {
    dbPath: database.url,
    async tableCounts() {
      const tables = await counter<{ name: string }[]>`SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`;
      const counts: Record<string, number> = {};
      for (const { name } of tables) counts[name] = Number((await counter.unsafe(`SELECT count(*) AS n FROM "${name}"`))[0]!.n);
      return counts;
    },
    async dispose() {
      await counter.end();
      await database.drop();
    },
  });
}

/** A real service on a real SQLite file in a temp dir, with a test clock (for tests of SQLite itself). */
export async function openSqliteHarness(options: HarnessOptions = {}): Promise<Harness<SqliteKeyStore>> {
  const { dir, cleanup } = makeTempDir();
  const dbPath = join(dir, "keywarden.db");
  const store = SqliteKeyStore.open({ path: dbPath });
  return harnessOver(store, options, { dir, dbPath, tableCounts: async () => tableCounts(store), dispose: async () => cleanup() });
}

async function harnessOver<S extends KeyStore>(
  store: S,
  options: HarnessOptions,
  engine: { dir?: string; dbPath: string; tableCounts(): Promise<Record<string, number>>; dispose(): Promise<void> },
): Promise<Harness<S>> {
  const clock = new TestClock();
  const service = new KeyService({
    store,
    clock: clock.now,
    pepper: options.pepper,
    config: { policy: { ...DEFAULT_POLICY, ...options.policy }, keyBrand: "kw" },
  });
  const principal = await service.localPrincipal({
    userName: options.userName ?? "alice",
    transport: "stdio",
    isAdmin: options.isAdmin ?? false,
  });
  return {
    dir: engine.dir ?? "",
    dbPath: engine.dbPath,
    store,
    service,
    clock,
    principal,
    tableCounts: () => engine.tableCounts(),
    close: async () => {
      await store.close();
      await engine.dispose();
    },
  };
}

/** How a test client answers an elicitation: the person behind it accepting, declining or cancelling. */
export type ElicitationAnswer = (request: ElicitRequest) => Promise<ElicitResult> | ElicitResult;

/**
 * A real MCP client linked in memory to a real server for `principal`. With `answerElicitation`
 * the client declares the elicitation capability and answers questions with it.
 */
export async function connectClient(service: KeyService, principal: Principal, answerElicitation?: ElicitationAnswer): Promise<Client> {
  const server = createServer({ service, principalOf: () => principal, version: "test" });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  const client = new Client({ name: "keywarden-test", version: "0" }, answerElicitation ? { capabilities: { elicitation: {} } } : {});
  if (answerElicitation) client.setRequestHandler(ElicitRequestSchema, (request) => answerElicitation(request));
  await client.connect(clientTransport);
  return client;
}

/** Row counts of every table of a SQLite store (Harness.tableCounts for either engine). */
export function tableCounts(store: SqliteKeyStore): Record<string, number> {
  const tables = store.db
    .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all()
    .map((row) => row.name);
  return Object.fromEntries(
    tables.map((table) => [table, (store.db.prepare(`SELECT count(*) AS n FROM "${table}"`).get() as { n: number }).n]),
  );
}

/** The secret part of a token: everything after the key prefix. */
export function secretOf(token: string): string {
  return token.split("_").slice(2).join("_");
}
