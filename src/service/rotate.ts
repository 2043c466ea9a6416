// rotate_api_key (README, Tools and Policy): a successor with the old key's name, scopes and
// lifetime; the old key kept for a grace period or revoked now; one overlap per rotation chain.
import { isLaterExpiry, keyStatusAt, MAX_INSTANT_MS, toInstant, type Instant } from "../store/instants.js";
import type { ApiKeyRow, CurrentRows, Decision, KeyUpdate, PlannedEvent } from "../store/types.js";
import { actOnRefusal, assertMayActOn, assertMayMint, mayLengthenLife, maySee } from "./access.js";
import { cutPredecessorGrace, keyAndPredecessor } from "./chain.js";
import { actingAfterAnswer, confirmKeyStop } from "./confirm.js";
import { decide, eventBy, notFound, throwIfCancelled, visibleKey, type ServiceContext } from "./context.js";
import { createdKeyOf, newKeyRow } from "./create.js";
import { echoValue, ServiceError, validationError, type FieldError } from "./errors.js";
import type { Policy } from "./policy.js";
import type { Principal } from "./principal.js";
import { sameValue, statusOf, toApiKeyRecord } from "./records.js";
import type { ConfirmKeyStop, RotateApiKeyInput, RotatedApiKey } from "./types.js";
import { checkInteger, DAY_MS, GRACE_PERIOD_DEFAULT_SECONDS, GRACE_PERIOD_MAX_SECONDS, instantAfter } from "./validation.js";

/** The fields a successor copies: if any changed since it was built, the rotation is refused. */
const COPIED_FIELDS = ["name", "description", "scopes", "expires_at"] as const;

export interface RotateDecisionInput {
  /** The key to rotate. */
  id: string;
  /** The successor, fully formed from `expected`; `rotated_from` names the old key. */
  successor: ApiKeyRow;
  /** The old key as read before the successor was built (and before any confirmation). */
  expected: Pick<ApiKeyRow, (typeof COPIED_FIELDS)[number]>;
  graceSeconds: number;
  /** now + graceSeconds: when the old key stops being accepted (now itself: revoked at once). */
  graceUntil: Instant;
}

export interface Rotation {
  oldKey: ApiKeyRow;
  newKey: ApiKeyRow;
}

const conflict = (id: string, reason: string, message: string): Decision<never, ServiceError> => ({
  ok: false,
  refusal: new ServiceError("conflict", message, [{ key: "id", message: reason, value: echoValue(id) }]),
});

/**
 * A rotation on the old key and its predecessor as they are now (read them both: WriteReads.keyIds).
 * Of concurrent rotations of one key exactly one finds it not yet replaced. A successor built
 * from a stale read is refused ("changed"), so a concurrent narrowing is never undone. The
 * successor is not counted against the cap: a rotation replaces, it does not add.
 */
export function decideRotate(current: CurrentRows, input: RotateDecisionInput, principal: Principal, now: Instant): Decision<Rotation, ServiceError> {
  const { id, successor, graceSeconds, graceUntil } = input;
  const old = current.keys.get(id);
  if (!old || !maySee(principal, old)) return { ok: false, refusal: notFound("id", id) };
  // Replaced first: the loser of a race with a grace-0 rotation should hear "already rotated"
  // (and the successor's id), not merely "revoked".
  if (old.replaced_by !== null) {
    return conflict(id, "already_rotated", `the key was already rotated (replaced by ${old.replaced_by}); rotate that key instead`);
  }
  const status = keyStatusAt(old, now);
  if (status === "revoked") return conflict(id, "revoked", "the key is revoked: a revoked key cannot be rotated; create a new key instead");
  if (status === "expired") return conflict(id, "expired", "the key has expired: an expired key cannot be rotated; create a new key instead");
  if (COPIED_FIELDS.some((field) => !sameValue(old[field], input.expected[field]))) {
    return conflict(id, "changed", "the key changed while it was being rotated; read it again and retry");
  }
  const refusal = actOnRefusal(principal, old, "rotate");
  if (refusal) return { ok: false, refusal };

  // Grace 0: revoked now, its expiry untouched. Otherwise it expires at the end of the grace
  // period, or sooner if it was going to expire sooner anyway.
  const revokeNow = graceUntil <= now;
  const expiresAt = !revokeNow && (old.expires_at === null || graceUntil < old.expires_at) ? graceUntil : old.expires_at;
  const retire: KeyUpdate = {
    id: old.id,
    set: { replaced_by: successor.id, expires_at: expiresAt, revoked_at: revokeNow ? now : null, revoked_reason: revokeNow ? "rotated" : null },
  };
  const oldKey: ApiKeyRow = { ...old, ...retire.set };
  const detail = {
    previous_key_id: old.id,
    new_key_id: successor.id,
    grace_period_seconds: graceSeconds,
    new_key_expires_at: successor.expires_at,
    previous_key_expires_at: oldKey.revoked_at ?? oldKey.expires_at,
    previous_key_revoked: revokeNow,
  };
  const updateKeys: KeyUpdate[] = [retire];
  const events: PlannedEvent[] = [eventBy(principal, old.id, "key.rotated", now, detail), eventBy(principal, successor.id, "key.rotated", now, detail)];
  // One overlap per rotation chain (README, Policy): a predecessor still in its grace stops now.
  const cut = cutPredecessorGrace(current, old, now, principal, now, { rotated_key_id: old.id, new_key_id: successor.id });
  if (cut) {
    updateKeys.push(cut.update);
    events.push(cut.event);
  }
  return { ok: true, plan: { insertKeys: [successor], updateKeys, events }, result: { oldKey, newKey: successor } };
}

