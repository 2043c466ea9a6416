import { holdsScope } from "../service/access.js";
import type { Principal } from "../service/principal.js";
import type { ToolDefinition } from "./tool.js";

// DESIGN section 5: what a key's scopes let it do to keywarden itself.
export const SCOPE_TOOLS_READ = "tools:read";
export const SCOPE_TOOLS_EXECUTE = "tools:execute";
export const SCOPE_ADMIN = "admin";
export const SCOPE_KEYS_VERIFY = "keys:verify";

/** A key needs one of these to reach the MCP endpoint at all. */
export const MCP_SCOPES: readonly string[] = [SCOPE_TOOLS_READ, SCOPE_TOOLS_EXECUTE, SCOPE_ADMIN];
/** A key needs one of these to call POST /v1/keys/verify. */
export const VERIFY_ENDPOINT_SCOPES: readonly string[] = [SCOPE_KEYS_VERIFY, SCOPE_ADMIN];

/** Whether the principal holds one of `scopes`, as the service's holdsScope defines holding. */
export function holdsAnyScope(principal: Principal, scopes: readonly string[]): boolean {
  return scopes.some((scope) => holdsScope(principal, scope));
}

/**
 * The scope a key needs to call this tool: admin-only tools need `admin`; read-only tools
 * `tools:read`; the rest `tools:execute`. `admin` implies both.
 */
export function scopeNeededFor(tool: ToolDefinition): string {
  if (tool.adminOnly === true) return SCOPE_ADMIN;
  return tool.annotations.readOnlyHint ? SCOPE_TOOLS_READ : SCOPE_TOOLS_EXECUTE;
}

/**
 * Whether the principal may call (and see) the tool. A principal without a key (stdio, the CLI)
 * sees every tool; the service still refuses admin-only work to a non-admin.
 */
export function mayCallTool(principal: Principal, tool: ToolDefinition): boolean {
  if (principal.scopes === null || principal.isAdmin) return true;
  const needed = scopeNeededFor(tool);
  return needed !== SCOPE_ADMIN && principal.scopes.includes(needed);
}
