import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type Tool } from "@modelcontextprotocol/sdk/types.js";
import type { KeyService } from "./service/service.js";
import type { Principal } from "./service/principal.js";
import { callTool } from "./tools/call.js";
import { allTools } from "./tools/index.js";
import { toJsonSchema, type ToolDefinition } from "./tools/tool.js";

/** The part of a pino logger the server uses; any pino logger fits. */
export interface ServerLogger {
  debug(object: Record<string, unknown>, message: string): void;
  error(object: Record<string, unknown>, message: string): void;
}

export interface CreateServerOptions {
  service: KeyService;
  principal: Principal;
  version: string;
  tools?: readonly ToolDefinition[];
  logger?: ServerLogger;
}

/** tools/list entries are computed once per tool definition, not per request. */
const listingCache = new WeakMap<ToolDefinition, Tool>();

export function toolListing(tool: ToolDefinition): Tool {
  let listing = listingCache.get(tool);
  if (!listing) {
    listing = {
      name: tool.name,
      title: tool.title,
      description: tool.description,
      inputSchema: toJsonSchema(tool.inputSchema) as Tool["inputSchema"],
      outputSchema: toJsonSchema(tool.outputSchema) as Tool["outputSchema"],
      annotations: { title: tool.title, ...tool.annotations },
      _meta: { "keywarden/group": tool.group },
    };
    listingCache.set(tool, listing);
  }
  return listing;
}

/**
 * An MCP server for one principal. It uses the SDK's low-level Server with its own small tool
 * registry, so that argument validation answers with keywarden's validation_error body.
 */
export function createServer({ service, principal, version, tools = allTools, logger }: CreateServerOptions): Server {
  const server = new Server(
    { name: "keywarden", title: "keywarden", version },
    {
      capabilities: { tools: { listChanged: false } },
      instructions:
        "keywarden issues and manages API keys. A key's full value appears only in the result of the call that created it.",
    },
  );
  const byName = new Map(tools.map((tool) => [tool.name, tool]));

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: tools.map(toolListing) }));

  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const tool = byName.get(request.params.name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${request.params.name}`);
    const started = performance.now();
    const outcome = await callTool(tool, request.params.arguments, { service, principal });
    if (outcome.fault !== undefined) {
      logger?.error({ tool: tool.name, err: outcome.fault }, "tool call failed unexpectedly");
    }
    logger?.debug(
      { tool: tool.name, outcome: outcome.errorCode ?? "ok", ms: Math.round(performance.now() - started) },
      "tool call",
    );
    return outcome.result;
  });

  return server;
}
