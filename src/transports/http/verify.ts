import type { IncomingMessage, ServerResponse } from "node:http";
import { errorBody, ServiceError } from "../../service/errors.js";
import type { KeyService } from "../../service/service.js";
import type { RequestOrigin } from "../../service/types.js";
import { fieldErrorsOf } from "../../tools/call.js";
import { verifyApiKeyInput, verifyForSnakeCaseCaller } from "../../tools/verify_api_key.js";
import { MAX_BODY_BYTES, PARSE_ERROR, PAYLOAD_TOO_LARGE, VERIFY_BODY_NOT_OBJECT, VERIFY_PATH, writeRefusal, type Refusal } from "./answers.js";

// POST /v1/keys/verify for gateways (README, "The verify endpoint"): the one handler both adapters
// call once the guards have passed, and the body reader of the fast path, which answers as
// express.json({strict: true}) does in the Express app.

export interface VerifyAnswer {
  status: number;
  body: unknown;
}

export type VerifyHandler = (body: unknown, origin: RequestOrigin) => Promise<VerifyAnswer>;

/** 200 with the verify result (good key or not), or 400 for a body that is not the input. */
export function createVerifyHandler(service: KeyService): VerifyHandler {
  return async (body, origin) => {
    if (body === null || typeof body !== "object" || Array.isArray(body)) return { status: 400, body: VERIFY_BODY_NOT_OBJECT };
    const parsed = verifyApiKeyInput.safeParse(body);
    if (!parsed.success) {
      const errors = fieldErrorsOf(parsed.error, body as Record<string, unknown>)
        // A value sent as `key` is never echoed back.
        .map((field) => (field.key === "key" ? { key: field.key, message: field.message } : field));
      const message = errors.length === 1 ? `invalid ${errors[0]!.key}: ${errors[0]!.message}` : `${errors.length} fields are invalid`;
      return { status: 400, body: errorBody("validation_error", message, errors) };
    }
    try {
      const result = await verifyForSnakeCaseCaller(service, parsed.data.key, {
        requiredScopes: parsed.data.required_scopes,
        ip: origin.clientAddress,
        userAgent: origin.userAgent,
      });
      return { status: 200, body: result };
    } catch (error) {
      if (error instanceof ServiceError) {
        const { code, message, errors } = error.toBody().error;
        return { status: 400, body: errorBody(code, message, errors) };
      }
      throw error;
    }
  };
}

/** `application/json`, optionally with charset=utf-8: the only bodies the fast path reads itself. */
export const PLAIN_JSON = /^application\/json\s*(?:;\s*charset=("?)utf-8\1\s*)?$/i;

/** As body-parser in strict mode: an empty body is {}, anything but an object or array is a parse error. */
export function parseJsonBody(text: string): { body: unknown } | Refusal {
  if (text.trim().length === 0) return { body: {} };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return PARSE_ERROR;
  }
  return body !== null && typeof body === "object" ? { body } : PARSE_ERROR;
}

/**
 * The body as text, or null once the 413 has been sent (declared or counted over MAX_BODY_BYTES).
 * A string, not a promise, when the whole body is already buffered: a gateway's small body
 * usually arrives with its headers, and Node's parser has queued all of it (Content-Length bytes,
 * exactly: RFC 9112 section 6.3) by the time the caller's key is judged.
 */
export function readBody(req: IncomingMessage, res: ServerResponse): string | null | Promise<string | null> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return refuseBody(req, res);
  // Chunked bodies and bodies still on the wire take the listeners below.
  if (req.headers["content-length"] !== undefined && req.readableLength === declared && req.readableFlowing !== true) {
    if (declared === 0) return "";
    // read() with no size hands over everything buffered as one Buffer, and marks the request
    // consumed (Node reads on to its end rather than dumping it).
    return (req.read() as Buffer).toString("utf8");
  }
  return new Promise((resolve, reject) => {
    const refuse = () => resolve(refuseBody(req, res));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return refuse();
      chunks.push(chunk);
    });
    req.once("end", () => resolve(size > MAX_BODY_BYTES ? null : chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
}

/** The 413, with the rest of the body discarded. */
function refuseBody(req: IncomingMessage, res: ServerResponse): null {
  writeRefusal(res, VERIFY_PATH, PAYLOAD_TOO_LARGE);
  req.removeAllListeners("data");
  req.resume();
  return null;
}
