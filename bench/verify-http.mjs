// Row 2: POST /v1/keys/verify on a spawned `keywarden serve`, 32 concurrent connections, against a
// bare node:http server (also spawned) answering a fixed JSON body, with the same load generator.
import { join } from "node:path";
import autocannon from "autocannon";
import { bulkLoad, CLI, cpuSeconds, median, mintKey, spawnServer, tempDir } from "./lib.mjs";

const CONNECTIONS = 32;
const SECONDS = 5;

/** autocannon at CONNECTIONS connections for SECONDS, POSTing `bodies` in turn (also verify-postgres.mjs). */
export function loadHttp(url, { headers = {}, bodies }) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        method: "POST",
        connections: CONNECTIONS,
        duration: SECONDS,
        headers: { "content-type": "application/json", ...headers },
        requests: bodies.map((body) => ({ body })),
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
}

export async function verifyHttp({ rounds = 3 } = {}) {
  const { dir, cleanup } = tempDir();
  const stops = [];
  try {
    const db = join(dir, "verify-http.db");
    const tokens = await bulkLoad(db, 10_000, { users: 100, sampleSize: 1000 });
    const gateway = mintKey(db, "gateway", "keys:verify");
    // Info level: the "ready" line carries the URL; per-request logging is debug, so the load is not logged.
    const ours = await spawnServer([CLI, "serve", "--db", db, "--port", "0", "--log-level", "info"]);
    stops.push(ours.stop);
    const bare = await spawnServer([new URL("./fixtures/bare-http.mjs", import.meta.url).pathname]);
    stops.push(bare.stop);

    const bodies = tokens.map((key) => JSON.stringify({ key }));
    const verifyUrl = new URL("/v1/keys/verify", ours.url).href;
    // Each run also notes the server's CPU time per request: on a shared machine, load from
    // elsewhere moves requests/s more than it moves the work each request costs.
    /** @param {number} pid @param {() => Promise<autocannon.Result>} load */
    const measured = async (pid, load) => {
      const before = cpuSeconds(pid);
      const result = await load();
      return Object.assign(result, { cpuMicrosPerRequest: ((cpuSeconds(pid) - before) * 1e6) / result.requests.total });
    };
    const runOurs = () => measured(ours.pid, () => loadHttp(verifyUrl, { headers: { authorization: `Bearer ${gateway}` }, bodies }));
    const runBare = () => measured(bare.pid, () => loadHttp(bare.url, { bodies }));

    // Check once that every answer is a 200 saying valid, so the rate is of real verifications.
    const probe = await fetch(verifyUrl, { method: "POST", headers: { authorization: `Bearer ${gateway}`, "content-type": "application/json" }, body: bodies[0] });
    const probeBody = /** @type {{ valid?: unknown }} */ (await probe.json());
    if (probe.status !== 200 || probeBody.valid !== true) throw new Error(`verify endpoint answered ${probe.status} ${JSON.stringify(probeBody)}`);

    await runBare(); // warm-up
    await runOurs();
    const oursRuns = [];
    const bareRuns = [];
    for (let round = 0; round < rounds; round++) {
      bareRuns.push(await runBare());
      oursRuns.push(await runOurs());
    }
    for (const run of oursRuns) {
      if (run.non2xx > 0 || run.errors > 0) throw new Error(`keywarden: ${run.non2xx} non-2xx, ${run.errors} errors`);
    }
    const rate = (runs) => median(runs.map((r) => r.requests.average));
    const value = rate(oursRuns);
    const baseline = rate(bareRuns);
    const p = (runs, key) => median(runs.map((r) => r.latency[key]));
    const cpu = (runs) => median(runs.map((r) => r.cpuMicrosPerRequest)).toFixed(1);
    return {
      row: `verify over HTTP (POST /v1/keys/verify, ${CONNECTIONS} connections)`,
      unit: `req/s (p50 ${p(oursRuns, "p50")} ms, p99 ${p(oursRuns, "p99")} ms, ${cpu(oursRuns)} µs CPU/req)`,
      digits: 0,
      value,
      baseline,
      baselineName: `bare node:http fixed JSON, p50 ${p(bareRuns, "p50")} ms, p99 ${p(bareRuns, "p99")} ms, ${cpu(bareRuns)} µs CPU/req`,
      ratio: value / baseline,
      target: "≥ 0.5× baseline",
      pass: value / baseline >= 0.5,
      detail: {
        rounds,
        seconds: SECONDS,
        ours_rps: oursRuns.map((r) => r.requests.average),
        bare_rps: bareRuns.map((r) => r.requests.average),
        ours_cpu_us_per_request: oursRuns.map((r) => r.cpuMicrosPerRequest),
        bare_cpu_us_per_request: bareRuns.map((r) => r.cpuMicrosPerRequest),
      },
    };
  } finally {
    for (const stop of stops) await stop();
    cleanup();
  }
}
