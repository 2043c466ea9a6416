// A throwaway PostgreSQL cluster for the tests and the benchmarks (plain JavaScript, type-checked
// with checkJs, so that bench/ runs it without a build): initdb in a temporary directory, pg_ctl on
// loopback, stopped and removed afterwards. PostgreSQL refuses to run as root, so as root the
// cluster belongs to the `postgres` user that Debian's package creates (`runuser -u postgres`).
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * @typedef {{ url: string, dataDir: string, logFile: string, stop(): void }} PgCluster A superuser URL
 * of the cluster's `postgres` database, its data directory and server log (for tests that look at
 * what the server keeps on disk), and how to stop it.
 */

/**
 * The directory holding initdb and pg_ctl: PG_BIN, else the newest /usr/lib/postgresql/N/bin, else null.
 * @returns {string | null}
 */
export function findPgBin() {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) return existsSync(join(fromEnv, "initdb")) ? fromEnv : null;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, String(versions[0]), "bin") : null;
}

/**
 * A free loopback port (the kernel's choice, released at once): for a server to start on, or as a
 * port nothing listens on.
 * @returns {Promise<number>}
 */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** @returns {{ uid: number, gid: number }} */
function postgresUid() {
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

/**
  * Starts a cluster on 127.0.0.1 and a free port: trust authentication, or with `password` its
  * superuser's password required (scram-sha-256) on every connection. `durable: false` turns
  * fsync off: what the tests kill is keywarden, never the machine, so they lose nothing by it and a
  * CREATE DATABASE per test costs a tenth; the benchmarks keep it on, as production runs.
  * @param {string} bin
  * @param {{ durable?: boolean, password?: string }} [options]
  * @returns {Promise<PgCluster>}
  */
 export async function startPgCluster(bin, { durable = true, password } = {}) {
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), "keywarden-pg-"));
  const data = join(dir, "data");
  const user = asRoot ? "postgres" : (process.env.USER ?? "postgres");
  if (asRoot) {
    const { uid, gid } = postgresUid();
    chownSync(dir, uid, gid);
  }
  /** @param {string} command @param {string[]} args */
  const run = (command, args) => {
    const file = asRoot ? "runuser" : join(bin, command);
    const argv = asRoot ? ["-u", "postgres", "--", join(bin, command), ...args] : args;
    execFileSync(file, argv, { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
  };
  const auth = ["-A", "trust"];
  if (password !== undefined) {
    const pwfile = join(dir, "pwfile");
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (asRoot) chownSync(pwfile, postgresUid().uid, postgresUid().gid);
    auth.splice(0, 2, "-A", "scram-sha-256", `--pwfile=${pwfile}`);
  }
  run("initdb", ["-D", data, ...auth, "-U", user, "--encoding", "UTF8", "--locale", "C"]);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=300${durable ? "" : " -c fsync=off -c full_page_writes=off"}`;
  const logFile = join(dir, "server.log");
  run("pg_ctl", ["-D", data, "-o", options, "-l", logFile, "-w", "-t", "60", "start"]);
  let stopped = false;
  return {
    url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/postgres`,
    dataDir: data,
    logFile,
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
