// Shared helpers for the benchmarks: statistics, temp dirs, spawning the built binary (its path
// and environment are the tests' own, test/helpers/child.mjs).
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanEnv, CLI, ROOT, runCli } from "../test/helpers/child.mjs";

export { cleanEnv, CLI, ROOT };

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The p-th percentile (0-100) by nearest rank. */
export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function tempDir(prefix = "keywarden-bench-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Milliseconds from spawn to the answer of the first tools/list, speaking raw JSON-RPC over stdio
 * so that both sides of a comparison pay exactly the same client cost.
 */
export function timeToFirstToolsList(command, args, env = cleanEnv()) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ["pipe", "pipe", "ignore"] });
    let buffer = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no tools/list answer from ${args.join(" ")} within 20 s`));
    }, 20_000);
    child.stdout.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
      for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const message = JSON.parse(line);
        if (message.id === 1) {
          child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`);
          child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" })}\n`);
        } else if (message.id === 2) {
          const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
          clearTimeout(timer);
          child.once("exit", () => resolve(elapsed));
          child.stdin.end();
          if (!Array.isArray(message.result?.tools)) reject(new Error(`bad tools/list answer: ${line.slice(0, 200)}`));
        }
      }
    });
    child.on("error", reject);
    child.stdin.write(
      `${JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bench", version: "0" } },
      })}\n`,
    );
  });
}

export const fmt = (value, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : String(value));

/**
 * Bulk-loads `count` keys spread over `users` users into a fresh keywarden database, the way a
 * long-lived install would hold them, hashing each token as the service does. Returns a sample of
 * the tokens (every `count / sampleSize`-th) for verification benchmarks.
 */
