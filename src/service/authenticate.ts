// Callers that present a key (the HTTP bearer token): who they act as, what became of their keys
// since, and the audit of failed attempts.
import { parseToken } from "../keys/token.js";
import type { KeyStatus } from "../store/types.js";
import { isAdminScopes } from "./access.js";
import type { ServiceContext } from "./context.js";
import { statusOf } from "./records.js";
import type { AuthenticationRefusal, AuthFailureRecorder, KeyAuthentication, RequestOrigin, VerifyOptions, VerifyResult } from "./types.js";
import { capUserAgent } from "./validation.js";

/** A key's standing at one instant: what a session opened with it may still rely on. */
export interface KeyStandingNow {
  status: KeyStatus;
  scopes: readonly string[];
  expiresAt: string | null;
}

/**
 * Users' names by id, remembered: every HTTP request authenticates, and a user row never changes
 * once written (users are never renamed or deleted), so a cached name is never stale. Bounded; an
 * id without a row names itself.
 */
export class UserNames {
  private readonly names = new Map<string, string>();

  async of(ctx: ServiceContext, userId: string): Promise<string> {
    const known = this.names.get(userId);
    if (known !== undefined) return known;
    const name = (await ctx.store.getUserById(userId))?.name;
    if (name === undefined) return userId;
    if (this.names.size >= 10_000) this.names.clear();
    this.names.set(userId, name);
    return name;
  }
}

/**
 * Verifies the key (which records its use) and builds the principal it acts as. `null` is a
 * request that carried no key.
 */
export async function authenticateKey(
  ctx: ServiceContext,
  verify: (token: string, options: VerifyOptions) => Promise<VerifyResult>,
  userNames: UserNames,
  token: string | null,
  origin: RequestOrigin,
): Promise<KeyAuthentication> {
  if (token === null) return { ok: false, reason: "missing", keyId: null, keyPrefix: null, organizationId: null };
  const result = await verify(token, { ip: origin.clientAddress, userAgent: origin.userAgent });
  if (!result.valid || result.key_id === null || result.user_id === null || result.organization_id === null) {
    return {
      ok: false,
      // No scopes were required, so insufficient_scope cannot happen; anything else is not found.
      reason: result.code === "malformed" || result.code === "revoked" || result.code === "expired" ? result.code : "not_found",
      keyId: result.key_id,
      keyPrefix: result.key_prefix ?? parseToken(token, ctx.config.keyBrand)?.keyPrefix ?? null,
      organizationId: result.organization_id,
    };
  }
  const userName = await userNames.of(ctx, result.user_id);
  const scopes = result.scopes ?? [];
  return {
    ok: true,
    expiresAt: result.expires_at,
    principal: {
      userId: result.user_id,
      userName,
      organizationId: result.organization_id,
      transport: origin.transport,
      keyId: result.key_id,
      scopes,
      isAdmin: isAdminScopes(scopes),
      clientAddress: origin.clientAddress,
    },
  };
}

/**
 * Where each of these keys stands now, in one store read: its status (as statusOf judges it) and
 * its current scopes. The HTTP transport closes the sessions of a key that is no longer active or
 * whose scopes changed (README, "Sessions"). A key without a row is left out.
 */
export async function keyStandings(ctx: ServiceContext, keyIds: readonly string[]): Promise<Map<string, KeyStandingNow>> {
  const now = ctx.clock();
  const rows = await ctx.store.getKeyStandings(keyIds);
  return new Map(rows.map((row) => [row.id, { status: statusOf(row, now), scopes: row.scopes, expiresAt: row.expires_at }]));
}

/** `auth.failed` through the recorder: why, from where, the key when known; never the token. */
export function recordAuthenticationFailure(
  ctx: ServiceContext,
  recorder: AuthFailureRecorder,
  refusal: AuthenticationRefusal,
  origin: RequestOrigin,
  detail: Record<string, unknown>,
): Promise<void> | void {
  const userAgent = capUserAgent(origin.userAgent);
  return recorder.record({
    refusal,
    origin: userAgent === origin.userAgent ? origin : { ...origin, userAgent },
    detail,
    at: ctx.clock().toISOString(),
  });
}
