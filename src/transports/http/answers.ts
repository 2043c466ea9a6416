import type { ServerResponse } from "node:http";
import { errorBody, type FieldError } from "../../service/errors.js";

// Every refusal of the HTTP transport and the envelope it is written in, for both adapters (the
// Express app and the verify fast path): the bytes of an answer depend on the refusal and the
// path alone, never on which adapter wrote it (README, "Limits and errors").

export const MCP_PATH = "/mcp";
export const VERIFY_PATH = "/v1/keys/verify";
export const HEALTH_PATH = "/healthz";
/** Request bodies above this get 413. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** The protection space named in every challenge (RFC 7235 section 2.2). */
export const AUTH_REALM = "keywarden";

/**
 * The one description every failed authentication gets, whatever failed: a caller cannot tell a
 * typo from a revoked key. The audit log keeps the real reason.
 */
export const INVALID_TOKEN_DESCRIPTION = "The bearer token is malformed, unknown, revoked or expired";

/** What a request without any credential is told: what to send (keywarden takes API keys, not OAuth). */
export const MISSING_TOKEN_DESCRIPTION = "This endpoint needs a keywarden API key, sent as Authorization: Bearer kw_…; keywarden does not use OAuth";

/** A refused request. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
  headers?: Readonly<Record<string, string>>;
  /** The exact body on every path (the OAuth-style answers, Host's JSON-RPC); absent: the path's envelope (bodyOf). */
  body?: unknown;
}

/** A JSON-RPC error with no id, as the SDK's transport answers HTTP-level failures on /mcp. */
export function jsonRpcError(code: number, message: string) {
  return { jsonrpc: "2.0", error: { code, message }, id: null };
}

/** RFC 6749 section 5.2 / RFC 6750 section 3 shaped: what OAuth-capable clients can show a person. */
export function oauthError(error: string, description: string) {
  return { error, error_description: description };
}

/** The body of a refusal: JSON-RPC on /mcp (as the SDK's transport answers), keywarden's error body elsewhere. */
export function bodyOf(path: string, refusal: Refusal, errors: readonly FieldError[] = []): unknown {
  if (refusal.body !== undefined) return refusal.body;
  if (path === MCP_PATH) return jsonRpcError(refusal.status === 400 && refusal.code === "parse_error" ? -32700 : -32000, refusal.message);
  return errorBody(refusal.code, refusal.message, errors);
}

/**
 * Writes a JSON answer on a Node response (Express's too: headers it set before stay), as
 * Express's res.json would; nothing once an answer has started.
 */
export function writeJson(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  // One writeHead: on a response without headers set before (the fast path) Node writes these
  // without a setHeader per name; on one with some (CORS), it merges them.
  res.writeHead(status, { ...headers, "Content-Type": "application/json; charset=utf-8", "Content-Length": String(Buffer.byteLength(text)) });
  res.end(text);
}

/** Writes a refusal: its headers, and its body in the path's envelope. */
export function writeRefusal(res: ServerResponse, path: string, refusal: Refusal): void {
  writeJson(res, refusal.status, bodyOf(path, refusal), refusal.headers);
}

export function refusal(status: number, code: string, message: string, headers?: Record<string, string>): Refusal {
  return headers === undefined ? { status, code, message } : { status, code, message, headers };
}

// --- Fixed answers, built once ---------------------------------------------------------------

/**
 * The 401. With a credential that failed: `error="invalid_token"` (RFC 6750 section 3.1), the same
 * header and body whatever failed. With none at all: a bare challenge with no error code, as
 * section 3.1 asks for a request that lacks authentication information.
 */
export const INVALID_TOKEN: Refusal = {
  status: 401,
  code: "invalid_token",
  message: INVALID_TOKEN_DESCRIPTION,
  headers: { "WWW-Authenticate": `Bearer realm="${AUTH_REALM}", error="invalid_token", error_description="${INVALID_TOKEN_DESCRIPTION}"` },
  body: oauthError("invalid_token", INVALID_TOKEN_DESCRIPTION),
};
export const MISSING_TOKEN: Refusal = {
  status: 401,
  code: "unauthorized",
  message: MISSING_TOKEN_DESCRIPTION,
  headers: { "WWW-Authenticate": `Bearer realm="${AUTH_REALM}"` },
  body: oauthError("unauthorized", MISSING_TOKEN_DESCRIPTION),
};
export function unauthorizedRefusal(presented: boolean): Refusal {
  return presented ? INVALID_TOKEN : MISSING_TOKEN;
}

/**
 * The store could not be asked: nothing is known about the key. 503, as /healthz answers then, so
 * that a gateway tells "keywarden cannot judge now, retry" from a refusal or a bug; the error
 * code is RFC 6749's (section 4.1.2.1) for a server that cannot handle the request for now.
 */
const UNAVAILABLE_DESCRIPTION = "The key store did not answer; retry later";
export const AUTHENTICATION_UNAVAILABLE: Refusal = {
  status: 503,
  code: "temporarily_unavailable",
  message: UNAVAILABLE_DESCRIPTION,
  headers: { "Retry-After": "1" },
  body: oauthError("temporarily_unavailable", UNAVAILABLE_DESCRIPTION),
};

/** The answer to a failed credential from an address over its limit (rate-limit.ts). */
export function rateLimitedRefusal(retryAfterSeconds: number): Refusal {
  return refusal(429, "rate_limited", `too many failed authentication attempts from this address; retry in ${retryAfterSeconds} s`, {
    "Retry-After": String(retryAfterSeconds),
  });
}

/** 403 for a key that holds none of the endpoint's scopes (RFC 6750 section 3.1). */
export function insufficientScopeRefusal(scopes: readonly string[]): Refusal {
  return {
    status: 403,
    code: "insufficient_scope",
    message: `This endpoint needs a key with one of: ${scopes.join(", ")}`,
    headers: {
      "WWW-Authenticate": `Bearer error="insufficient_scope", error_description="This key holds none of the scopes this endpoint needs", scope="${scopes.join(" ")}"`,
    },
    body: oauthError("insufficient_scope", `This endpoint needs a key with one of: ${scopes.join(", ")}`),
  };
}

export const PAYLOAD_TOO_LARGE: Refusal = refusal(413, "payload_too_large", `Payload too large: the limit is ${MAX_BODY_BYTES} bytes`, { Connection: "close" });
export const PARSE_ERROR: Refusal = refusal(400, "parse_error", "Parse error: the body is not valid JSON");
export const INTERNAL_ERROR: Refusal = refusal(500, "internal_error", "internal error; the operation was not completed");
export const SHUTTING_DOWN: Refusal = refusal(503, "unavailable", "the server is shutting down", { Connection: "close" });

export function methodNotAllowed(allowed: readonly string[]): Refusal {
  return refusal(405, "method_not_allowed", `Method not allowed: use ${allowed.join(" or ")}`, { Allow: allowed.join(", ") });
}

/** The verify endpoint's answer to a body that is not a JSON object. */
export const VERIFY_BODY_NOT_OBJECT = errorBody("validation_error", 'the body must be a JSON object: {"key": "…", "required_scopes": ["…"]}', [
  { key: "body", message: "expected a JSON object (Content-Type: application/json)" },
]);
