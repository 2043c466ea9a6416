// Not a bench row: how long a session on instance B outlives a change of its key committed through
// instance A (README, "Running several instances"). Two `keywarden serve` on one PostgreSQL
// database. Each round creates a key through A, opens a session and a GET stream with it on B,
// waits a random 0-2000 ms (so that the change falls anywhere in B's poll period), then revokes or
// narrows the key through A (revoke_api_key / update_api_key, an admin's MCP client) and times from
// A's answer (its transaction has committed) to the end of B's stream. Right after A's answer it
// also asks B's /v1/keys/verify about the key, and (revoked) opens a new session with it on B:
// both must already refuse it. Modes: B with key-change notifications (the default), and B with
// --no-key-notifications (the periodic watch alone); both at the default --key-watch-interval.
// Usage: npm run -s build && node bench/key-changes.mjs [rounds per change and mode, default 10]
// A throwaway cluster is started (test/helpers/pg-cluster.mjs), or KEYWARDEN_BENCH_PG_URL names a server.
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import postgres from "postgres";
import { findPgBin, startPgCluster } from "../test/helpers/pg-cluster.mjs";
import { CLI, fmt, median, mintKey, spawnServer } from "./lib.mjs";

const rounds = Number(process.argv[2] ?? 10);
const MODES = [
  { name: "notifications on", args: [] },
  { name: "notifications off (--no-key-notifications)", args: ["--no-key-notifications"] },
];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One HTTP request: status, headers, body text.
 * @param {string} url
 * @param {{ method?: string, headers?: Record<string, string>, body?: string }} [options]
 * @returns {Promise<{ status: number | undefined, headers: import("node:http").IncomingHttpHeaders, text: string }>}
 */
function http(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const MCP = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };
const initializeBody = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "key-changes-bench", version: "0" } },
});

/** A session on `mcpUrl` with `key` and its GET stream: resolves once the stream is open, with a promise of the instant it ends. */
async function openStream(mcpUrl, key) {
  const opened = await http(mcpUrl, { method: "POST", headers: { ...MCP, Authorization: `Bearer ${key}` }, body: initializeBody });
  if (opened.status !== 200) throw new Error(`initialize on B: ${opened.status}`);
  const sessionId = opened.headers["mcp-session-id"];
  return new Promise((resolve, reject) => {
    const req = request(
      mcpUrl,
      { headers: { Accept: "text/event-stream", Authorization: `Bearer ${key}`, "Mcp-Session-Id": sessionId, "Mcp-Protocol-Version": "2025-11-25" } },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`GET stream on B: ${res.statusCode}`));
        res.resume();
        const ended = new Promise((done) => res.once("close", () => done(performance.now())));
        resolve({ ended, abort: () => req.destroy() });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

async function callTool(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) throw new Error(`${name}: ${result.content?.[0]?.text}`);
  return result.structuredContent;
}

async function measure(serverUrl, mode) {
  const url = new URL(serverUrl);
  url.pathname = `/kw_changes_${randomBytes(4).toString("hex")}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${url.pathname.slice(1)}`);
  const db = url.toString();
  const stops = [];
  try {
    const adminKey = mintKey(db, "bootstrap", "admin");
    const gateway = mintKey(db, "gateway", "keys:verify");
    // Each round leaves a narrowed key active: room for them under the cap.
    const a = await spawnServer([CLI, "serve", "--db", db, "--port", "0", "--max-active-keys", "1000"]);
    stops.push(a.stop);
    const b = await spawnServer([CLI, "serve", "--db", db, "--port", "0", ...mode.args]);
    stops.push(b.stop);
    const client = new Client({ name: "key-changes-bench", version: "0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(a.url), { requestInit: { headers: { Authorization: `Bearer ${adminKey}` } } }));
    const verifyUrl = new URL("/v1/keys/verify", b.url).href;
    const samples = { revoke: [], narrow: [] };
    const refused = { revoke: 0, narrow: 0 };
    for (let round = 0; round < rounds; round++) {
      for (const change of ["revoke", "narrow"]) {
        const created = await callTool(client, "create_api_key", { name: `round ${round} ${change}` });
        const stream = await openStream(b.url, created.key);
        await sleep(Math.random() * 2000);
        if (change === "revoke") await callTool(client, "revoke_api_key", { id: created.id });
        else await callTool(client, "update_api_key", { id: created.id, scopes: ["tools:read"] });
        const committed = performance.now();
        const verified = await http(verifyUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${gateway}` },
          body: JSON.stringify({ key: created.key, required_scopes: ["tools:execute"] }),
        });
        const answer = JSON.parse(verified.text);
        let refusedNow = answer.valid === false && answer.code === (change === "revoke" ? "revoked" : "insufficient_scope");
        if (change === "revoke") {
          const again = await http(b.url, { method: "POST", headers: { ...MCP, Authorization: `Bearer ${created.key}` }, body: initializeBody });
          refusedNow &&= again.status === 401;
        }
        if (refusedNow) refused[change] += 1;
        const ended = await Promise.race([stream.ended, sleep(30_000).then(() => null)]);
        if (ended === null) throw new Error(`${mode.name}: B's stream still open 30 s after the ${change}`);
        samples[change].push(ended - committed);
      }
    }
    await client.close();
    return { samples, refused };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${url.pathname.slice(1)} WITH (FORCE)`);
    await admin.end();
  }
}

let cluster;
let serverUrl = process.env.KEYWARDEN_BENCH_PG_URL;
if (!serverUrl) {
  const bin = findPgBin();
  if (!bin) {
    console.error("no KEYWARDEN_BENCH_PG_URL and no PostgreSQL binaries");
    process.exit(2);
  }
  cluster = await startPgCluster(bin, { durable: false });
  serverUrl = cluster.url;
}
try {
  console.log(`${rounds} rounds per change and mode; ms from A's answer to the end of B's stream (negative: B ended it before A's answer arrived)`);
  console.log("| B | change | median | min | max | B's next verify (and, revoked, initialize) refused |");
  console.log("|---|---|---|---|---|---|");
  for (const mode of MODES) {
    const { samples, refused } = await measure(serverUrl, mode);
    for (const [change, values] of Object.entries(samples)) {
      const cells = [median(values), Math.min(...values), Math.max(...values)].map((v) => fmt(v, 0));
      console.log(`| ${mode.name} | ${change} | ${cells.join(" | ")} | ${refused[change]} of ${values.length} |`);
    }
    console.error(`${mode.name}: ${JSON.stringify(Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map((x) => Math.round(x))])))}`);
  }
} finally {
  await cluster?.stop();
}
