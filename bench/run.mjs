// `npm run bench`: every benchmark row beside a baseline measured in the same run, as a ratio,
// printed as a table and written to bench/results.json. Never part of `npm test`.
// Usage: node bench/run.mjs [row-name ...]   (default: all rows)
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { coldStart } from "./cold-start.mjs";
import { scale } from "./scale.mjs";
import { toolCalls } from "./tool-calls.mjs";
import { verifyHttp } from "./verify-http.mjs";
import { verifyInProcess } from "./verify-inprocess.mjs";
import { verifyMemory } from "./verify-memory.mjs";
import { verifyMillion } from "./verify-1m.mjs";
import { verifyPostgres } from "./verify-postgres.mjs";
import { fmt, ROOT } from "./lib.mjs";

const ROWS = {
  "verify-inprocess": verifyInProcess,
  "verify-1m": verifyMillion,
  "verify-memory": verifyMemory,
  "verify-http": verifyHttp,
  "verify-postgres": verifyPostgres,
  "tool-calls": toolCalls,
  "cold-start": coldStart,
  scale,
};

const selected = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(ROWS);
for (const name of selected) {
  if (!ROWS[name]) {
    console.error(`unknown row ${name}; rows: ${Object.keys(ROWS).join(", ")}`);
    process.exit(2);
  }
}

const results = [];
for (const name of selected) {
  process.stderr.write(`running ${name}…\n`);
  const rows = [].concat(await ROWS[name]());
  results.push(...rows.map((row) => ({ name, ...row })));
}

const header = ["row", "keywarden", "baseline (same run)", "ratio", "target", "met"];
const lines = results.map((r) => [
  r.row,
  `${fmt(r.value, r.digits ?? 1)} ${r.unit}`,
  `${fmt(r.baseline, r.digits ?? 1)} (${r.baselineName})`,
  fmt(r.ratio, 2),
  r.target,
  r.pass ? "yes" : "NO",
]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
const row = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
const table = [row(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...lines.map(row)].join("\n");
console.log(table);

const machine = { node: process.version, cpus: cpus().length, cpu_model: cpus()[0]?.model, memory_gib: Math.round(totalmem() / 2 ** 30) };
writeFileSync(
  join(ROOT, "bench/results.json"),
  `${JSON.stringify({ measured_at: new Date().toISOString(), machine, results }, null, 2)}\n`,
);
console.log(`\nwritten to bench/results.json`);

// A full run (every row) replaces the table in BENCHMARKS.md between its markers.
const doc = join(ROOT, "BENCHMARKS.md");
if (selected.length === Object.keys(ROWS).length && existsSync(doc)) {
  const text = readFileSync(doc, "utf8");
  const start = "<!-- bench:table -->";
  const end = "<!-- /bench:table -->";
  if (text.includes(start) && text.includes(end)) {
    const stamp = `Measured ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC on ${machine.cpus} × ${machine.cpu_model}, Node ${machine.node}.`;
    writeFileSync(doc, `${text.slice(0, text.indexOf(start) + start.length)}\n${stamp}\n\n${table}\n${text.slice(text.indexOf(end))}`);
    console.log("table updated in BENCHMARKS.md");
  }
}
