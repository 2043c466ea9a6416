import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  CallToolRequestSchema,
  ElicitResultSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type ServerNotification,
  type ServerRequest,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { redactTokenSecrets } from "./keys/token.js";
import type { KeyService } from "./service/service.js";
import type { Principal } from "./service/principal.js";
import type { ConfirmationAnswer } from "./service/types.js";
import { mayCallTool } from "./tools/access.js";
import { callTool } from "./tools/call.js";
import { allTools } from "./tools/index.js";
import { toolJsonSchemas, type ToolDefinition } from "./tools/tool.js";

/** The part of a pino logger the server uses; any pino logger fits. */
export interface ServerLogger {
  debug(object: Record<string, unknown>, message: string): void;
  info(object: Record<string, unknown>, message: string): void;
  error(object: Record<string, unknown>, message: string): void;
}

/** What the SDK tells a request handler about its request (its authInfo, session, HTTP headers). */
export type McpRequest = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface CreateServerOptions {
  service: KeyService;
  /**
   * Who is acting in one request, asked for every tools/list and tools/call: over stdio always the
   * local principal (`() => principal`); over HTTP the bearer key's, with its current scopes and
   * the client's address, which the HTTP transport left in the request (`request.authInfo`).
   */
  principalOf: (request: McpRequest) => Principal;
  version: string;
  tools?: readonly ToolDefinition[];
  logger?: ServerLogger;
  /** How long a confirmation question waits for an answer; CONFIRMATION_TIMEOUT_MS unless a test says otherwise. */
  confirmationTimeoutMs?: number;
}

/**
 * How long a confirmation question waits for the person behind the client: less than clients wait
 * for the call itself (the SDK's default request time-out, 60 s), so that a slow answer ends in
 * confirmation_declined rather than in the client's time-out with the question still open.
 */
export const CONFIRMATION_TIMEOUT_MS = 45_000;

/** tools/list entries are computed once per tool definition, not per request. */
const listingCache = new WeakMap<ToolDefinition, Tool>();

export function toolListing(tool: ToolDefinition): Tool {
  let listing = listingCache.get(tool);
  if (!listing) {
    const schemas = toolJsonSchemas(tool);
    listing = {
      name: tool.name,
      title: tool.title,
      description: tool.description,
      inputSchema: schemas.input as Tool["inputSchema"],
      outputSchema: schemas.output as Tool["outputSchema"],
      // No annotations.title: it would repeat `title`, which MCP (2025-06-18 on) and the SDK's
      // getDisplayName read first (title, then annotations.title, then name). A 2025-03-26 client,
      // which knows only annotations.title, shows the tool's name.
      annotations: { ...tool.annotations },
      _meta: { "keywarden/group": tool.group },
    };
    listingCache.set(tool, listing);
  }
  return listing;
}

/**
 * An MCP server. It uses the SDK's low-level Server with its own small tool registry, so that
 * argument validation answers with keywarden's validation_error body. The acting principal's
 * scopes decide which tools it sees and may call (tools/access.ts, tools/call.ts).
 */
export function createServer({
  service,
  principalOf,
  version,
  tools = allTools,
  logger,
  confirmationTimeoutMs = CONFIRMATION_TIMEOUT_MS,
}: CreateServerOptions): Server {
  // Plain-JavaScript callers of 0.1 passed `principal`: say what replaced it rather than fail on the first request.
  if (typeof principalOf !== "function") {
    throw new TypeError("createServer needs principalOf(request) => Principal; over stdio pass principalOf: () => principal");
  }
  const server = new Server(
    { name: "keywarden", title: "keywarden", version },
    {
      capabilities: { tools: { listChanged: false } },
      instructions:
        "keywarden issues and manages API keys. A key's full value appears only in the result of the call that created it.",
    },
  );
  const byName = new Map(tools.map((tool) => [tool.name, tool]));

  server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => {
    const acting = principalOf(extra);
    return { tools: tools.filter((tool) => mayCallTool(acting, tool)).map(toolListing) };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const tool = byName.get(request.params.name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${redactTokenSecrets(request.params.name)}`);
    const acting = principalOf(extra);
    // A question to the person behind the client, sent as part of this call (so over HTTP it
    // travels on this call's stream). A client that declared no elicitation cannot ask: its own
    // approval of a destructive tool stands, a yes. A server that never saw the client's
    // initialize (serve --stateless: a fresh one per POST) knows neither, and an answer could not
    // come back to it: cannot_ask, which the service refuses (README, Confirmation).
    // The call's cancellation ends the question (the SDK sends notifications/cancelled for it).
    const confirm = async (message: string): Promise<ConfirmationAnswer> => {
      const capabilities = server.getClientCapabilities();
      if (capabilities === undefined) return "cannot_ask";
      if (capabilities.elicitation === undefined) return "accepted";
      const answer = await extra.sendRequest(
        { method: "elicitation/create", params: { message, requestedSchema: { type: "object", properties: {} } } },
        ElicitResultSchema,
        { timeout: confirmationTimeoutMs, signal: extra.signal },
      );
      logger?.info({ tool: tool.name, key: acting.keyId, answer: answer.action }, "confirmation answered");
      return answer.action === "accept" ? "accepted" : "declined";
    };
    const started = performance.now();
    const outcome = await callTool(tool, request.params.arguments, {
      service,
      principal: acting,
      confirm,
      signal: extra.signal,
      closeStream: extra.closeSSEStream,
    });
    if (outcome.denied !== undefined) {
      logger?.info({ tool: tool.name, key: acting.keyId, needed: outcome.denied.neededScope }, "tool call denied");
      if (outcome.denied.auditFault !== undefined) logger?.error({ err: outcome.denied.auditFault }, "could not write call.denied to the audit log");
    }
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
