#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
import { destination, pino, type Logger } from "pino";
import { ConfigError, parseScopeList, positiveInteger, resolveConfig, resolveHttpConfig, type AppConfig, type RawOptions, type ServeRawOptions } from "./config.js";
import { PEPPERED_ALGORITHM } from "./keys/hash.js";
import { createServer } from "./server.js";
import { ServiceError } from "./service/errors.js";
import type { Principal } from "./service/principal.js";
import { KeyService } from "./service/service.js";
import type { ListApiKeysInput } from "./service/types.js";
import { BufferedFailureRecorder } from "./service/failure-recorder.js";
import { CoalescingUseRecorder } from "./service/use-recorder.js";
import { PAGE_LIMIT_MAX } from "./service/validation.js";
import { SqliteKeyStore, StoreOpenError } from "./store/sqlite.js";
import { SCOPE_TOOLS_EXECUTE, SCOPE_TOOLS_READ } from "./tools/access.js";
import { serveStdio } from "./transports/stdio.js";
import { VERSION } from "./version.js";

// The one composition root: flags and environment → config → store → service → server → transport.

/** Options every command shares: where the store is, who acts, and the policy. Flags beat environment. */
function addCommonOptions(command: Command): Command {
  return command
    .addOption(new Option("--db <path>", 'SQLite database file, or ":memory:" (default: keywarden.db in the OS data directory)').env("KEYWARDEN_DB"))
    .addOption(new Option("--user <name>", "acting user (default: the OS user name); created on first use").env("KEYWARDEN_USER"))
    .addOption(new Option("--key-brand <brand>", "token brand, 1-16 of [a-z0-9] (default: kw)").env("KEYWARDEN_KEY_BRAND"))
    .addOption(new Option("--max-active-keys <n>", "active keys per user (default: 5)").env("KEYWARDEN_MAX_ACTIVE_KEYS"))
    .addOption(new Option("--default-expiry-days <n|none>", "expiry of a key created without expires_at (default: 90)").env("KEYWARDEN_DEFAULT_EXPIRY_DAYS"))
    .addOption(new Option("--max-expiry-days <n|none>", "latest allowed expires_at, in days (default: 365)").env("KEYWARDEN_MAX_EXPIRY_DAYS"))
    .addOption(new Option("--default-scopes <a,b>", "scopes of user-level keys (default: tools:read,tools:execute)").env("KEYWARDEN_DEFAULT_SCOPES"))
    .addOption(new Option("--log-level <level>", "fatal, error, warn, info, debug, trace or silent (default: info)").env("KEYWARDEN_LOG_LEVEL"));
}

/**
 * A subcommand's options merged with its parents' (`keywarden --db x admin list-projects` and
 * `keywarden admin list-projects --db x` both work). A value given on the command line at any
 * level beats one from the environment at any level: flags beat environment.
 */
function effectiveOptions<T>(command: Command): T {
  const chain: Command[] = [];
  for (let current: Command | null = command; current; current = current.parent) chain.push(current);
  const merged: Record<string, unknown> = {};
  const fromCli = new Set<string>();
  for (const level of chain) {
    for (const [key, value] of Object.entries(level.opts())) {
      if (value === undefined) continue;
      const cli = level.getOptionValueSource(key) === "cli";
      if (!(key in merged) || (cli && !fromCli.has(key))) {
        merged[key] = value;
        if (cli) fromCli.add(key);
      }
    }
  }
  return merged as T;
}

/** Logs go to stderr, always: stdout is the stdio transport. */
function createLogger(level: string): Logger {
  return pino({ name: "keywarden", level, base: { pid: process.pid } }, destination({ fd: 2, sync: true }));
}

interface App {
  config: AppConfig;
  store: SqliteKeyStore;
  service: KeyService;
  logger: Logger;
  recorder: CoalescingUseRecorder;
  /** Writes pending last uses, then closes the database. */
  close(): Promise<void>;
}

