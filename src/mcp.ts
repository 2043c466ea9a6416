// `keywarden/mcp`: the MCP server for one principal, and its tools. Loads the MCP SDK's server,
// not its HTTP transport nor Express (those are `keywarden/http`, src/http.ts).
export { createServer, type CreateServerOptions, type ServerLogger } from "./server.js";
export { allTools } from "./tools/index.js";
export type { ToolDefinition } from "./tools/tool.js";
export { serveStdio } from "./transports/stdio.js";