export async function bulkLoad(path, count, { users = 1000, sampleSize = 20_000 } = {}) {
  const { SqliteKeyStore } = await import("keywarden");
  const { generateToken } = await import(join(ROOT, "dist/keys/token.js"));
  const { createTokenHasher } = await import(join(ROOT, "dist/keys/hash.js"));
  const { newApiKeyId } = await import(join(ROOT, "dist/keys/ids.js"));
  const store = SqliteKeyStore.open({ path });
  const now = new Date();
  const org = await store.ensureDefaultOrganization(now.toISOString());
  const userIds = [];
  for (let i = 0; i < users; i++) userIds.push((await store.ensureUser(org.id, `user-${i}`, now.toISOString())).id);
  const hasher = createTokenHasher();
  const insert = store.db.prepare(
    `INSERT INTO api_keys (id, organization_id, user_id, project_id, name, description, key_prefix, key_hash,
       hash_algorithm, scopes, created_at, created_by_user_id, expires_at)
     VALUES (?, ?, ?, NULL, ?, NULL, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const scopes = JSON.stringify(["tools:read", "tools:execute"]);
  const expires = new Date(now.getTime() + 90 * 86_400_000).toISOString();
  const every = Math.max(1, Math.floor(count / sampleSize));
  const sample = [];
  const batch = store.db.transaction((from, to) => {
    for (let i = from; i < to; i++) {
      const { token, keyPrefix } = generateToken();
      const user = userIds[i % users];
      // Distinct created_at per key, in insertion order, as real creates would have.
      const createdAt = new Date(now.getTime() - (count - i) * 1000).toISOString();
      insert.run(newApiKeyId(), org.id, user, `key ${i}`, keyPrefix, Buffer.from(hasher.hash(token)), hasher.algorithm, scopes, createdAt, user, expires);
      if (i % every === 0) sample.push(token);
    }
  });
  store.db.pragma("synchronous = OFF"); // setup only; the store reopens with FULL
  for (let from = 0; from < count; from += 50_000) batch(from, Math.min(count, from + 50_000));
  store.db.pragma("wal_checkpoint(TRUNCATE)");
  await store.close();
  return sample;
}

export const MILLION = 1_000_000;

/** @type {Promise<{ path: string, tokens: string[], tokensFile: string }> | undefined} */
let million;

/**
 * The 1,000,000-key database of the 1M rows (verify-1m, verify-memory, scale), bulk-loaded once
 * per run (about a minute) and shared; rows take a copy (copyOfMillionKeys). Every token, in key
 * order, is also written one per line to `tokensFile`, for child processes.
 */
export function millionKeys() {
  million ??= (async () => {
    const { dir, cleanup } = tempDir("keywarden-bench-1m-");
    process.once("exit", cleanup);
    const path = join(dir, "1m.db");
    const tokens = await bulkLoad(path, MILLION, { users: 1000, sampleSize: MILLION });
    const tokensFile = join(dir, "tokens.txt");
    writeFileSync(tokensFile, `${tokens.join("\n")}\n`);
    return { path, tokens, tokensFile };
  })();
  return million;
}

/**
 * A private copy of the 1M database at `path`, so that one row's last-use writes change no other
 * row's figures (scale reports bytes on disk). bulkLoad checkpointed and closed it: the file is
 * whole, without -wal. Returns every token.
 * @param {string} path
 */
export async function copyOfMillionKeys(path) {
  const shared = await millionKeys();
  copyFileSync(shared.path, path);
  return shared.tokens;
}

/**
 * Zipf(s) over ranks 0..n-1, rank k drawn with probability (1/(k+1)^s) / H: the cumulative
 * weights computed once, then a binary search per draw. Takes a uniform number in [0, 1).
 * @param {number} n
 * @param {number} [s]
 * @returns {(uniform: number) => number}
 */
export function zipfSampler(n, s = 1) {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) cumulative[k] = total += (k + 1) ** -s;
  return (uniform) => {
    const target = uniform * total;
    let low = 0;
    let high = n - 1;
    // The first rank whose cumulative weight exceeds the target.
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (/** @type {number} */ (cumulative[mid]) <= target) low = mid + 1;
      else high = mid;
    }
    return low;
  };
}

/**
 * 0..n-1 in a seeded random order (Fisher-Yates): which key holds which Zipf rank, so that the
 * popular keys are not the oldest ones (nor neighbours in the index).
 * @param {number} n
 * @param {() => number} random
 */
export function shuffledIndices(n, random) {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const held = /** @type {number} */ (order[i]);
    order[i] = /** @type {number} */ (order[j]);
    order[j] = held;
  }
  return order;
}

/** Resident set size of a process, in bytes, from /proc. */
export function residentBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

/**
 * CPU time (user + system, every thread) a process has used, in seconds: fields 14 and 15 of
 * /proc/PID/stat (proc(5)), in clock ticks of 1/100 s (CLK_TCK on Linux).
 * @param {number} pid
 */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // After the command name, which is in parentheses and may hold spaces: field 3 onwards.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Spawns a server process and resolves with the first JSON object it prints that has a `url` (stdout or stderr). */
export function spawnServer(args, env = cleanEnv()) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`${args.join(" ")} did not start within 20 s`)), 20_000);
    const fail = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(error);
    };
    const watch = (stream) => {
      let buffer = "";
      stream.on("data", (chunk) => {
        buffer += chunk.toString("utf8");
        for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          let message;
          try {
            message = JSON.parse(line);
          } catch {
            continue;
          }
          if (!settled && typeof message.url === "string") {
            settled = true;
            clearTimeout(timer);
            const stop = () =>
              new Promise((done) => {
                child.once("exit", done);
                child.kill("SIGTERM");
              });
            resolve({ url: message.url, pid: child.pid, stop });
          }
        }
      });
    };
    watch(child.stdout);
    watch(child.stderr);
    child.on("exit", (code) => fail(new Error(`${args.join(" ")} exited with ${code} before listening`)));
  });
}

/** Mints a key with the CLI's admin command and returns its token. */
export function mintKey(db, name, scopes) {
  const result = runCli(["admin", "create-key", "--db", db, "--name", name, "--scopes", scopes, "--json"]);
  if (result.status !== 0) throw new Error(`admin create-key failed: ${result.stderr}`);
  return JSON.parse(result.stdout).key;
}

/** mulberry32: a seeded, full-period 32-bit generator in integer arithmetic (a float LCG loses precision and repeats early). */
export function seededRandom(seed) {
  let state = seed | 0;
  return () => {
    let t = (state = (state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
