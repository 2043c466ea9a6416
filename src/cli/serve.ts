// keywarden (MCP over stdio, the default command) and keywarden serve (MCP over Streamable HTTP).
import { Command, Option } from "commander";
import { ConfigError, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, resolveHttpConfig, type RawOptions, type ServeRawOptions } from "../config/index.js";
import {
  DEFAULT_AUTH_FAILURE_LIMIT,
  DEFAULT_AUTH_FAILURE_WINDOW_MS,
  DEFAULT_KEY_WATCH_INTERVAL_MS,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_KEY,
  DEFAULT_SESSION_IDLE_TIMEOUT_MS,
} from "../transports/http/defaults.js";
import type { Principal } from "../service/principal.js";
import { SCOPE_TOOLS_EXECUTE, SCOPE_TOOLS_READ } from "../tools/access.js";
import { VERSION } from "../version.js";
import { openApp } from "./app.js";
import { addCommonOptions, effectiveOptions } from "./options.js";

/** The root command serves stdio; `--admin` is its own flag. */
export function addStdioAction(program: Command): void {
  program
    // Not .env(): commander would treat KEYWARDEN_ADMIN=0 as true; resolveConfig parses it.
    .option("--admin", "the stdio user acts as an admin: every user's keys, projects (env: KEYWARDEN_ADMIN=1)")
    .action((options: RawOptions) => runStdioServer(options));
}

export function addServeCommand(program: Command): void {
  addCommonOptions(program.command("serve"))
    .description("serve MCP over Streamable HTTP at /mcp, with GET /healthz and POST /v1/keys/verify; callers authenticate with keys from the store")
    .addOption(new Option("--host <address>", `address to bind (default: ${DEFAULT_HTTP_HOST})`).env("KEYWARDEN_HOST"))
    .addOption(new Option("--port <n>", `port to listen on; 0 picks a free one (default: ${DEFAULT_HTTP_PORT})`).env("KEYWARDEN_PORT"))
    .option("--stateless", "no sessions, for load balancers: a fresh server per POST, GET and DELETE get 405, a stop that needs confirmation is refused (env: KEYWARDEN_STATELESS=1)")
    .addOption(
      new Option("--allowed-origins <a,b>", "origins (scheme://host[:port]) browsers may call from (default: loopback origins only)").env(
        "KEYWARDEN_ALLOWED_ORIGINS",
      ),
    )
    .addOption(
      new Option("--allowed-hosts <a,b>", "Host header names accepted (default: the loopback names, or the --host address)").env(
        "KEYWARDEN_ALLOWED_HOSTS",
      ),
    )
    .option("--allow-query-key", "also accept the key as ?admin_key=… when no Authorization header is sent (env: KEYWARDEN_ALLOW_QUERY_KEY=1)")
    .option("--no-auth", "no key needed: every request acts as the operator user with tools:read and tools:execute (loopback only)")
    .addOption(
      new Option("--session-idle-timeout <seconds>", `close a session after this long without a request (default: ${DEFAULT_SESSION_IDLE_TIMEOUT_MS / 1000})`).env(
        "KEYWARDEN_SESSION_IDLE_TIMEOUT",
      ),
    )
    .addOption(
      new Option("--max-sessions <n>", `open sessions at most; one more initialize gets 503 unless its key has one to give up (default: ${DEFAULT_MAX_SESSIONS})`).env(
        "KEYWARDEN_MAX_SESSIONS",
      ),
    )
    .addOption(
      new Option("--max-sessions-per-key <n>", `open sessions per key; one more closes that key's least recently used (default: ${DEFAULT_MAX_SESSIONS_PER_KEY})`).env(
        "KEYWARDEN_MAX_SESSIONS_PER_KEY",
      ),
    )
    .addOption(
      new Option("--auth-failure-limit <n>", `failed authentications per client address (IPv6: per /64) before its further failures get 429; valid keys are still served (default: ${DEFAULT_AUTH_FAILURE_LIMIT})`).env(
        "KEYWARDEN_AUTH_FAILURE_LIMIT",
      ),
    )
    .addOption(
      new Option("--auth-failure-window <seconds>", `the window those failures are counted in, and further failures get 429 for (default: ${DEFAULT_AUTH_FAILURE_WINDOW_MS / 1000})`).env(
        "KEYWARDEN_AUTH_FAILURE_WINDOW",
      ),
    )
    .addOption(
      new Option("--trust-proxy <hops|addresses>", "take the client address from X-Forwarded-For set by these proxies (default: off)").env(
        "KEYWARDEN_TRUST_PROXY",
      ),
    )
    .addOption(
      new Option(
        "--key-watch-interval <ms>",
        `re-read the keys that own sessions this often, to close those revoked, expired or narrowed elsewhere; the bound when no notification arrives (default: ${DEFAULT_KEY_WATCH_INTERVAL_MS})`,
      ).env("KEYWARDEN_KEY_WATCH_INTERVAL"),
    )
    .option(
      "--no-key-notifications",
      "PostgreSQL: do not listen for key changes (LISTEN/NOTIFY; say, behind a pooler that does not carry it); sessions then follow changes by the key watch alone (env: KEYWARDEN_KEY_NOTIFICATIONS=0)",
    )
    .action((_options: unknown, command: Command) => runHttpServer(effectiveOptions<ServeRawOptions>(command)));
}

