// create_api_key (README, Policy): the expiry and scopes of a new key, and the cap, decided on the
// owner's active keys as they are inside the write transaction.
import { newApiKeyId } from "../keys/ids.js";
import { generateToken } from "../keys/token.js";
import type { Instant } from "../store/instants.js";
import type { ApiKeyRow, CurrentRows, Decision } from "../store/types.js";
import { assertAdmin, assertHoldsScopes, assertMayMint, grantableScopes } from "./access.js";
import { checkKeyScopes, decide, eventBy, projectOf, type ServiceContext } from "./context.js";
import { echoValue, ServiceError, validationError, type FieldError } from "./errors.js";
import type { Policy } from "./policy.js";
import type { Principal } from "./principal.js";
import type { CreateApiKeyInput, CreatedApiKey } from "./types.js";
import { checkExpiresAt, checkName, DAY_MS, instantAfter } from "./validation.js";

export interface CreateDecisionInput {
  /** The new key, fully formed (its hash computed from a token only the caller sees). */
  key: ApiKeyRow;
  /** The owner's active keys must stay at or below this. */
  maxActiveKeys: number;
}

/**
 * Create, on the owner's active-key count read in the write transaction (WriteReads.activeKeysOf):
 * refused with max_keys_reached at the cap, so parallel creates never pass it (README, Policy).
 */
export function decideCreate(current: CurrentRows, input: CreateDecisionInput, principal: Principal, now: Instant): Decision<ApiKeyRow, ServiceError> {
  const { key, maxActiveKeys } = input;
  const { activeKeys } = current;
  // Without the count there is no cap to judge: a caller that forgot WriteReads.activeKeysOf is a bug.
  if (activeKeys === null) throw new Error("decideCreate needs the owner's active keys (WriteReads.activeKeysOf)");
  if (activeKeys >= maxActiveKeys) {
    return {
      ok: false,
      refusal: new ServiceError("max_keys_reached", `user already holds ${activeKeys} active keys, the most allowed is ${maxActiveKeys}; revoke one first`, [
        { key: "limit", message: "max_keys_reached", value: maxActiveKeys },
      ]),
    };
  }
  const detail = { name: key.name, project_id: key.project_id, scopes: key.scopes, expires_at: key.expires_at };
  return { ok: true, plan: { insertKeys: [key], updateKeys: [], events: [eventBy(principal, key.id, "key.created", now, detail)] }, result: key };
}

export async function createApiKey(ctx: ServiceContext, principal: Principal, input: CreateApiKeyInput): Promise<CreatedApiKey> {
  const { policy } = ctx.config;
  assertMayMint(principal, policy);
  const now = ctx.clock();
  const errors: FieldError[] = [];
  const name = checkName("name", input.name, errors);
  const expiresAt = newKeyExpiry(policy, input, now, errors);
  const requested = input.scopes === undefined ? undefined : checkKeyScopes("scopes", input.scopes, errors);
  const ownerName = input.owner === undefined ? undefined : checkName("owner", input.owner, errors);
  if (errors.length > 0) throw validationError(errors);
  let owner = principal.userId;
  if (ownerName !== undefined && ownerName !== principal.userName) {
    assertAdmin(principal, "creating a key for another user");
    owner = (await ctx.store.ensureUser(principal.organizationId, ownerName, now.toISOString())).id;
  }

  const project = input.project_reference === undefined ? null : await projectOf(ctx, principal, input.project_reference);
  let scopes: string[];
  if (requested === undefined) {
    scopes = scopesForNewKey(principal, project ? project.default_scopes : policy.defaultScopes);
  } else {
    // Named explicitly: only scopes the principal holds (access.ts).
    assertHoldsScopes(principal, requested, "grant a scope", { key: "scopes" });
    scopes = requested;
  }

  const createdAt = now.toISOString();
  const { token, key } = newKeyRow(ctx, principal, {
    owner,
    organizationId: principal.organizationId,
    projectId: project?.id ?? null,
    name,
    description: null,
    scopes,
    expiresAt: expiresAt ?? null,
    createdAt,
    rotatedFrom: null,
  });
  await decide(ctx, { keyIds: [], activeKeysOf: { userId: key.user_id, now: createdAt } }, (rows) =>
    decideCreate(rows, { key, maxActiveKeys: policy.maxActiveKeysPerUser }, principal, createdAt),
  );
  return createdKeyOf(key, token);
}

