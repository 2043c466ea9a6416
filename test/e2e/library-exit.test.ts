import { spawnSync } from "node:child_process";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { assertBuilt, cleanEnv, ROOT } from "../helpers/spawn.js";

// The library's batched last use (README, Development) reaches the disk when the program ends
// without closing its store: by process.exit(), or by running out of work.

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function runProgram(ending: string): { db: string; keyId: string } {
  assertBuilt();
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  const db = join(dir, "keywarden.db");
  const program = `
const { KeyService, SqliteKeyStore, verifyApiKey } = await import(${JSON.stringify(join(ROOT, "dist/index.js"))});
const store = SqliteKeyStore.open({ path: ${JSON.stringify(db)} });
const service = new KeyService({ store });
const principal = await service.localPrincipal({ userName: "app", transport: "stdio", isAdmin: false });
const created = await service.createApiKey(principal, { name: "k" });
const result = await verifyApiKey(store, created.key);
console.log(JSON.stringify({ keyId: created.id, code: result.code }));
${ending}
`;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", program], { env: cleanEnv(), encoding: "utf8", timeout: 20_000 });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  const { keyId, code } = JSON.parse(result.stdout) as { keyId: string; code: string };
  expect(code).toBe("valid");
  return { db, keyId };
}

function lastUses(db: string): { key_id: string }[] {
  const handle = new Database(db, { readonly: true });
  try {
    return handle.prepare("SELECT key_id FROM key_usage").all() as { key_id: string }[];
  } finally {
    handle.close();
  }
}

describe("verifyApiKey(store, token) at process exit", () => {
  it("writes the pending last use when the program calls process.exit()", () => {
    const { db, keyId } = runProgram("process.exit(0);");
    expect(lastUses(db)).toEqual([{ key_id: keyId }]);
  });

  it("writes the pending last use when the program simply ends, store left open", () => {
    const { db, keyId } = runProgram("");
    expect(lastUses(db)).toEqual([{ key_id: keyId }]);
  });
});