export async function rotateApiKey(ctx: ServiceContext, principal: Principal, input: RotateApiKeyInput, confirmStop?: ConfirmKeyStop): Promise<RotatedApiKey> {
  const errors: FieldError[] = [];
  const grace = checkInteger("grace_period_seconds", input.grace_period_seconds, 0, GRACE_PERIOD_MAX_SECONDS, GRACE_PERIOD_DEFAULT_SECONDS, errors);
  instantAfter("grace_period_seconds", ctx.clock(), grace * 1000, grace, errors);
  if (errors.length > 0) throw validationError(errors);
  assertMayMint(principal, ctx.config.policy);

  const old = await visibleKey(ctx, principal, "id", input.id);
  // As create: nobody obtains a key more powerful than themselves (the decider checks again).
  assertMayActOn(principal, old, "rotate");
  let acting = principal;
  // Without grace a working key stops now. A key the decider will refuse (revoked, expired,
  // replaced) gets its conflict without the question. The answer may take a while: the acting
  // key is checked again as it is then, the time of the rotation is read after it, and the
  // decider refuses the key if it changed meanwhile.
  if (grace === 0 && confirmStop !== undefined && old.replaced_by === null) {
    const asked = ctx.clock();
    if (statusOf(old, asked) === "active") {
      await confirmKeyStop(confirmStop, toApiKeyRecord(old, asked));
      acting = await actingAfterAnswer(ctx, principal, confirmStop);
      if (!maySee(acting, old)) throw notFound("id", input.id);
      assertMayMint(acting, ctx.config.policy);
      assertMayActOn(acting, old, "rotate");
    }
  }

  const now = ctx.clock();
  const at = now.toISOString();
  const { token, key } = newKeyRow(ctx, principal, {
    owner: old.user_id,
    organizationId: old.organization_id,
    projectId: old.project_id,
    name: old.name,
    description: old.description,
    scopes: old.scopes,
    expiresAt: successorExpiry(ctx.config.policy, old, now, acting),
    createdAt: at,
    rotatedFrom: old.id,
  });
  const graceUntil = instantAfter("grace_period_seconds", now, grace * 1000, grace, errors);
  if (graceUntil === undefined) throw validationError(errors);
  throwIfCancelled(confirmStop, input.id);
  const { oldKey } = await decide(ctx, { keyIds: keyAndPredecessor(old) }, (rows) =>
    decideRotate(rows, { id: old.id, successor: key, expected: old, graceSeconds: grace, graceUntil }, acting, at),
  );
  return { ...createdKeyOf(key, token), previous_key_id: old.id, previous_key_expires_at: (oldKey.revoked_at ?? oldKey.expires_at)! };
}

/**
 * A successor keeps its predecessor's lifetime (expires_at - created_at), counted from now and
 * capped at the maximum: a 7-day key rotates into a 7-day key, a default key into a default one.
 * A key without expiry keeps none while policy allows that, else gets the default expiry. Unless
 * an admin rotates, no later than the old key's expiry.
 */
export function successorExpiry(policy: Policy, old: Pick<ApiKeyRow, "expires_at" | "created_at">, now: Date, principal: Principal): string | null {
  const { defaultExpiryDays, maxExpiryDays } = policy;
  // Never past MAX_INSTANT: a lifetime that would carry the successor beyond it ends there.
  const latest = Math.min(MAX_INSTANT_MS, maxExpiryDays === null ? Infinity : now.getTime() + maxExpiryDays * DAY_MS);
  if (old.expires_at === null) {
    if (maxExpiryDays === null) return null;
    return toInstant(Math.min(latest, now.getTime() + (defaultExpiryDays ?? maxExpiryDays) * DAY_MS));
  }
  const lifetime = Math.max(1000, Date.parse(old.expires_at) - Date.parse(old.created_at));
  const renewed = toInstant(Math.min(now.getTime() + lifetime, latest));
  // Only an admin may lengthen a key's life: anyone else's successor ends when the old key would have.
  return mayLengthenLife(principal) || !isLaterExpiry(renewed, old.expires_at) ? renewed : old.expires_at;
}
