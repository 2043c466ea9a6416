// `keywarden/http`: MCP over Streamable HTTP with bearer keys, /healthz and POST /v1/keys/verify
// (README, Serve over HTTP). Loads Express and the SDK's HTTP transport.
export { startHttpServer, type HttpServerOptions, type RunningHttpServer } from "./transports/http.js";
