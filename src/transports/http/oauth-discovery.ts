import { oauthError } from "./answers.js";

// keywarden takes API keys, not OAuth. MCP clients that speak OAuth read a 401 as "start OAuth":
// they fetch the RFC 9728 and RFC 8414 metadata documents (and OpenID Connect's), then try dynamic
// client registration (RFC 7591) and the authorization and token endpoints. A body in keywarden's
// own error shape makes them report "Invalid OAuth error response"; an RFC 6749 section 5.2 shaped
// error (`error` a string, `error_description`) is shown to the person instead, so it says what to do.

/** What every OAuth path answers: there is no OAuth here, and how to authenticate instead. */
export const NOT_OAUTH_DESCRIPTION =
  "keywarden does not use OAuth: it takes API keys, sent as Authorization: Bearer kw_…. " +
  "If this client sends one, it was refused (malformed, unknown, revoked or expired): " +
  "get a working key from the operator (keywarden admin create-key) and configure the client to send that header.";

const WELL_KNOWN_DOCUMENTS = ["oauth-protected-resource", "oauth-authorization-server", "openid-configuration"];
/** The endpoints clients assume at the server's root when no metadata names them (MCP authorization spec's defaults). */
const DEFAULT_ENDPOINTS = ["/register", "/authorize", "/token", "/revoke"];

/**
 * Whether a path is one an OAuth client probes: a well-known metadata document, at the root, with
 * a path suffix (RFC 8414 section 3.1, RFC 9728 section 3.1: `/.well-known/<doc>/mcp`) or after
 * the path (OpenID Connect Discovery: `/mcp/.well-known/openid-configuration`), or a default endpoint.
 */
export function isOAuthPath(path: string): boolean {
  if (DEFAULT_ENDPOINTS.includes(path)) return true;
  const at = path.indexOf("/.well-known/");
  if (at < 0) return false;
  const document = path.slice(at + "/.well-known/".length).split("/")[0]!;
  return WELL_KNOWN_DOCUMENTS.includes(document);
}

const NO_STORE = { "Cache-Control": "no-store" };
const NOT_OAUTH = oauthError("invalid_request", NOT_OAUTH_DESCRIPTION);

export interface OAuthRefusal {
  status: number;
  headers: Record<string, string>;
  body: { error: string; error_description: string };
}

/**
 * The answer to an OAuth path, or null for any other path. 404: the document or endpoint does not
 * exist, which OAuth clients take as "not supported" (and, for registration, show the description).
 * `invalid_request` is the RFC 6749 section 5.2 code every OAuth client knows.
 */
export function oauthPathRefusal(path: string): OAuthRefusal | null {
  if (!isOAuthPath(path)) return null;
  return { status: 404, headers: NO_STORE, body: NOT_OAUTH };
}
