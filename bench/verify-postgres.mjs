// Verification on the PostgreSQL store (README, Running several instances), each beside its floor
// measured in the same run on the same server:
// - in process: verifyApiKey on a KeyService over PostgresKeyStore (100,000 keys, last use on,
//   the server's coalescing recorder), one verification in flight and 16 in flight, against the
//   floor for this work: SHA-256 of the token, one indexed SELECT by prefix over a postgres.js pool
//   of the same size, a constant-time compare, with the same number in flight;
// - over HTTP: POST /v1/keys/verify on `keywarden serve --db postgres://…`, 32 connections, against
//   the bare node:http server of verify-http.mjs.
// A throwaway cluster is started for the run (test/helpers/pg-cluster.mjs), or KEYWARDEN_BENCH_PG_URL
// names a server to use; without either, the rows are reported as skipped.
import { timingSafeEqual } from "node:crypto";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import postgres from "postgres";
import { findPgBin, startPgCluster } from "../test/helpers/pg-cluster.mjs";
import { CLI, median, mintKey, ROOT, seededRandom, spawnServer } from "./lib.mjs";
import { loadHttp } from "./verify-http.mjs";

const KEYS = 100_000;
const PER_ROUND = 10_000;
const encoder = new TextEncoder();

/**
 * Loads `count` keys with real tokens straight into a migrated keywarden database, as bulkLoad
 * (lib.mjs) does for SQLite. Returns every token.
 * @param {string} url
 * @param {number} count
 */
export async function bulkLoadPostgres(url, count, users = 1000) {
  const { PostgresKeyStore } = await import(join(ROOT, "dist/store/postgres.js"));
  const { generateToken } = await import(join(ROOT, "dist/keys/token.js"));
  const { createTokenHasher } = await import(join(ROOT, "dist/keys/hash.js"));
  const { newApiKeyId } = await import(join(ROOT, "dist/keys/ids.js"));
  const store = await PostgresKeyStore.open({ url });
  const now = new Date();
  const org = await store.ensureDefaultOrganization(now.toISOString());
  /** @type {string[]} */
  const userIds = [];
  for (let i = 0; i < users; i++) userIds.push((await store.ensureUser(org.id, `user-${i}`, now.toISOString())).id);
  await store.close();
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  const hasher = createTokenHasher();
  const expires = new Date(now.getTime() + 90 * 86_400_000).toISOString();
  /** @type {string[]} */
  const tokens = [];
  for (let from = 0; from < count; from += 10_000) {
    /** @type {string[]} */ const ids = [];
    /** @type {string[]} */ const owners = [];
    /** @type {string[]} */ const names = [];
    /** @type {string[]} */ const prefixes = [];
    /** @type {string[]} */ const hashes = [];
    /** @type {string[]} */ const createdAt = [];
    for (let i = from; i < Math.min(count, from + 10_000); i++) {
      const { token, keyPrefix } = generateToken();
      tokens.push(token);
      ids.push(newApiKeyId());
      owners.push(String(userIds[i % users]));
      names.push(`key ${i}`);
      prefixes.push(keyPrefix);
      hashes.push(Buffer.from(hasher.hash(token)).toString("hex"));
      createdAt.push(new Date(now.getTime() - (count - i) * 1000).toISOString());
    }
    const columns = [ids, owners, names, prefixes, hashes, createdAt];
    await sql.unsafe(
      `INSERT INTO api_keys (id, organization_id, user_id, name, key_prefix, key_hash, hash_algorithm, scopes, created_at, created_by_user_id, expires_at)
       SELECT k.id, $7, k.user_id, k.name, k.key_prefix, decode(k.key_hash, 'hex'), $8, ARRAY['tools:read', 'tools:execute'], k.created_at, k.user_id, $9
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS k(id, user_id, name, key_prefix, key_hash, created_at)`,
      [...columns, org.id, hasher.algorithm, expires],
    );
  }
  await sql.unsafe("VACUUM ANALYZE api_keys");
  await sql.end();
  return tokens;
}

/**
 * Runs `verifyOne` over `order` with `inFlight` verifications at a time; answers verifications/s.
 * @param {(token: string) => Promise<boolean>} verifyOne
 * @param {string[]} order
 * @param {number} inFlight
 */
async function rate(verifyOne, order, inFlight) {
  let next = 0;
  let ok = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < order.length) if (await verifyOne(String(order[next++]))) ok++;
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (ok !== order.length) throw new Error(`only ${ok} of ${order.length} tokens verified`);
  return order.length / seconds;
}

