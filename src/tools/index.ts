import { createApiKeyTool } from "./create_api_key.js";
import type { ToolDefinition } from "./tool.js";

/** Every tool keywarden serves, in the order tools/list shows them. */
export const allTools: readonly ToolDefinition[] = [createApiKeyTool];