async function openApp(options: RawOptions): Promise<App> {
  const config = resolveConfig(options);
  const logger = createLogger(config.logLevel);
  const store = SqliteKeyStore.open({ path: config.databasePath });
  // Last use is written in batches, at most a second late, not with a synchronous write per verify.
  const recorder = new CoalescingUseRecorder(store, { onError: (error) => logger.error({ err: error }, "could not record key use") });
  // Failed authentications likewise: one bounded batch a second, so failures cannot become disk load.
  const failures = new BufferedFailureRecorder(store, { onError: (error) => logger.error({ err: error }, "could not write auth.failed to the audit log") });
  const service = new KeyService({ store, config: config.service, pepper: config.pepper, useRecorder: recorder, failureRecorder: failures });
  const close = async () => {
    await recorder.close().catch((error: unknown) => logger.error({ err: error }, "could not record key use"));
    await failures.close().catch((error: unknown) => logger.error({ err: error }, "could not write auth.failed to the audit log"));
    await store.close();
  };
  // Keys whose hash cannot be computed here would fail every verification: refuse to start instead.
  const unusable = await service.unusableHashAlgorithms().catch(async (error: unknown) => {
    await close();
    throw error;
  });
  if (unusable.length > 0) {
    await close();
    throw new ConfigError(
      unusable
        .map((algorithm) =>
          algorithm === PEPPERED_ALGORITHM
            ? `database ${config.databasePath} holds keys hashed with ${algorithm}, which needs KEYWARDEN_PEPPER: set it to the pepper those keys were created with`
            : `database ${config.databasePath} holds keys hashed with ${JSON.stringify(algorithm)}, which this keywarden cannot compute: upgrade keywarden`,
        )
        .join("; "),
    );
  }
  return { config, store, service, logger, recorder, close };
}

async function runStdioServer(options: RawOptions): Promise<void> {
  const { config, service, logger, close } = await openApp(options);
  const principal = await service.localPrincipal({ userName: config.userName, transport: "stdio", isAdmin: config.isAdmin });
  const server = createServer({ service, principalOf: () => principal, version: VERSION, logger });
  await serveStdio(server, close);
  logger.info(
    { version: VERSION, db: config.databasePath, user: config.userName, admin: config.isAdmin },
    "keywarden stdio server ready",
  );
}

async function runHttpServer(options: ServeRawOptions): Promise<void> {
  const http = resolveHttpConfig(options);
  // Loaded here, not at the top: the stdio server starts without Express and the HTTP stack.
  const { startHttpServer } = await import("./transports/http.js");
  const { config, logger, service, close } = await openApp(options);

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
      db: config.databasePath,
      stateless: http.stateless,
      auth: http.noAuth ? "none" : "bearer",
      allowed_origins: http.allowedOrigins ?? "loopback",
    },
    "keywarden http server listening",
  );
  if (http.noAuth) {
    logger.warn({ user: config.userName }, "--no-auth: every request acts as this user with tools:read and tools:execute, without a key");
  }
}

/** The flag (or argument) that carries each service field of an admin command, e.g. project_reference → --project. */
type FlagsByField = Readonly<Record<string, string>>;

/**
 * A refusal told in the command's own terms: fields named by their flags. A validation_error is a
 * bad flag value (exit 2, as every bad flag); other refusals (not_found, max_keys_reached) exit 1.
 */
function inFlagTerms(error: unknown, flags: FlagsByField): unknown {
  if (!(error instanceof ServiceError)) return error;
  const fields = error.errors.map((field) => ({ ...field, key: flags[field.key] ?? field.key }));
  if (error.code === "validation_error") {
    return new ConfigError(`validation_error: ${fields.map((field) => `${field.key}: ${field.message}`).join("; ")}`);
  }
  return new ServiceError(error.code, error.message, fields);
}

async function withAdminApp<T>(
  options: RawOptions,
  flags: FlagsByField,
  run: (app: App, principal: Awaited<ReturnType<KeyService["localPrincipal"]>>) => Promise<T>,
): Promise<T> {
  const app = await openApp(options);
  try {
    const principal = await app.service.localPrincipal({ userName: app.config.userName, transport: "cli", isAdmin: true });
    return await run(app, principal);
  } catch (error) {
    throw inFlagTerms(error, flags);
  } finally {
    await app.close();
  }
}