/** @param {string} url */
export async function inProcess(url, tokens, rounds = 5) {
  const { PostgresKeyStore } = await import(join(ROOT, "dist/store/postgres.js"));
  const { KeyService, verifyApiKey } = await import("keywarden");
  const { CoalescingUseRecorder } = await import(join(ROOT, "dist/service/use-recorder.js"));
  const store = await PostgresKeyStore.open({ url });
  const recorder = new CoalescingUseRecorder(store);
  const service = new KeyService({ store, useRecorder: recorder });
  const sql = postgres(url, { max: 10, onnotice: () => undefined });
  /** @param {string} token */
  const floor = async (token) => {
    const [row] = await sql.unsafe("SELECT key_hash FROM api_keys WHERE key_prefix = $1", [token.slice(0, 15)], { prepare: true });
    return row !== undefined && timingSafeEqual(sha256(encoder.encode(token)), row.key_hash);
  };
  /** @param {string} token */
  const ours = async (token) => (await verifyApiKey(service, token)).valid;
  const random = seededRandom(4242);
  const draw = () => Array.from({ length: PER_ROUND }, () => tokens[Math.floor(random() * tokens.length)]);
  const rows = [];
  try {
    // Every key once through each, as the SQLite rows do (verify-inprocess.mjs): the rounds measure
    // the steady state of a verification cache that holds every key, and a warm server for the floor.
    await rate(floor, tokens, 16);
    await rate(ours, tokens, 16);
    for (const inFlight of [1, 16]) {
      await rate(floor, draw(), inFlight); // warm-up: JIT, prepared statements, the server's cache
      await rate(ours, draw(), inFlight);
      const floorRates = [];
      const ourRates = [];
      for (let round = 0; round < rounds; round++) {
        const order = draw();
        floorRates.push(await rate(floor, order, inFlight));
        ourRates.push(await rate(ours, order, inFlight));
        await recorder.flush();
      }
      const value = median(ourRates);
      const baseline = median(floorRates);
      rows.push({
        row: `verify in process on PostgreSQL (verifyApiKey, 100k keys, last-use on, ${inFlight} in flight)`,
        unit: "verifications/s, median",
        digits: 0,
        value,
        baseline,
        baselineName: `PostgreSQL floor: SHA-256 + indexed SELECT + timingSafeEqual, ${inFlight} in flight`,
        ratio: value / baseline,
        target: "≥ 1.5× floor",
        pass: value / baseline >= 1.5,
        detail: { rounds, per_round: PER_ROUND, in_flight: inFlight, ours: ourRates, floor: floorRates },
      });
    }
  } finally {
    await recorder.close();
    await store.close();
    await sql.end();
  }
  return rows;
}

/** @param {string} url */
async function overHttp(url, tokens, rounds = 3) {
  const gateway = mintKey(url, "gateway", "keys:verify");
  const stops = [];
  try {
    const ours = await spawnServer([CLI, "serve", "--db", url, "--port", "0", "--log-level", "info"]);
    stops.push(ours.stop);
    const bare = await spawnServer([new URL("./fixtures/bare-http.mjs", import.meta.url).pathname]);
    stops.push(bare.stop);
    const bodies = tokens.slice(0, 10_000).map((key) => JSON.stringify({ key }));
    const verifyUrl = new URL("/v1/keys/verify", ours.url).href;
    const runOurs = () => loadHttp(verifyUrl, { headers: { authorization: `Bearer ${gateway}` }, bodies });
    const runBare = () => loadHttp(bare.url, { bodies });
    await runBare();
    await runOurs();
    const oursRuns = [];
    const bareRuns = [];
    for (let round = 0; round < rounds; round++) {
      bareRuns.push(await runBare());
      oursRuns.push(await runOurs());
    }
    for (const run of oursRuns) {
      if (run.non2xx > 0 || run.errors > 0) throw new Error(`keywarden on PostgreSQL: ${run.non2xx} non-2xx, ${run.errors} errors`);
    }
    const value = median(oursRuns.map((r) => r.requests.average));
    const baseline = median(bareRuns.map((r) => r.requests.average));
    const p = (runs, key) => median(runs.map((r) => r.latency[key]));
    return {
      row: "verify over HTTP on PostgreSQL (POST /v1/keys/verify, 32 connections)",
      unit: `req/s (p50 ${p(oursRuns, "p50")} ms, p99 ${p(oursRuns, "p99")} ms)`,
      digits: 0,
      value,
      baseline,
      baselineName: "bare node:http fixed JSON",
      ratio: value / baseline,
      target: "report",
      pass: true,
      detail: { rounds, ours_rps: oursRuns.map((r) => r.requests.average), bare_rps: bareRuns.map((r) => r.requests.average) },
    };
  } finally {
    for (const stop of stops) await stop();
  }
}

export async function verifyPostgres() {
  let cluster;
  let url = process.env.KEYWARDEN_BENCH_PG_URL;
  if (!url) {
    const bin = findPgBin();
    if (!bin) {
      process.stderr.write("*** PostgreSQL rows SKIPPED: no KEYWARDEN_BENCH_PG_URL and no PostgreSQL binaries ***\n");
      return [];
    }
    cluster = await startPgCluster(bin);
    url = cluster.url;
  }
  const database = `keywarden_bench_${process.pid}`;
  const admin = postgres(url, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${database}`);
  const target = new URL(url);
  target.pathname = `/${database}`;
  try {
    const tokens = await bulkLoadPostgres(target.href, KEYS);
    return [...(await inProcess(target.href, tokens)), await overHttp(target.href, tokens)];
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
    cluster?.stop();
  }
}
