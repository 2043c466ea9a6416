// update_api_key (README, Tools): validation of the input, then one decider on the key as it is
// inside the write transaction.
import { isActiveAt, type Instant } from "../store/instants.js";
import type { ApiKeyRow, CurrentRows, Decision, KeyChanges, KeyUpdate, PlannedEvent } from "../store/types.js";
import { maySee, updateRefusal } from "./access.js";
import { cutPredecessorGrace, keyAndPredecessor } from "./chain.js";
import { decide, eventBy, notFound, checkKeyScopes, type ServiceContext } from "./context.js";
import { ServiceError, validationError, type FieldError } from "./errors.js";
import type { Principal } from "./principal.js";
import { sameValue, toApiKeyRecord, type ApiKeyRecord } from "./records.js";
import type { UpdateApiKeyInput } from "./types.js";
import { checkDescription, checkExpiresAt, checkName } from "./validation.js";

const UPDATABLE_FIELDS = ["name", "description", "scopes", "expires_at"] as const;
/** Fields whose old and new values an update event records (a description may be long: only named). */
const DETAILED_FIELDS: ReadonlySet<string> = new Set(["name", "scopes", "expires_at"]);

export interface UpdateDecisionInput {
  id: string;
  /** Already validated (names, scopes, expiry within policy). */
  changes: KeyChanges;
}

/**
 * An update on the key as it is now: an expiry moves only on an active key not replaced by a
 * rotation; access.ts judges scopes and lengthening. Only fields that really change are written,
 * with one key.updated event naming them (from/to for name, scopes and expires_at); a change to
 * nothing writes nothing, not even an event.
 */
export function decideUpdate(current: CurrentRows, input: UpdateDecisionInput, principal: Principal, now: Instant): Decision<ApiKeyRow, ServiceError> {
  const { id, changes } = input;
  const before = current.keys.get(id);
  if (!before || !maySee(principal, before)) return { ok: false, refusal: notFound("id", id) };
  if (changes.expires_at !== undefined) {
    if (before.replaced_by !== null) {
      return {
        ok: false,
        refusal: new ServiceError(
          "conflict",
          `the key was rotated (replaced by ${before.replaced_by}): its grace period cannot move; revoke it to end it early`,
          [{ key: "expires_at", message: "key_rotated" }],
        ),
      };
    }
    if (!isActiveAt(before, now)) {
      return {
        ok: false,
        refusal: new ServiceError("conflict", "the key is revoked or expired: its expiry can no longer move; create a new key", [
          { key: "expires_at", message: "key_not_active" },
        ]),
      };
    }
  }
  const refusal = updateRefusal(principal, before, changes);
  if (refusal) return { ok: false, refusal };

  const set: Partial<Pick<ApiKeyRow, (typeof UPDATABLE_FIELDS)[number]>> = {};
  const changed: string[] = [];
  const from: Record<string, unknown> = {};
  const to: Record<string, unknown> = {};
  for (const field of UPDATABLE_FIELDS) {
    const value = changes[field];
    if (value === undefined || sameValue(before[field], value)) continue;
    (set as Record<string, unknown>)[field] = value;
    changed.push(field);
    if (DETAILED_FIELDS.has(field)) {
      from[field] = before[field];
      to[field] = value;
    }
  }
  if (changed.length === 0) return { ok: true, plan: { insertKeys: [], updateKeys: [], events: [] }, result: before };
  const updateKeys: KeyUpdate[] = [{ id, set }];
  const events: PlannedEvent[] = [eventBy(principal, id, "key.updated", now, { changed, from, to })];
  // A key in its grace never outlives its successor (README, Policy): an earlier end here is its end too.
  const cut = typeof set.expires_at === "string" ? cutPredecessorGrace(current, before, set.expires_at, principal, now, { updated_key_id: id }) : null;
  if (cut) {
    updateKeys.push(cut.update);
    events.push(cut.event);
  }
  return { ok: true, plan: { insertKeys: [], updateKeys, events }, result: { ...before, ...set } };
}

export async function updateApiKey(ctx: ServiceContext, principal: Principal, input: UpdateApiKeyInput): Promise<ApiKeyRecord> {
  const now = ctx.clock();
  const errors: FieldError[] = [];
  const changes: KeyChanges = {};
  if (input.name !== undefined) changes.name = checkName("name", input.name, errors);
  if (input.description !== undefined) changes.description = checkDescription("description", input.description, errors);
  if (input.scopes !== undefined) changes.scopes = checkKeyScopes("scopes", input.scopes, errors);
  if (input.expires_at !== undefined) {
    changes.expires_at = checkExpiresAt("expires_at", input.expires_at, now, ctx.config.policy.maxExpiryDays, errors);
  }
  if (Object.keys(changes).length === 0 && errors.length === 0) {
    errors.push({ key: "arguments", message: "name at least one of name, description, scopes and expires_at to change" });
  }
  if (errors.length > 0) throw validationError(errors);

  const at = now.toISOString();
  // A new expiry may also end a predecessor's grace: read it too (rotated_from never changes once written).
  const known = changes.expires_at === undefined ? null : await ctx.store.getKeyById(input.id);
  const keyIds = known === null ? [input.id] : keyAndPredecessor(known);
  const key = await decide(ctx, { keyIds }, (rows) => decideUpdate(rows, { id: input.id, changes }, principal, at));
  return toApiKeyRecord(key, now);
}
