import express, { type NextFunction, type Request, type Response } from "express";
import type { KeyService } from "../../service/service.js";
import type { RequestOrigin } from "../../service/types.js";
import { MCP_SCOPES, VERIFY_ENDPOINT_SCOPES } from "../../tools/access.js";
import { HEALTH_PATH, INTERNAL_ERROR, MAX_BODY_BYTES, MCP_PATH, PARSE_ERROR, PAYLOAD_TOO_LARGE, refusal, SHUTTING_DOWN, VERIFY_PATH, writeJson, writeRefusal } from "./answers.js";
import { corsAnswer, methodGuard } from "./guards.js";
import type { McpHandler } from "./mcp.js";
import { oauthPathRefusal } from "./oauth-discovery.js";
import type { Pipeline } from "./pipeline.js";
import type { RequestLog } from "./request-log.js";
import type { VerifyHandler } from "./verify.js";

// The Express adapter: every request but the verify fast path's (fast-path.ts). It runs the
// pipeline's guards as middleware, in the same order as the fast path, and writes every answer
// with answers.ts; what Express adds is routing, body-parser (charsets, encodings) and req.ip.

export interface ExpressAppOptions {
  service: KeyService;
  pipeline: Pipeline;
  requestLog: RequestLog;
  verify: VerifyHandler;
  mcp: McpHandler;
  methods: ReadonlyMap<string, readonly string[]>;
  trustProxy: boolean | number | readonly string[] | undefined;
  isClosing(): boolean;
  logger: { error(object: Record<string, unknown>, message: string): void };
}

export function createExpressApp(options: ExpressAppOptions): express.Express {
  const { service, pipeline, requestLog, verify, mcp, methods, logger } = options;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("trust proxy", options.trustProxy === undefined ? false : Array.isArray(options.trustProxy) ? [...options.trustProxy] : options.trustProxy);

  const originOf = (req: Request): RequestOrigin => ({
    transport: "http",
    clientAddress: req.ip ?? req.socket.remoteAddress ?? "unknown",
    userAgent: req.get("user-agent") ?? null,
  });

  // Shutting down: nothing new starts.
  app.use((req, res, next) => (options.isClosing() ? writeRefusal(res, req.path, SHUTTING_DOWN) : next()));

  app.use((req, res, next) => {
    requestLog.start(req, res, req.path, req.ip ?? req.socket.remoteAddress ?? "unknown");
    next();
  });

  // Duplicated headers, target and Host, Origin (pipeline.ts).
  app.use((req, res, next) => {
    const screened = pipeline.screen(req, req.path);
    return screened ? writeRefusal(res, req.path, screened) : next();
  });

  app.use((req, res, next) => {
    const cors = corsAnswer(req.method, req.path, req.get("origin"), req.get("access-control-request-method"), methods);
    if (cors === null) return next();
    for (const name in cors.headers) res.setHeader(name, cors.headers[name]!);
    if (!cors.preflight) return next();
    res.status(204).end();
  });

  const allow = (path: string) => (req: Request, res: Response, next: NextFunction) => {
    const refused = methodGuard(req.method, methods.get(path)!);
    return refused ? writeRefusal(res, req.path, refused) : next();
  };

  /** Authenticates and authorizes for `scopes`, leaving the caller in res.locals.caller. */
  const guard = (scopes: readonly string[]) => async (req: Request, res: Response, next: NextFunction) => {
    const authentication = await pipeline.authenticate(req, originOf(req), req.path, pipeline.readsQueryKey ? req.query.admin_key : undefined);
    if (!authentication.ok) return writeRefusal(res, req.path, authentication.refusal);
    const denial = await pipeline.authorize(authentication.principal, scopes, req.path);
    if (denial) return writeRefusal(res, req.path, denial);
    res.locals.caller = { principal: authentication.principal, expiresAt: authentication.expiresAt };
    next();
  };

  const jsonBody = express.json({ limit: MAX_BODY_BYTES, strict: true });

  app.all(HEALTH_PATH, allow(HEALTH_PATH), async (_req, res) => {
    try {
      await service.checkHealth();
      res.status(200).json({ status: "ok", database: "ok" });
    } catch (error) {
      logger.error({ err: error }, "health check: the database does not answer");
      res.status(503).json({ status: "error", database: "unreachable" });
    }
  });

  app.all(VERIFY_PATH, allow(VERIFY_PATH), guard(VERIFY_ENDPOINT_SCOPES), jsonBody, async (req, res) => {
    const answer = await verify(req.body, originOf(req));
    writeJson(res, answer.status, answer.body);
  });

  app.all(
    MCP_PATH,
    allow(MCP_PATH),
    guard(MCP_SCOPES),
    (req, res, next) => (req.method === "POST" ? jsonBody(req, res, next) : next()),
    async (req, res) => mcp.handle(req, res, req.body, res.locals.caller),
  );

  // OAuth discovery, registration and token paths: an RFC 6749-shaped error saying keywarden takes
  // API keys (oauth-discovery.ts), instead of the 404 below that OAuth clients cannot read.
  app.use((req, res, next) => {
    const answer = oauthPathRefusal(req.path);
    return answer ? writeJson(res, answer.status, answer.body, answer.headers) : next();
  });

  app.use((req, res) => writeRefusal(res, req.path, refusal(404, "not_found", `Not found: ${req.method} ${req.path}`)));

  // Every error answer is JSON without a stack trace; the log gets the detail of a real fault.
  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const type = (error as { type?: unknown })?.type;
    if (type === "entity.too.large") return writeRefusal(res, req.path, PAYLOAD_TOO_LARGE);
    if (type === "entity.parse.failed") return writeRefusal(res, req.path, PARSE_ERROR);
    const status = (error as { status?: unknown })?.status;
    if (typeof status === "number" && status >= 400 && status < 500) return writeRefusal(res, req.path, refusal(status, "bad_request", "Bad request"));
    requestLog.unexpected(error, req.path);
    writeRefusal(res, req.path, INTERNAL_ERROR);
  });

  return app;
}
