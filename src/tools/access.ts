import { ADMIN_SCOPE, holdsScope } from "../service/access.js";
import type { Principal } from "../service/principal.js";
import type { ToolDefinition } from "./tool.js";

// What a key's scopes let it do to keywarden itself (README, Authorization).
export const SCOPE_TOOLS_READ = "tools:read";
export const SCOPE_TOOLS_EXECUTE = "tools:execute";
export const SCOPE_ADMIN = ADMIN_SCOPE;
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
 * Whether the principal may call (and see) the tool: one rule for every transport. The tool
 * declares the scope it needs (ToolDefinition.scope); a principal without a key (stdio, the CLI)
 * holds every scope but admin, unless started as an admin (service/access.ts holdsScope).
 */
export function mayCallTool(principal: Principal, tool: ToolDefinition): boolean {
  return holdsScope(principal, tool.scope);
}

/**
 * Why a call to `tool` was refused, and how to get what it needs: a key with the scope over HTTP,
 * or, for a principal without a key (stdio), starting keywarden as an admin (README, Configuration).
 */
export function deniedCallMessage(principal: Principal, tool: ToolDefinition): string {
  const needed = tool.scope;
  if (principal.scopes === null) {
    return `${tool.name} is for admins: start keywarden with --admin or KEYWARDEN_ADMIN=1 to act as one`;
  }
  if (needed === SCOPE_ADMIN) {
    return `calling ${tool.name} needs a key with the admin scope; connect with an admin key (keywarden admin create-key --scopes admin)`;
  }
  return `calling ${tool.name} needs a key with the ${needed} scope`;
}
