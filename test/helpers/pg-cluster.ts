// A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, pg_ctl on
// loopback, stopped and removed afterwards. PostgreSQL refuses to run as root, so as root the
// cluster belongs to the `postgres` user that Debian's package creates (`runuser -u postgres`).
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface PgCluster {
  /** A superuser URL of the cluster's `postgres` database. */
  url: string;
  stop(): void;
}

/** The directory holding initdb and pg_ctl: PG_BIN, else the newest /usr/lib/postgresql/N/bin, else null. */
export function findPgBin(): string | null {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) return existsSync(join(fromEnv, "initdb")) ? fromEnv : null;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, "bin") : null;
}

/** A free loopback port (the kernel's choice, released at once). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

function postgresUid(): { uid: number; gid: number } {
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

/**
 * Starts a cluster on 127.0.0.1 and a free port: trust authentication, or with `password` its
 * superuser's password required (scram-sha-256) on every connection.
 */
export async function startPgCluster(bin: string, { password }: { password?: string } = {}): Promise<PgCluster> {
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), "keywarden-pg-"));
  const data = join(dir, "data");
  const user = asRoot ? "postgres" : (process.env.USER ?? "postgres");
  if (asRoot) {
    const { uid, gid } = postgresUid();
    chownSync(dir, uid, gid);
  }
  const run = (command: string, args: string[]) => {
    const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", join(bin, command), ...args]] : [join(bin, command), args];
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
  // fsync stays on: the crash tests rely on what PostgreSQL promises, as production runs it.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=300`;
  run("pg_ctl", ["-D", data, "-o", options, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"]);
  let stopped = false;
  return {
    url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/postgres`,
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
