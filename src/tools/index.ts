import { createApiKeyTool } from "./create_api_key.js";
import { createProjectTool } from "./create_project.js";
import { getApiKeyTool } from "./get_api_key.js";
import { listApiKeysTool } from "./list_api_keys.js";
import { listKeyEventsTool } from "./list_key_events.js";
import { listProjectsTool } from "./list_projects.js";
import { revokeApiKeyTool } from "./revoke_api_key.js";
import { rotateApiKeyTool } from "./rotate_api_key.js";
import type { ToolDefinition } from "./tool.js";
import { updateApiKeyTool } from "./update_api_key.js";
import { verifyApiKeyTool } from "./verify_api_key.js";
import { whoamiTool } from "./whoami.js";

/** Every tool keywarden serves, in the order tools/list shows them. */
export const allTools: readonly ToolDefinition[] = [
  createApiKeyTool,
  listApiKeysTool,
  getApiKeyTool,
  updateApiKeyTool,
  rotateApiKeyTool,
  revokeApiKeyTool,
  verifyApiKeyTool,
  whoamiTool,
  listProjectsTool,
  createProjectTool,
  listKeyEventsTool,
];