async function runStdioServer(options: RawOptions): Promise<void> {
  // Loaded here, not at the top: the admin commands start without the MCP SDK.
  const [{ createServer }, { serveStdio }] = await Promise.all([import("../server.js"), import("../transports/stdio.js")]);
  const { config, service, logger, close } = await openApp(options);
  const principal = await service.localPrincipal({ userName: config.userName, transport: "stdio", isAdmin: config.isAdmin });
  const server = createServer({ service, principalOf: () => principal, version: VERSION, logger });
  await serveStdio(server, close);
  logger.info(
    { version: VERSION, db: config.databaseLabel, user: config.userName, admin: config.isAdmin },
    "keywarden stdio server ready",
  );
}

async function runHttpServer(options: ServeRawOptions): Promise<void> {
  const http = resolveHttpConfig(options);
  // Loaded here, not at the top: the stdio server starts without Express and the HTTP stack.
  const { startHttpServer } = await import("../transports/http.js");
  const { config, logger, service, close } = await openApp(options, { keyChangeNotifications: http.keyChangeNotifications });

  let anonymousPrincipal: Principal | null = null;
  if (http.noAuth) {
    const operator = await service.localPrincipal({ userName: config.userName, transport: "http", isAdmin: false });
    anonymousPrincipal = { ...operator, scopes: [SCOPE_TOOLS_READ, SCOPE_TOOLS_EXECUTE] };
  }

  let running;
  try {
    running = await startHttpServer({
      service,
      version: VERSION,
      logger,
      host: http.host,
      port: http.port,
      stateless: http.stateless,
      allowedOrigins: http.allowedOrigins,
      allowedHosts: http.allowedHosts,
      allowQueryKey: http.allowQueryKey,
      anonymousPrincipal,
      sessionIdleTimeoutMs: http.sessionIdleTimeoutMs,
      maxSessions: http.maxSessions,
      maxSessionsPerKey: http.maxSessionsPerKey,
      authFailureLimit: http.authFailureLimit,
      authFailureWindowMs: http.authFailureWindowMs,
      trustProxy: http.trustProxy,
      keyWatchIntervalMs: http.keyWatchIntervalMs,
      keyChangeNotifications: http.keyChangeNotifications,
    });
  } catch (error) {
    await close();
    throw new ConfigError(`cannot listen on ${http.host} port ${http.port}: ${(error as Error).message}`);
  }
  const server = running;

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting at once");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, sessions: server.sessionCount() }, "stopping: closing sessions, flushing writes, closing the database");
    void (async () => {
      await server.close();
      await close();
      logger.info({}, "keywarden http server stopped");
      process.exit(0);
    })().catch((error: unknown) => {
      logger.error({ err: error }, "unclean shutdown");
      process.exit(1);
    });
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  logger.info(
    {
      version: VERSION,
      url: server.url,
      db: config.databaseLabel,
      stateless: http.stateless,
      key_notifications: server.keyChangeNotifications,
      auth: http.noAuth ? "none" : "bearer",
      allowed_origins: http.allowedOrigins ?? "loopback",
    },
    "keywarden http server listening",
  );
  if (http.noAuth) {
    logger.warn({ user: config.userName }, "--no-auth: every request acts as this user with tools:read and tools:execute, without a key");
  }
}