/** Every item of a paged listing, walking its cursors: the admin commands print whole listings. */
async function everyPage<T>(fetchPage: (cursor: string | undefined) => Promise<{ items: T[]; next: string | null }>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    items.push(...page.items);
    cursor = page.next ?? undefined;
  } while (cursor !== undefined);
  return items;
}

/** User names by id, so that listings name owners and actors instead of showing usr_ ids. */
async function userNamesById(service: KeyService, principal: Principal): Promise<Map<string, string>> {
  return new Map((await service.listUsers(principal)).map((user) => [user.id, user.name]));
}

function print(json: boolean, value: unknown, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
}

export function buildProgram(): Command {
  const program = addCommonOptions(new Command("keywarden"))
    .description("An MCP server that issues and manages API keys. Without a command it serves MCP over stdio.")
    .version(VERSION, "-v, --version")
    // Options after a subcommand belong to it (`keywarden admin list-projects --db x`); without
    // this, commander hands them to the root command and the subcommand silently uses the default.
    .enablePositionalOptions()
    // A usage error (unknown option, missing value or argument) is a bad flag: one line, exit 2,
    // like every other (README, Configuration). Subcommands made below inherit both settings.
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`keywarden: ${text.replace(/^error: /, "").replace(/\s*\n(?=.)/g, " ")}`) })
    // Not .env(): commander would treat KEYWARDEN_ADMIN=0 as true; resolveConfig parses it.
    .option("--admin", "the stdio user acts as an admin: every user's keys, projects (env: KEYWARDEN_ADMIN=1)")
    .action((options: RawOptions) => runStdioServer(options));

  addCommonOptions(program.command("serve"))
    .description("serve MCP over Streamable HTTP at /mcp, with GET /healthz and POST /v1/keys/verify; callers authenticate with keys from the store")
    .addOption(new Option("--host <address>", "address to bind (default: 127.0.0.1)").env("KEYWARDEN_HOST"))
    .addOption(new Option("--port <n>", "port to listen on; 0 picks a free one (default: 3000)").env("KEYWARDEN_PORT"))
    .option("--stateless", "no sessions: a fresh server per POST, GET and DELETE get 405, for load balancers (env: KEYWARDEN_STATELESS=1)")
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
      new Option("--session-idle-timeout <seconds>", "close a session after this long without a request (default: 1800)").env(
        "KEYWARDEN_SESSION_IDLE_TIMEOUT",
      ),
    )
    .addOption(
      new Option("--max-sessions <n>", "open sessions at most; one more initialize gets 503 unless its key has one to give up (default: 1000)").env(
        "KEYWARDEN_MAX_SESSIONS",
      ),
    )
    .addOption(
      new Option("--max-sessions-per-key <n>", "open sessions per key; one more closes that key's least recently used (default: 10)").env(
        "KEYWARDEN_MAX_SESSIONS_PER_KEY",
      ),
    )
    .addOption(
      new Option("--auth-failure-limit <n>", "failed authentications per client address (IPv6: per /64) before its further failures get 429; valid keys are still served (default: 30)").env(
        "KEYWARDEN_AUTH_FAILURE_LIMIT",
      ),
    )
    .addOption(
      new Option("--auth-failure-window <seconds>", "the window those failures are counted in, and further failures get 429 for (default: 300)").env(
        "KEYWARDEN_AUTH_FAILURE_WINDOW",
      ),
    )
    .addOption(
      new Option("--trust-proxy <hops|addresses>", "take the client address from X-Forwarded-For set by these proxies (default: off)").env(
        "KEYWARDEN_TRUST_PROXY",
      ),
    )
    .action((_options: unknown, command: Command) => runHttpServer(effectiveOptions<ServeRawOptions>(command)));

  const admin = program
    .command("admin")
    .description("operator commands that act on the database directly")
    .enablePositionalOptions();

  addCommonOptions(admin.command("create-project"))
    .description("create a project, so that project-scoped keys can be made")
    .requiredOption("--slug <slug>", "unique slug, ^[a-z0-9][a-z0-9-]{0,62}$")
    .requiredOption("--name <name>", "display name")
    .option("--scopes <a,b>", "default scopes of the project's keys (default: the user-level defaults)")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<RawOptions & { slug: string; name: string; scopes?: string; json?: boolean }>(command);
      return withAdminApp(options, { slug: "--slug", name: "--name", default_scopes: "--scopes" }, async ({ service }, principal) => {
        const project = await service.createProject(principal, {
          slug: options.slug,
          name: options.name,
          default_scopes: options.scopes?.split(",").map((scope) => scope.trim()).filter(Boolean),
        });
        print(options.json === true, project, `created project ${project.slug} (${project.id}) with default scopes ${project.default_scopes.join(",")}`);
      });
    });

  addCommonOptions(admin.command("create-key"))
    .description(
      "create an API key for --user (default: the operator) and print it once on stdout, nothing else there; " +
        "the bootstrap of the first admin key: --scopes admin",
    )
    .requiredOption("--name <name>", "display name of the key")
    .option("--scopes <a,b>", "scopes of the key (default: the project's or the user-level defaults); any scope, this is an admin command")
    .option("--project <id|slug>", "make a project key")
    .option("--expires-in-days <n>", "expiry, in days from now (default: the default expiry policy)")
    .option("--json", "print the key and its fields as JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<
        RawOptions & { name: string; scopes?: string; project?: string; expiresInDays?: string; json?: boolean }
      >(command);
      const flags = { name: "--name", project_reference: "--project", expires_in_days: "--expires-in-days", scopes: "--scopes" };
      return withAdminApp(options, flags, async ({ service }, principal) => {
        const expiresInDays = options.expiresInDays === undefined ? undefined : positiveInteger("--expires-in-days", options.expiresInDays, 0);
        // The service makes the instant, within policy and MAX_INSTANT (src/store/instants.ts).
        const created = await service.createApiKey(principal, {
          name: options.name,
          project_reference: options.project,
          expires_in_days: expiresInDays,
          scopes: options.scopes === undefined ? undefined : parseScopeList("--scopes", options.scopes),
        });
        // stdout gets the key and nothing else; the rest is for the operator's eyes.
        process.stdout.write(options.json === true ? `${JSON.stringify(created, null, 2)}\n` : `${created.key}\n`);
        if (options.json !== true) {
          process.stderr.write(
            `keywarden: created ${created.id} (${created.key_prefix}) for user ${principal.userName}, scopes ${created.scopes.join(",")}, ` +
              `expires ${created.expires_at ?? "never"}. The key above is shown only this once.\n`,
          );
        }
      });
    });

  addCommonOptions(admin.command("list-projects"))
    .description("list the projects of the default organization")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<RawOptions & { json?: boolean }>(command);
      return withAdminApp(options, {}, async ({ service }, principal) => {
        const projects = await service.listProjects(principal);
        const lines = projects.map((project) => `${project.id}  ${project.slug}  ${project.name}  [${project.default_scopes.join(",")}]`);
        print(options.json === true, projects, lines.length > 0 ? lines.join("\n") : "no projects");
      });
    });

  addCommonOptions(admin.command("list-users"))
    .description("list the users of the default organization, with the active keys each holds")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<RawOptions & { json?: boolean }>(command);
      return withAdminApp(options, {}, async ({ service }, principal) => {
        const users = await service.listUsers(principal);
        const lines = users.map((user) => `${user.id}  ${user.name}  ${user.active_keys} active`);
        print(options.json === true, users, lines.length > 0 ? lines.join("\n") : "no users");
      });
    });

  addCommonOptions(admin.command("list-keys"))
    .description("list every user's keys, oldest first: prefixes and fields, never a token or a hash")
    .option("--status <status>", "active, revoked, expired or all (default: active)")
    .option("--project <id|slug>", "only this project's keys")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<RawOptions & { status?: string; project?: string; json?: boolean }>(command);
      return withAdminApp(options, { status: "--status", project_reference: "--project" }, async ({ service }, principal) => {
        const keys = await everyPage(async (cursor) => {
          const page = await service.listApiKeys(principal, {
            status: options.status as ListApiKeysInput["status"], // checked by the service
            project_reference: options.project,
            limit: PAGE_LIMIT_MAX,
            cursor,
          });
          return { items: page.keys, next: page.next_cursor };
        });
        const userNames = await userNamesById(service, principal);
        const lines = keys.map(
          (key) =>
            `${key.id}  ${key.key_prefix}  ${key.status}  ${userNames.get(key.user_id) ?? key.user_id}  ${JSON.stringify(key.name)}  ` +
            `scopes ${key.scopes.join(",")}  expires ${key.expires_at ?? "never"}  last used ${key.last_used_at ?? "never"}`,
        );
        print(options.json === true, keys, lines.length > 0 ? lines.join("\n") : "no keys");
      });
    });

  addCommonOptions(admin.command("revoke-key"))
    .description("revoke a key at once, by id (a key_… id from list-keys); revoking twice is not an error")
    .argument("<id>", "the key's id")
    .option("--reason <text>", "why, kept in the key's record and the audit log")
    .option("--json", "print the revoked key's record as JSON")
    .action((id: string, _options: unknown, command: Command) => {
      const options = effectiveOptions<RawOptions & { reason?: string; json?: boolean }>(command);
      return withAdminApp(options, { id: "<id>", reason: "--reason" }, async ({ service }, principal) => {
        const key = await service.revokeApiKey(principal, { id, reason: options.reason });
        print(options.json === true, key, `revoked ${key.id} (${key.key_prefix}) at ${key.revoked_at}`);
      });
    });

  addCommonOptions(admin.command("list-events"))
    .description("print the audit log, oldest first: creates, updates, rotations, revocations, failed authentications, denied calls")
    .option("--key-id <id>", "only the events of this key")
    .option("--json", "print JSON")
    .action((_options: unknown, command: Command) => {
      const options = effectiveOptions<RawOptions & { keyId?: string; json?: boolean }>(command);
      return withAdminApp(options, { key_id: "--key-id" }, async ({ service }, principal) => {
        const events = await everyPage(async (cursor) => {
          const page = await service.listKeyEvents(principal, { key_id: options.keyId, limit: PAGE_LIMIT_MAX, cursor });
          return { items: page.events, next: page.next_cursor };
        });
        const userNames = await userNamesById(service, principal);
        const actor = (userId: string | null) => (userId === null ? "-" : (userNames.get(userId) ?? userId));
        const lines = events.map(
          (event) =>
            `${event.occurred_at}  ${event.event_type}  key ${event.key_id ?? "-"}  by ${actor(event.actor_user_id)}` +
            `${event.actor_key_id ? ` with ${event.actor_key_id}` : ""} over ${event.transport}` +
            `${event.client_address ? ` from ${event.client_address}` : ""}  ${JSON.stringify(event.detail)}`,
        );
        print(options.json === true, events, lines.length > 0 ? lines.join("\n") : "no events");
      });
    });

  return program;
}

/** One clear line on stderr and a non-zero exit for anything the operator can fix; never a stack trace. */
function fail(error: unknown): never {
  if (error instanceof CommanderError) {
    // Commander has written its line already; help and --version end here too, with their own code.
    process.exit(error.exitCode === 0 || error.code === "commander.help" ? error.exitCode : 2);
  }
  if (error instanceof ConfigError || error instanceof StoreOpenError) {
    process.stderr.write(`keywarden: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof ServiceError) {
    const fields = error.errors.map((field) => `${field.key}: ${field.message}`).join("; ");
    process.stderr.write(`keywarden: ${error.code}: ${error.message}${fields ? ` (${fields})` : ""}\n`);
    process.exit(1);
  }
  process.stderr.write(`keywarden: unexpected error: ${(error as Error)?.message ?? String(error)}\n`);
  process.exit(1);
}

buildProgram()
  .parseAsync(process.argv)
  .catch(fail);
