// The public entry of the HTTP transport (src/index.ts, src/cli.ts): its parts are in http/.
export { startHttpServer, HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS, type HttpLogger, type HttpServerOptions, type RunningHttpServer } from "./http/server.js";
export { HEALTH_PATH, INVALID_TOKEN_DESCRIPTION, MAX_BODY_BYTES, MCP_PATH, VERIFY_PATH } from "./http/answers.js";
export { defaultAllowedHosts, normalizeOrigin } from "./http/guards.js";
