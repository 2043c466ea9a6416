import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestOrigin } from "../../service/types.js";
import { VERIFY_ENDPOINT_SCOPES } from "../../tools/access.js";
import { INTERNAL_ERROR, VERIFY_PATH, writeJson, writeRefusal } from "./answers.js";
import type { Pipeline } from "./pipeline.js";
import type { RequestLog } from "./request-log.js";
import { parseJsonBody, PLAIN_JSON, readBody, type VerifyHandler } from "./verify.js";

// POST /v1/keys/verify is what gateways call on every request they serve, so it is answered on
// bare node:http: Express costs more CPU per request than the verification does. It runs the same
// pipeline (pipeline.ts) and the same handler (verify.ts) as the Express route, and writes with the
// same answers (answers.ts), so the two cannot differ. It takes only requests for which the Express
// app's other steps change nothing: no query string (?admin_key=), no Origin (so no CORS), no
// --no-auth, no proxy to trust (req.ip), plain JSON without an encoding (body-parser's work),
// not shutting down. Everything else takes the Express route.

export interface FastPath {
  takes(req: IncomingMessage, closing: boolean): boolean;
  serve(req: IncomingMessage, res: ServerResponse): void;
}

export function createVerifyFastPath(options: {
  pipeline: Pipeline;
  verify: VerifyHandler;
  requestLog: RequestLog;
  /** --no-auth or a proxy to trust: the fast path takes nothing. */
  disabled: boolean;
  onError(error: unknown): void;
}): FastPath {
  const { pipeline, verify, requestLog, disabled, onError } = options;

  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const screened = pipeline.screen(req, VERIFY_PATH);
    if (screened) return writeRefusal(res, VERIFY_PATH, screened);
    const origin: RequestOrigin = { transport: "http", clientAddress: req.socket.remoteAddress ?? "unknown", userAgent: req.headers["user-agent"] ?? null };
    const authentication = await pipeline.authenticate(req, origin, VERIFY_PATH, undefined);
    if (!authentication.ok) return writeRefusal(res, VERIFY_PATH, authentication.refusal);
    const denial = pipeline.authorize(authentication.principal, VERIFY_ENDPOINT_SCOPES, VERIFY_PATH);
    if (denial !== null) return writeRefusal(res, VERIFY_PATH, await denial);
    // Awaited only when the body is still arriving (readBody).
    const read = readBody(req, res);
    const text = typeof read === "string" || read === null ? read : await read;
    if (text === null) return;
    const parsed = parseJsonBody(text);
    if ("status" in parsed) return writeRefusal(res, VERIFY_PATH, parsed);
    const result = await verify(parsed.body, origin);
    writeJson(res, result.status, result.body);
  };

  return {
    takes: (req, closing) =>
      !disabled &&
      !closing &&
      req.method === "POST" &&
      req.url === VERIFY_PATH &&
      req.headers.origin === undefined &&
      PLAIN_JSON.test(req.headers["content-type"] ?? "") &&
      (req.headers["content-encoding"] === undefined || req.headers["content-encoding"].toLowerCase() === "identity"),
    serve: (req, res) => {
      requestLog.start(req, res, VERIFY_PATH, req.socket.remoteAddress);
      answer(req, res).catch((error: unknown) => {
        onError(error);
        writeRefusal(res, VERIFY_PATH, INTERNAL_ERROR);
      });
    },
  };
}