/** A new key's expiry: expires_at, or expires_in_days, or the default; every one within policy and MAX_INSTANT. */
function newKeyExpiry(policy: Policy, input: CreateApiKeyInput, now: Date, errors: FieldError[]): string | null | undefined {
  const { defaultExpiryDays, maxExpiryDays } = policy;
  if (input.expires_at !== undefined && input.expires_in_days !== undefined) {
    errors.push({ key: "expires_in_days", message: "give expires_at or expires_in_days, not both", value: echoValue(input.expires_in_days) });
    return undefined;
  }
  if (input.expires_at !== undefined) return checkExpiresAt("expires_at", input.expires_at, now, maxExpiryDays, errors);
  if (input.expires_in_days !== undefined) {
    const days = input.expires_in_days;
    if (!Number.isSafeInteger(days) || days < 1) {
      errors.push({ key: "expires_in_days", message: "must be a positive integer", value: echoValue(days) });
      return undefined;
    }
    if (maxExpiryDays !== null && days > maxExpiryDays) {
      errors.push({ key: "expires_in_days", message: `must be at most ${maxExpiryDays} days`, value: days });
      return undefined;
    }
    return instantAfter("expires_in_days", now, days * DAY_MS, days, errors);
  }
  if (defaultExpiryDays === null) return null;
  // The operator's default, not the caller's input: the caller can still give an earlier expires_at.
  return instantAfter("expires_at", now, defaultExpiryDays * DAY_MS, null, errors);
}

/**
 * A new key gets the base scopes the principal holds (access.ts): nobody mints a key more
 * powerful than themselves, and admin from a project's defaults goes only to an admin.
 */
function scopesForNewKey(principal: Principal, base: string[]): string[] {
  const scopes = grantableScopes(principal, base);
  if (scopes.length === 0) {
    throw new ServiceError("forbidden", `you hold none of the scopes a new key here would get (${base.join(", ")}); ask an admin`, [
      { key: "scopes", message: "exceeds_acting_key", value: base.join(",") },
    ]);
  }
  return scopes;
}

export interface NewKeyFields {
  owner: string;
  organizationId: string;
  projectId: string | null;
  name: string;
  description: string | null;
  scopes: string[];
  expiresAt: string | null;
  createdAt: string;
  rotatedFrom: string | null;
}

/** A fresh token and the row that stores its hash (create and rotate). */
export function newKeyRow(ctx: ServiceContext, principal: Principal, fields: NewKeyFields): { token: string; key: ApiKeyRow } {
  const { token, keyPrefix } = generateToken(ctx.config.keyBrand);
  return {
    token,
    key: {
      id: newApiKeyId(),
      organization_id: fields.organizationId,
      user_id: fields.owner,
      project_id: fields.projectId,
      name: fields.name,
      description: fields.description,
      key_prefix: keyPrefix,
      key_hash: ctx.hasher.hash(token),
      hash_algorithm: ctx.hasher.algorithm,
      scopes: [...fields.scopes],
      created_at: fields.createdAt,
      created_by_user_id: principal.userId,
      created_by_key_id: principal.keyId,
      expires_at: fields.expiresAt,
      last_used_at: null,
      last_used_ip: null,
      last_used_user_agent: null,
      revoked_at: null,
      revoked_reason: null,
      rotated_from: fields.rotatedFrom,
      replaced_by: null,
    },
  };
}

export function createdKeyOf(key: ApiKeyRow, token: string): CreatedApiKey {
  return {
    id: key.id,
    project_id: key.project_id,
    user_id: key.user_id,
    name: key.name,
    key: token,
    key_prefix: key.key_prefix,
    expires_at: key.expires_at,
    created_at: key.created_at,
    scopes: [...key.scopes],
  };
}
