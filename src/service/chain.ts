// Rotation chains (README, Policy): one overlap per chain, and a key in its grace never outlives
// its successor, so that a user holds at most cap + 1 working keys per chain. Rotating, revoking
// or shortening a key ends or shortens its predecessor's grace in the same transaction.
import { isActiveAt, isLaterExpiry, type Instant } from "../store/instants.js";
import type { ApiKeyRow, CurrentRows, KeyUpdate, PlannedEvent } from "../store/types.js";
import { eventBy } from "./context.js";
import type { Principal } from "./principal.js";

/** The keys a decider on `key` must read: the key, and its predecessor (rotated_from never changes once written). */
export function keyAndPredecessor(key: Pick<ApiKeyRow, "id" | "rotated_from">): string[] {
  return key.rotated_from === null ? [key.id] : [key.id, key.rotated_from];
}

/**
 * The grace of `key`'s predecessor, cut to end by `until`: nothing when there is none, it no
 * longer works, or it stops by `until` anyway; otherwise its new expiry and a key.grace_ended
 * event with `detail` and the expiry it had and has.
 */
export function cutPredecessorGrace(
  current: CurrentRows,
  key: Pick<ApiKeyRow, "rotated_from">,
  until: Instant,
  principal: Principal,
  now: Instant,
  detail: Record<string, unknown>,
): { update: KeyUpdate; event: PlannedEvent } | null {
  const predecessor = key.rotated_from === null ? undefined : current.keys.get(key.rotated_from);
  if (!predecessor || !isActiveAt(predecessor, now) || !isLaterExpiry(predecessor.expires_at, until)) return null;
  return {
    update: { id: predecessor.id, set: { expires_at: until } },
    event: eventBy(principal, predecessor.id, "key.grace_ended", now, { ...detail, from: { expires_at: predecessor.expires_at }, to: { expires_at: until } }),
  };
}
