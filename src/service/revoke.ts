// revoke_api_key (README, Tools): revoking is once; revoking again is not an error and changes nothing.
import type { Instant } from "../store/instants.js";
import type { ApiKeyRow, CurrentRows, Decision, KeyUpdate, PlannedEvent } from "../store/types.js";
import { actOnRefusal, assertMayActOn, maySee } from "./access.js";
import { cutPredecessorGrace, keyAndPredecessor } from "./chain.js";
import { actingAfterAnswer, confirmKeyStop } from "./confirm.js";
import { decide, eventBy, notFound, throwIfCancelled, visibleKey, type ServiceContext } from "./context.js";
import { validationError, type FieldError, type ServiceError } from "./errors.js";
import type { Principal } from "./principal.js";
import { statusOf, toApiKeyRecord, type ApiKeyRecord } from "./records.js";
import type { ConfirmKeyStop, RevokeApiKeyInput } from "./types.js";
import { checkName } from "./validation.js";

export interface RevokeDecisionInput {
  id: string;
  reason: string | null;
}

export interface Revocation {
  key: ApiKeyRow;
  /** False when the key was already revoked: nothing was written. */
  changed: boolean;
}

/**
 * A revocation on the key as it is now, judged for the principal first (a weaker key never stops
 * a stronger one, revoked or not); an already revoked key keeps its first revocation and no event
 * is written.
 */
export function decideRevoke(current: CurrentRows, input: RevokeDecisionInput, principal: Principal, now: Instant): Decision<Revocation, ServiceError> {
  const key = current.keys.get(input.id);
  if (!key || !maySee(principal, key)) return { ok: false, refusal: notFound("id", input.id) };
  const refusal = actOnRefusal(principal, key, "revoke");
  if (refusal) return { ok: false, refusal };
  if (key.revoked_at !== null) return { ok: true, plan: { insertKeys: [], updateKeys: [], events: [] }, result: { key, changed: false } };
  const set = { revoked_at: now, revoked_reason: input.reason };
  const updateKeys: KeyUpdate[] = [{ id: key.id, set }];
  const events: PlannedEvent[] = [eventBy(principal, key.id, "key.revoked", now, { reason: input.reason })];
  // A key in its grace never outlives its successor (README, Policy).
  const cut = cutPredecessorGrace(current, key, now, principal, now, { revoked_key_id: key.id });
  if (cut) {
    updateKeys.push(cut.update);
    events.push(cut.event);
  }
  return { ok: true, plan: { insertKeys: [], updateKeys, events }, result: { key: { ...key, ...set }, changed: true } };
}

export async function revokeApiKey(ctx: ServiceContext, principal: Principal, input: RevokeApiKeyInput, confirmStop?: ConfirmKeyStop): Promise<ApiKeyRecord> {
  const errors: FieldError[] = [];
  const reason = input.reason === undefined ? null : checkName("reason", input.reason, errors);
  if (errors.length > 0) throw validationError(errors);
  const current = await visibleKey(ctx, principal, "id", input.id);
  assertMayActOn(principal, current, "revoke");
  // Only a working key stops: revoking a revoked or expired key takes nothing away, so nobody is
  // asked. The answer may take a while: the acting key is checked again as it is then, and the
  // decider judges the key as it is in the write transaction with the acting key as it is now.
  const asked = ctx.clock();
  let acting = principal;
  if (confirmStop !== undefined && statusOf(current, asked) === "active") {
    await confirmKeyStop(confirmStop, toApiKeyRecord(current, asked));
    acting = await actingAfterAnswer(ctx, principal, confirmStop);
    if (!maySee(acting, current)) throw notFound("id", input.id);
  }
  const now = ctx.clock();
  const at = now.toISOString();
  throwIfCancelled(confirmStop, input.id);
  const { key } = await decide(ctx, { keyIds: keyAndPredecessor(current) }, (rows) => decideRevoke(rows, { id: input.id, reason }, acting, at));
  return toApiKeyRecord(key, now);
}
