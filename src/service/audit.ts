// list_key_events and the events written outside a key's own writes (denied calls).
import { maySeeClientAddress, visibleOwner } from "./access.js";
import { eventRowBy, visibleKey, type ServiceContext } from "./context.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { validationError, type FieldError } from "./errors.js";
import { pageOf, rowsForPage } from "./paging.js";
import type { Principal } from "./principal.js";
import { toKeyEventRecord } from "./records.js";
import type { KeyEventPage, ListKeyEventsInput } from "./types.js";
import { checkInteger, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX } from "./validation.js";

export async function listKeyEvents(ctx: ServiceContext, principal: Principal, input: ListKeyEventsInput = {}): Promise<KeyEventPage> {
  const errors: FieldError[] = [];
  const limit = checkInteger("limit", input.limit, 1, PAGE_LIMIT_MAX, PAGE_LIMIT_DEFAULT, errors);
  if (errors.length > 0) throw validationError(errors);
  const after = input.cursor === undefined ? null : decodeCursor("events", input.cursor);
  const owner = visibleOwner(principal);
  // A user asking about another user's key learns nothing, not even that it exists. An admin may
  // ask about any key id, even one with no row (a failed authentication may name such a key).
  if (input.key_id !== undefined && owner !== null) await visibleKey(ctx, principal, "key_id", input.key_id);

  const rows = await ctx.store.listKeyEvents({
    organizationId: principal.organizationId,
    keyId: input.key_id ?? null,
    ownerUserId: owner,
    after,
    limit: rowsForPage(limit),
  });
  const { items, nextCursor } = pageOf(rows, limit, (last) => encodeCursor("events", { at: last.event.occurred_at, seq: last.seq }));
  return {
    events: items.map(({ event }) => toKeyEventRecord(maySeeClientAddress(principal, event) ? event : { ...event, client_address: null })),
    next_cursor: nextCursor,
  };
}

/** Writes `call.denied`: an authenticated caller asked for something its scopes do not allow. */
export async function recordDeniedCall(ctx: ServiceContext, principal: Principal, detail: Record<string, unknown>): Promise<void> {
  const now = ctx.clock().toISOString();
  await ctx.store.appendEvent(eventRowBy(principal, principal.keyId, "call.denied", now, detail));
}
